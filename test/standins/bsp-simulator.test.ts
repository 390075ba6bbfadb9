// The BSP simulator speaks the meta-cloud mapping's BSP from mappings/meta-cloud/simulator.yaml:
// what it answers and posts must go back through the mapping (mapResponse, verifySignature,
// mapWebhook) to the CleverTap codes and events a real Meta exchange gives.
import t, { type Test } from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { loadMapping, type Mapping } from '../../engine/mapping/loader.js';
import { planMediaDownload, planMediaLookup } from '../../engine/mapping/media.js';
import { toCanonical } from '../../engine/mapping/pipeline.js';
import { validatorFor } from '../../engine/mapping/schema-validator.js';
import { mapResponse, planSend, type HttpRequest } from '../../engine/mapping/send.js';
import { loadSimulator, startBspSimulator, type BspSimulator } from '../../engine/standins/bsp-simulator.js';
import { mapWebhook, verifySignature } from '../../engine/mapping/webhook.js';
import type { CanonicalMessage } from '../../engine/clevertap/model.js';
import { webhookReceiver } from '../support/webhook-receiver.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const META = here('../../mappings/meta-cloud');
const SETTINGS = parseYaml(readFileSync(join(META, 'fixtures/settings.yaml'), 'utf8')) as Record<string, unknown>;
const loaded = loadMapping(META);
if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.message).join('; '));
const mapping: Mapping = loaded.mapping;
const webhookContract = validatorFor(join(META, 'spec/WebhookPayload.schema.json'));

const receiver = (t: Test, answer?: () => number) => webhookReceiver(t, 'meta-cloud', answer);

const logged = new WeakMap<BspSimulator, string[]>();

async function simulator(t: Test, webhookUrl: string, extra: Partial<Parameters<typeof startBspSimulator>[0]> = {}): Promise<BspSimulator> {
  const problems: string[] = [];
  const logger = { info() {}, warn: (o: object, m?: string) => problems.push(`${m} ${JSON.stringify(o)}`), error: (o: object, m?: string) => problems.push(`${m} ${JSON.stringify(o)}`) };
  const sim = await startBspSimulator({ mappingDir: META, settings: SETTINGS, webhookUrl, statusDelaysMs: { sent: 10, delivered: 30, read: 50 }, retryDelayMs: 10, logger, ...extra });
  t.teardown(() => sim.close());
  logged.set(sim, problems);
  return sim;
}

function message(overrides: Record<string, unknown> = {}, file = 'freeform-text.json'): CanonicalMessage {
  const payload = { ...JSON.parse(readFileSync(here(`../../examples/clevertap/${file}`), 'utf8')), ...overrides };
  const c = toCanonical(JSON.stringify(payload));
  if (!c.ok) throw new Error(JSON.stringify(c));
  return c.message;
}

/** What wabridge does for one send: plan with the mapping, call the simulator, map the answer. */
async function send(sim: BspSimulator, msg: CanonicalMessage, settings: Record<string, unknown> = {}, timeoutMs = 3000) {
  const s = { ...SETTINGS, apiVersion: 'v23.0', baseUrl: sim.url, ...settings };
  const plan = await planSend(mapping, msg, s);
  if (plan.kind !== 'request') throw new Error('expected a request');
  const req: HttpRequest = plan.request;
  const res = await request(req.url, { method: 'POST', headers: req.headers, body: req.body, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const text = await res.body.text();
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v;
  const mapped = await mapResponse(mapping, msg, s, { status: res.statusCode, headers, text });
  return { status: res.statusCode, body: JSON.parse(text) as Record<string, unknown>, mapped, sentBody: JSON.parse(req.body!) as Record<string, unknown> };
}

t.test('simulator.yaml loads, compiles, and reports problems at file:line:col', async (t) => {
  const r = loadSimulator(META);
  t.ok(r.ok, 'meta-cloud simulator.yaml loads');
  if (r.ok) {
    t.equal(r.simulator.name, 'meta-cloud');
    t.ok(r.simulator.expressions.length >= 15, 'every expression compiled');
  }

  const root = mkdtempSync(join(tmpdir(), 'wab-sim-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'meta-cloud');
  mkdirSync(dir);
  copyFileSync(join(META, 'mapping.yaml'), join(dir, 'mapping.yaml'));
  const text = readFileSync(join(META, 'simulator.yaml'), 'utf8').replace('recipient: $digits(body.to)', 'recipient: $digits(body.to');
  writeFileSync(join(dir, 'simulator.yaml'), text);
  const bad = loadSimulator(dir);
  t.notOk(bad.ok, 'a syntax error is refused');
  if (!bad.ok) {
    const line = text.split('\n').findIndex((l) => l.includes('recipient: $digits(body.to')) + 1;
    t.equal(bad.errors[0]?.code, 'WAB_MAPPING_COMPILE');
    t.match(bad.errors[0]?.where ?? '', new RegExp(`simulator\\.yaml:${line}:\\d+$`), 'points at the line');
    t.match(bad.errors[0]?.message ?? '', /send\.recipient/);
  }

  writeFileSync(join(dir, 'simulator.yaml'), text.replace('recipient: $digits(body.to\n', 'recipients: x\n'));
  const schema = loadSimulator(dir);
  t.notOk(schema.ok, 'a schema problem is refused');
  if (!schema.ok) t.ok(schema.errors.some((e) => /unknown key 'recipients'/.test(e.message) && /simulator\.yaml:\d+:\d+/.test(e.where ?? '')), 'names the key and its position');
});

t.test('accepted send: Meta success shape, then signed sent/delivered/read webhooks that map to status events', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const msg = message({ to: '+91 99999 99999' });
  const r = await send(sim, msg);
  t.equal(r.status, 200);
  t.match(r.body, { messaging_product: 'whatsapp', contacts: [{ input: r.sentBody.to, wa_id: '919999999999' }], messages: [{ id: /^wamid\./ }] });
  t.same(Object.keys(r.body), ['messaging_product', 'contacts', 'messages'], 'exactly Meta\'s keys');
  t.notOk((r.body.messages as Record<string, unknown>[])[0]!.message_status, 'freeform: no message_status');
  t.same(r.mapped.answer, { status: 'success' });
  const wamid = r.mapped.providerMessageId!;
  t.match(wamid, /^wamid\./);
  t.equal(sim.sent().length, 1);
  t.match(sim.sent()[0], { recipient: '919999999999', msgId: msg.msgId, providerMessageId: wamid, answered: 200 });

  await sim.idle();
  t.equal(hook.got.length, 3, 'three status webhooks');
  const events = [];
  for (const w of hook.got) {
    t.same(await verifySignature(mapping, w, SETTINGS), { ok: true }, 'signed with the app secret');
    t.equal(w.headers['user-agent'], 'facebookexternalua');
    const body = JSON.parse(w.rawBody) as unknown;
    t.ok(webhookContract(body), `matches Meta's WebhookPayload contract ${JSON.stringify(webhookContract.errors ?? [])}`);
    events.push(...(await mapWebhook(mapping, w, SETTINGS)));
  }
  t.same(events.map((e) => e.event === 'status' && [e.status, e.providerMessageId, e.msgId]), [
    ['sent', wamid, msg.msgId],
    ['delivered', wamid, msg.msgId],
    ['read', wamid, msg.msgId],
  ]);
  t.ok(events.every((e) => e.event === 'status' && /^\d{10}$/.test(e.timestamp ?? '')), 'epoch-second timestamps');
  const first = JSON.parse(hook.got[0]!.rawBody) as { entry: { id: string; changes: { value: { statuses: Record<string, unknown>[] } }[] }[] };
  t.equal(first.entry[0]!.id, '102290129340398');
  t.match(first.entry[0]!.changes[0]!.value.statuses[0], { recipient_id: '919999999999', biz_opaque_callback_data: msg.msgId, pricing: { pricing_model: 'PMP', category: 'service' } });
  t.equal(sim.webhooks().filter((w) => w.delivered).length, 3);
  t.same(logged.get(sim), [], 'the simulator logged no problem');
});

t.test('template send: message_status accepted and marketing pricing', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const msg = message({}, 'template-body-only.json');
  const r = await send(sim, msg);
  t.same(r.mapped.answer, { status: 'success' });
  t.match(r.body, { messages: [{ id: /^wamid\./, message_status: 'accepted' }] });
  await sim.idle();
  const statuses = hook.got.map((w) => (JSON.parse(w.rawBody) as { entry: { changes: { value: { statuses: Record<string, unknown>[] } }[] }[] }).entry[0]!.changes[0]!.value.statuses[0]);
  t.match(statuses[0], { status: 'sent', pricing: { billable: true, category: 'marketing' } });
});

t.test('a recipient ending in 0000 gets sent, then failed in Meta\'s error shape', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const msg = message({ to: '919999990000' });
  const r = await send(sim, msg);
  t.same(r.mapped.answer, { status: 'success' });
  await sim.idle();
  t.equal(hook.got.length, 2);
  const events = [];
  for (const w of hook.got) {
    t.ok(webhookContract(JSON.parse(w.rawBody)), 'matches Meta\'s contract');
    events.push(...(await mapWebhook(mapping, w, SETTINGS)));
  }
  t.match(events, [
    { event: 'status', status: 'sent', msgId: msg.msgId },
    { event: 'status', status: 'failed', msgId: msg.msgId, providerMessageId: r.mapped.providerMessageId, error: { code: 1007, title: 'Message undeliverable' }, providerError: { code: '131026' } },
  ]);
});

t.test('shuffled scenario: each status posted twice, in a random order, each with the time it happened', async (t) => {
  const hook = await receiver(t);
  // A pinned source: Fisher-Yates over [s, s, d, d, r, r] with these draws gives d, s, r, d, r, s.
  const draws = [0.1, 0.9, 0.5, 0.2, 0.7];
  let i = 0;
  const sim = await simulator(t, hook.url, { statusDelaysMs: { sent: 10, delivered: 1200, read: 2400 }, random: () => draws[i++ % draws.length]! });
  sim.setScenario({ scenario: 'shuffled', times: 2 });
  const msg = message({ to: '+91 99999 99999' });
  const started = Math.floor(Date.now() / 1000);
  const r = await send(sim, msg);
  t.same(r.mapped.answer, { status: 'success' }, 'accepted as in success');
  const failing = await send(sim, message({ to: '919999990000' }));
  t.equal(sim.scenario().scenario, 'success', 'times: 2 used up');
  await sim.idle(10_000);
  const byMsg = new Map<string, { status: string; timestamp: string; raw: string }[]>();
  for (const w of hook.got) {
    t.same(await verifySignature(mapping, w, SETTINGS), { ok: true }, 'signed');
    t.ok(webhookContract(JSON.parse(w.rawBody)), "matches Meta's contract");
    for (const e of await mapWebhook(mapping, w, SETTINGS)) {
      if (e.event !== 'status') continue;
      byMsg.set(e.providerMessageId!, [...(byMsg.get(e.providerMessageId!) ?? []), { status: e.status, timestamp: e.timestamp!, raw: w.rawBody }]);
    }
  }
  const posted = byMsg.get(r.mapped.providerMessageId!) ?? [];
  t.same(posted.map((p) => p.status), ['delivered', 'sent', 'read', 'delivered', 'read', 'sent'], 'the pinned order: each status twice, delivered first');
  for (const s of ['sent', 'delivered', 'read']) {
    const two = posted.filter((p) => p.status === s);
    t.equal(two[0]?.raw, two[1]?.raw, `${s}: the second post is the same webhook, byte for byte`);
  }
  const at = Object.fromEntries(posted.map((p) => [p.status, Number(p.timestamp)]));
  t.ok(at.sent! >= started && at.sent! < at.delivered! && at.delivered! < at.read!, `timestamps in the order the statuses happened, not the order posted (${JSON.stringify(at)})`);
  t.same((byMsg.get(failing.mapped.providerMessageId!) ?? []).map((p) => p.status).sort(), ['failed', 'failed', 'sent', 'sent'], 'a failing recipient: sent and failed, twice each');
  t.same(logged.get(sim), [], 'the simulator logged no problem');
});

t.test('error scenarios answer in Meta\'s shapes and map to CleverTap codes', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const expected: [string, number, number][] = [
    ['auth', 401, 2000],
    ['template', 400, 2001],
    ['number', 400, 2002],
    ['rate', 429, 2004],
    ['server', 500, 2004],
  ];
  for (const [scenario, http, code] of expected) {
    sim.setScenario(scenario as 'auth');
    const r = await send(sim, message());
    t.equal(r.status, http, `${scenario}: HTTP ${http}`);
    t.match(r.body, { error: { message: String, type: String, code: Number, fbtrace_id: /^A/ } }, `${scenario}: Graph error object`);
    t.equal(r.mapped.answer.status === 'failure' && r.mapped.answer.error.code, code, `${scenario} → ${code}`);
  }
  sim.setScenario('success');
  t.same((await send(sim, message())).mapped.answer, { status: 'success' }, 'back to success');

  sim.setScenario({ scenario: 'server', times: 1 });
  t.equal((await send(sim, message())).status, 500, 'times: 1 applies once');
  t.equal((await send(sim, message())).status, 200, '...then success again');

  const wrong = await send(sim, message(), { accessToken: 'not-the-token' });
  t.equal(wrong.mapped.answer.status === 'failure' && wrong.mapped.answer.error.code, 2000, 'a wrong access token is an auth error whatever the scenario');

  await sim.idle();
  t.throws(() => sim.setScenario('bogus' as 'auth'), /unknown scenario/);
});

t.test('slow and hang scenarios', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  sim.setScenario({ scenario: 'slow', delayMs: 300 });
  const started = Date.now();
  const r = await send(sim, message());
  t.ok(Date.now() - started >= 280, 'answered after the delay');
  t.same(r.mapped.answer, { status: 'success' });

  sim.setScenario('hang');
  await t.rejects(send(sim, message(), {}, 200), 'a hanging send never answers (client times out)');
  t.equal(sim.sent().at(-1)?.answered, 'hang');
  await sim.idle();
});

t.test('control API: scenario, inbound, requests', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const post = async (path: string, body: unknown) => {
    const res = await request(`${sim.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  };
  t.match(await post('/_sim/scenario', { scenario: 'rate' }), { status: 200, body: { scenario: 'rate' } });
  t.equal((await send(sim, message())).status, 429);
  t.match(await post('/_sim/scenario', { scenario: 'nope' }), { status: 400 });
  await post('/_sim/scenario', { scenario: 'success' });

  const reqs = await request(`${sim.url}/_sim/requests`);
  const list = (await reqs.body.json()) as unknown[];
  t.equal(list.length, 1);

  const sentId = 'wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=';
  const inbound = await post('/_sim/inbound', { from: '+91 99999 99999', text: 'Hi there', replyTo: sentId });
  t.match(inbound, { status: 200, body: { kind: 'text', delivered: true, id: /^wamid\./ } });
  const w = hook.got.at(-1)!;
  t.same(await verifySignature(mapping, w, SETTINGS), { ok: true });
  t.ok(webhookContract(JSON.parse(w.rawBody)), 'matches Meta\'s contract');
  t.same(await mapWebhook(mapping, w, SETTINGS), [
    {
      event: 'incoming',
      providerMessageId: inbound.body.id,
      replyTo: sentId,
      message: { from: '919999999999', wabaNumber: '15550783881', timestamp: JSON.parse(w.rawBody).entry[0].changes[0].value.messages[0].timestamp, type: 'text', text: { body: 'Hi there' } },
    },
  ]);

  const button = await sim.sendInbound({ from: '919999999999', button: { payload: 'STOP_PROMOS', text: 'Stop' }, replyTo: sentId });
  t.ok(button.delivered);
  t.match(await mapWebhook(mapping, hook.got.at(-1)!, SETTINGS), [{ event: 'incoming', replyTo: sentId, message: { type: 'button', button: { payload: 'STOP_PROMOS', text: 'Stop' } } }]);

  t.match(await post('/_sim/inbound', { from: '919999999999' }), { status: 400 }, 'inbound needs content');
  t.match(await post('/_sim/inbound', { text: 'no sender' }), { status: 400, body: { error: /from/ } }, 'inbound needs a sender');
});

t.test('inbound image and the media look-up, through the mapping\'s media section', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const r = await sim.sendInbound({ from: '919999999999', image: { mimeType: 'image/png', caption: 'look' } });
  t.ok(r.delivered && r.mediaId);
  const [event] = await mapWebhook(mapping, hook.got.at(-1)!, SETTINGS);
  t.match(event, { event: 'incoming', message: { type: 'image', image: { mediaId: r.mediaId, mimeType: 'image/png', caption: 'look' } } });
  t.ok(webhookContract(JSON.parse(hook.got.at(-1)!.rawBody)), 'matches Meta\'s contract');

  const s = { ...SETTINGS, apiVersion: 'v23.0', baseUrl: sim.url };
  const lookup = (await planMediaLookup(mapping, r.mediaId!, s))!;
  const res = await request(lookup.url, { method: 'GET', headers: lookup.headers });
  const body = (await res.body.json()) as Record<string, unknown>;
  t.match(body, { messaging_product: 'whatsapp', id: r.mediaId, mime_type: 'image/png', url: String, sha256: String });
  const download = await planMediaDownload(mapping, r.mediaId!, s, body);
  const file = await request(download.url, { headers: download.headers });
  t.equal(file.statusCode, 200);
  t.equal(file.headers['content-type'], 'image/png');
  t.ok((await file.body.arrayBuffer()).byteLength > 0);
});

t.test('webhook delivery is retried at most 3 times', async (t) => {
  const hook = await receiver(t, () => 500);
  const errors: unknown[] = [];
  const logger = { info() {}, warn() {}, error: (o: object) => errors.push(o) };
  const sim = await simulator(t, hook.url, { logger });
  const r = await sim.sendInbound({ from: '919999999999', text: 'x' });
  t.equal(r.delivered, false);
  t.equal(r.outcome, 500);
  t.equal(hook.got.length, 4, 'one attempt plus three retries');
  t.equal(errors.length, 1, 'logged once');
});

t.test('close() stops scheduled webhooks and releases hanging requests', async (t) => {
  const hook = await receiver(t);
  const sim = await startBspSimulator({ mappingDir: META, settings: SETTINGS, webhookUrl: hook.url, statusDelaysMs: { sent: 5_000, delivered: 10_000, read: 20_000 } });
  await send(sim, message());
  sim.setScenario('hang');
  const hanging = send(sim, message(), {}, 10_000).then(
    () => 'answered',
    () => 'dropped',
  );
  while (sim.sent().length < 2) await new Promise((r) => setTimeout(r, 5));
  const started = Date.now();
  await sim.close();
  t.equal(await hanging, 'dropped');
  t.ok(Date.now() - started < 2000, 'closes promptly');
  t.equal(hook.got.length, 0, 'no webhook after close');
  await sim.idle();
});
