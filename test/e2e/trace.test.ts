// "What happened to this message?": a message sent through the whole stack, its statuses flowing back
// from the simulated BSP to the CleverTap sink, then its timeline over the admin API and the CLI.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { trace } from '../../engine/cli/trace.js';
import type { TraceEvent } from '../../engine/stores/store.js';
import { secretValues } from '../support/demo.js';
import { DEMO, ROOT, SETTINGS, eventually, postBuiltWebhook, startStack, type Stack } from '../support/stack.js';

const example = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8')) as Record<string, unknown>;
const ADMIN = 'Bearer e2e-admin-token-0123456789';

async function getTrace(s: Stack, id: string, auth: string | null = ADMIN, query = '') {
  const res = await request(`${s.host.url}/v1/admin/trace/${encodeURIComponent(id)}${query}`, { headers: auth === null ? {} : { authorization: auth } });
  return { status: res.statusCode, body: (await res.body.json()) as { events?: TraceEvent[]; message?: string; code?: string } };
}

async function eventsOf(s: Stack, id: string): Promise<TraceEvent[]> {
  const r = await getTrace(s, id);
  return r.status === 200 ? (r.body.events ?? []) : [];
}

async function postStatus(s: Stack, id: string, status: 'delivered' | 'read') {
  // the status webhook the demo's BSP would send, built by its simulator
  const res = await postBuiltWebhook(s, await s.sim.statusWebhook({ providerMessageId: id, status }));
  t.equal(res.status, 200, `webhook ${status} acknowledged`);
}

const label = (e: TraceEvent) => {
  const d = e.data as { status?: string; outcome?: string; implied?: boolean };
  if (e.type === 'status') return `status:${d.status}`;
  if (e.type === 'callback') return `callback:${d.status}${d.implied ? '*' : ''}:${d.outcome}`;
  if (e.type === 'dead') return `dead:${d.status}`;
  return e.type;
};

t.test('message trace', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());

  t.test('a sent message: request, BSP call, answer, each status and each callback, in order, by msgId and by BSP id', async (t) => {
    const msgId = 'e2e|trace|1|1';
    t.same((await s.send({ ...example, msgId })).body, { status: 'success' });
    await eventually(() => s.sink.statuses('demo').filter((x) => x.msgId === msgId).length === 3, 'sent, delivered, read at the sink');
    await eventually(async () => (await eventsOf(s, msgId)).filter((e) => e.type === 'callback' && e.data.outcome === 'delivered').length >= 3, 'the three delivered callbacks in the trace');
    const events = await eventsOf(s, msgId);
    const bspId = s.sim.sent().find((x) => x.msgId === msgId)!.providerMessageId!;

    const send = events[0]!;
    t.equal(send.type, 'send', 'the request comes first');
    t.match(send, { tenant: 'demo', msgId, providerMessageId: bspId, data: { to: '9199******99', messageType: 'template', mapping: DEMO.provider, answer: { status: 'success' }, bsp: { method: 'POST', status: 200, providerMessageId: bspId } } });
    t.equal(typeof (send.data.mappingVersion as string), 'string');
    t.notOk('headers' in (send.data.bsp as object) || 'responseHeaders' in (send.data.bsp as object), 'no headers for a send that went well');
    t.ok(typeof (send.data.bsp as { ms: number }).ms === 'number', 'BSP latency');
    const whole = JSON.stringify(events);
    for (const [name, value] of secretValues(s.host.registry.get(DEMO.provider)!, SETTINGS)) t.notOk(whole.includes(value), `no ${name} anywhere in the trace`);
    t.notOk(whole.includes('919999999999'), 'no unmasked phone number');

    // On a busy machine the simulator's webhooks may arrive out of order: a higher status then implies
    // the lower one (its callback marked *), and the real one arriving later is a duplicate. Either
    // way each status has its webhook event, a webhook comes before the first callback, and CleverTap
    // got each status once.
    const labels = events.map(label);
    for (const st of ['sent', 'delivered', 'read']) t.equal(labels.filter((l) => l === `status:${st}`).length, 1, `one ${st} webhook event`);
    t.ok(labels.findIndex((l) => l.startsWith('status:')) < labels.findIndex((l) => l.startsWith('callback:')), 'a webhook before the first callback');
    const delivered = labels.filter((l) => l.startsWith('callback') && l.endsWith(':delivered')).map((l) => l.replace('*', ''));
    t.same(delivered.sort(), ['callback:delivered:delivered', 'callback:read:delivered', 'callback:sent:delivered']);
    const times = events.map((e) => e.at);
    t.same(times, [...times].sort((a, b) => a - b), 'oldest first');
    t.match(events.find((e) => e.type === 'callback'), { data: { httpStatus: 200, attempt: 1, kind: 'status' } });

    t.same(await eventsOf(s, bspId), events, 'the BSP id finds the same timeline');
  });

  t.test('a send the BSP refused keeps the headers both ways, credentials redacted', async (t) => {
    const msgId = 'e2e|trace|4|1';
    s.sim.setScenario({ scenario: 'auth', times: 1 });
    const answer = (await s.send({ ...example, msgId })).body as { status: string };
    t.equal(answer.status, 'failure');
    await eventually(async () => (await eventsOf(s, msgId)).some((e) => e.type === 'send'), 'the send event');
    const bsp = (await eventsOf(s, msgId)).find((e) => e.type === 'send')!.data.bsp as { status: number; headers: Record<string, string>; responseHeaders: Record<string, string> };
    t.ok(bsp.status >= 400, `the BSP's status (${bsp.status})`);
    t.same(Object.entries(bsp.headers).filter(([k]) => k.toLowerCase() === 'authorization').map(([, v]) => v), ['[redacted]'], 'the BSP credential is not kept');
    t.ok(Object.keys(bsp.responseHeaders).length > 0, 'the response headers');
    const whole = JSON.stringify(bsp);
    for (const [name, value] of secretValues(s.host.registry.get(DEMO.provider)!, SETTINGS)) t.notOk(whole.includes(value), `no ${name} in the headers`);
  });

  t.test('a status that implies lower ones, a callback CleverTap refuses, the dead-letter move', async (t) => {
    const msgId = 'e2e|trace|2|1';
    await s.host.store.saveCorrelation('demo', 'bsp-id.TRACE2', msgId, 60_000);
    s.sink.setDown({ status: 400 });
    t.teardown(() => s.sink.setDown(false));
    await postStatus(s, 'bsp-id.TRACE2', 'read');
    await eventually(async () => (await eventsOf(s, msgId)).filter((e) => e.type === 'dead').length === 3, 'three dead callbacks in the trace');
    const events = await eventsOf(s, 'bsp-id.TRACE2');
    t.match(events[0], { type: 'status', msgId, providerMessageId: 'bsp-id.TRACE2', data: { status: 'read', implies: ['delivered', 'sent'] } });
    const refused = events.filter((e) => e.type === 'callback');
    t.ok(refused.length >= 1, 'the refused POST is there');
    t.match(refused[0], { data: { httpStatus: 400, outcome: 'refused' } });
    t.same(events.filter((e) => e.type === 'dead').map(label).sort(), ['dead:delivered', 'dead:read', 'dead:sent']);
    t.equal(events.filter((e) => e.type !== 'status' && (e.data as { implied?: boolean }).implied).length >= 2, true, 'the implied ones are marked');
  });

  t.test('a status held before its send was correlated is linked once it is', async (t) => {
    await postStatus(s, 'bsp-id.TRACE3', 'delivered');
    await s.host.store.saveCorrelation('demo', 'bsp-id.TRACE3', 'e2e|trace|3|1', 60_000);
    // The implied sent goes first and may be the first callback on the timeline: wait for delivered's.
    await eventually(async () => (await eventsOf(s, 'e2e|trace|3|1')).some((e) => e.type === 'callback' && label(e) === 'callback:delivered:delivered'), 'the resolved status delivered');
    const labels = (await eventsOf(s, 'e2e|trace|3|1')).map((e) => (e.type === 'status' ? `status:${(e.data as { held?: boolean }).held ? 'held' : ''}` : label(e)));
    t.same(labels.slice(0, 2), ['status:held', 'resolved']);
    t.ok(labels.includes('callback:delivered:delivered'));
  });

  t.test('the admin route: token, unknown id, bad limit', async (t) => {
    t.equal((await getTrace(s, 'e2e|trace|1|1', null)).status, 401);
    t.equal((await getTrace(s, 'e2e|trace|1|1', 'Bearer wrong-token-0123456789')).status, 401);
    const missing = await getTrace(s, 'no-such-message');
    t.equal(missing.status, 404);
    t.match(missing.body, { code: 'WAB_NOT_FOUND', message: /no trace for 'no-such-message'/ });
    const bad = await getTrace(s, 'e2e|trace|1|1', ADMIN, '?limit=abc');
    t.equal(bad.status, 400);
    t.match(bad.body, { code: 'WAB_INPUT_INVALID', message: /limit/ });
    const two = await getTrace(s, 'e2e|trace|1|1', ADMIN, '?limit=2');
    t.equal(two.body.events?.length, 2);
  });

  t.test('wabridge trace prints the same timeline from the store', async (t) => {
    let text = '';
    t.equal(await trace('e2e|trace|1|1', s.configFile, false, (x) => (text += x)), 0);
    t.match(text, /received +from CleverTap: to 9199\*{6}99, template/);
    t.match(text, /bsp +POST http:\/\/127\.0\.0\.1:\d+\/.* → HTTP 200, BSP id /);
    t.match(text, /answered +success/);
    t.match(text, /webhook +status read → CleverTap read/);
    t.match(text, /callback +read attempt 1 → HTTP 200/);
    let json = '';
    t.equal(await trace('e2e|trace|1|1', s.configFile, true, (x) => (json += x)), 0);
    t.same((JSON.parse(json) as { events: TraceEvent[] }).events, await eventsOf(s, 'e2e|trace|1|1'));
    let none = '';
    t.equal(await trace('no-such-message', s.configFile, false, (x) => (none += x)), 1);
    t.match(none, /no trace for 'no-such-message'/);
  });
});
