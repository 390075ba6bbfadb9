// wabridge as a real child process (`node bin/wabridge.js serve`) between the demo's simulated BSP
// and the CleverTap sink, both in this process on 127.0.0.1: crash and restart, graceful drain, the
// per-tenant concurrency limit, the dead-letter CLI, and what the logs say (and never say).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import type { SimWebhook } from '../../engine/standins/bsp-simulator.js';
import type { CleverTapSink } from '../../engine/standins/clevertap-sink.js';
import { ADMIN_TOKEN, BASIC, adminStatus, allChildOutput, childStack, killAllChildren, pool, runCli, sendTo, type ChildStack } from '../support/child.js';
import { loadDemoMapping, secretValues } from '../support/demo.js';
import { ROOT, SETTINGS, eventually } from '../support/stack.js';

t.teardown(killAllChildren);
// Seven scenarios with child processes; each subtest carries its own bound (the machine may be shared and slow).
t.setTimeout(600_000);

const TEMPLATE = readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8');
const RECIPIENT = (JSON.parse(TEMPLATE) as { to: string }).to;
const payload = (msgId: string) => ({ ...(JSON.parse(TEMPLATE) as Record<string, unknown>), msgId });
// The chain CleverTap must see in order; failed is outside it (it implies and supersedes nothing).
const RANK: Record<string, number> = { sent: 1, delivered: 2, read: 3 };
const keyOf = (w: Pick<SimWebhook, 'msgId' | 'status'>) => `${w.msgId}|${w.status}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Status webhooks the simulator posted, split by whether wabridge finally answered 200. */
function webhookOutcomes(s: ChildStack) {
  const all = s.sim.webhooks().filter((w) => w.kind === 'status');
  return { all, acked: all.filter((w) => w.outcome === 200), unacked: all.filter((w) => w.outcome !== 200) };
}

const sinkKeys = (sink: CleverTapSink) => new Set(sink.statuses('demo').map((x) => x.key));

/** msgIds whose statuses reached the sink out of sent → delivered → read order (first arrivals). */
function outOfOrder(sink: CleverTapSink): string[] {
  // Every arrival, replays included: a replay of a lower status after a higher one is out of order too.
  const arrivals = new Map<string, string[]>();
  for (const c of sink.received()) {
    if (c.kind !== 'status' || !c.accepted) continue;
    for (const e of (c.body as { statuses: { msgId: string; status: string }[] }).statuses) arrivals.set(e.msgId, [...(arrivals.get(e.msgId) ?? []), e.status]);
  }
  const bad: string[] = [];
  for (const [msgId, list] of arrivals) {
    const ranks = list.flatMap((x) => (RANK[x] === undefined ? [] : [RANK[x]]));
    if (ranks.some((r, i) => i > 0 && r < ranks[i - 1]!)) bad.push(`${msgId}: ${list.join(' → ')}`);
  }
  return bad;
}

t.test('kill -9 in the middle of the webhook stream, restart: every acknowledged status reaches CleverTap', { timeout: 180_000 }, async (t) => {
  const began = Date.now();
  let startingMs = 0;
  const timedStart = async () => {
    const t0 = Date.now();
    const c = await s.start();
    startingMs += Date.now() - t0;
    return c;
  };
  // Statuses spread over 1.6 s per message, so the kill lands mid-stream; the simulator retries after
  // 400, 800 and 1600 ms, so a retry can outlive a quick restart and be acknowledged by the new process.
  const s = await childStack({ statusDelaysMs: { sent: 150, delivered: 800, read: 1600 }, retryDelayMs: 400 });
  t.teardown(() => s.close());
  s.sink.setDown(true);
  const first = await timedStart();

  const N = 200;
  const ids = Array.from({ length: N }, (_, i) => `dur|kill|${i}|1`);
  let sendsDone = false;
  let ackedAtKill = 0;
  let killedAt = 0;
  // The kill: once every send is answered and at least 40% of the 600 statuses are acknowledged. The
  // last messages' delivered/read are then still 0.8-1.6 s away, so the stream is always cut mid-way.
  const killer = (async () => {
    await eventually(() => sendsDone && webhookOutcomes(s).acked.length >= 0.4 * 3 * N, 'all sends answered and 40% of the statuses acknowledged', 60_000);
    ackedAtKill = webhookOutcomes(s).acked.length;
    killedAt = Date.now();
    first.kill('SIGKILL');
  })().then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  const answers = await pool(ids, 20, (id) => sendTo(s.url, payload(id)));
  sendsDone = true;
  const killError = await killer;
  t.notOk(killError, 'the kill happened');
  const exit = await first.exited;
  t.equal(exit.signal, 'SIGKILL', 'the first process died of SIGKILL');
  t.equal(s.sink.statuses('demo').length, 0, 'the sink was down: nothing delivered before the crash');

  const outcome = (a: (typeof answers)[number]) => ('error' in a ? `error ${a.error}` : a.status !== 200 ? `HTTP ${a.status}` : (a.body as { status?: string }).status === 'success' ? 'success' : `failure ${(a.body as { error?: { code?: number } }).error?.code}`);
  const byOutcome: Record<string, number> = {};
  for (const a of answers) byOutcome[outcome(a)] = (byOutcome[outcome(a)] ?? 0) + 1;
  t.comment(`sends: ${N} at concurrency 20, outcomes ${JSON.stringify(byOutcome)}`);
  t.same(
    Object.keys(byOutcome).filter((k) => k !== 'success' && k !== 'failure 2004'),
    [],
    'every send answered success (or 2004 past the deadline on a loaded machine)',
  );
  t.ok(byOutcome.success, 'sends succeeded');

  const restartAt = Date.now();
  await timedStart();
  t.comment(`killed with ${ackedAtKill} of ${3 * N} statuses acknowledged; restarted ${Date.now() - killedAt} ms after the kill (the start itself took ${Date.now() - restartAt} ms)`);
  await s.sim.idle(60_000);
  const { all, acked, unacked } = webhookOutcomes(s);

  s.sink.setDown(false);
  const ackedKeys = new Set(acked.map(keyOf));
  t.equal(ackedKeys.size, acked.length, 'one acknowledged webhook per msgId and status');
  const missing = () => [...ackedKeys].filter((k) => !sinkKeys(s.sink).has(k));
  await eventually(() => missing().length === 0, 'every acknowledged status at the sink', 60_000).catch(() => undefined);
  t.same(missing(), [], 'every status wabridge acknowledged reached CleverTap');
  await eventually(async () => (await adminStatus(s.url)).store.outboxPending === 0, 'an empty outbox', 20_000).catch(() => undefined);
  const stats = (await adminStatus(s.url)).store;
  t.match(stats, { outboxPending: 0, outboxDead: 0, pendingLookups: 0, unmatched: 0 }, 'outbox empty, nothing dead, nothing held');

  t.same(outOfOrder(s.sink), [], 'per msgId, sent before delivered before read (every arrival, replays included)');
  const complete = ids.filter((id) => ['sent', 'delivered', 'read'].every((st) => ackedKeys.has(`${id}|${st}`)));
  const incomplete = complete.filter((id) => JSON.stringify(s.sink.statuses('demo').filter((x) => x.msgId === id).map((x) => x.status)) !== '["sent","delivered","read"]');
  t.same(incomplete, [], `the ${complete.length} msgIds with all three acknowledged got exactly sent, delivered, read`);
  const simKeys = new Set(all.map(keyOf));
  t.same([...sinkKeys(s.sink)].filter((k) => !simKeys.has(k)), [], 'nothing at the sink the BSP never posted');

  const arrivedUnacked = unacked.filter((w) => sinkKeys(s.sink).has(keyOf(w))).length;
  const lostUnacked = unacked.length - arrivedUnacked;
  t.comment(
    `statuses: ${all.length} posted by the BSP, ${acked.length} acknowledged (${ackedAtKill} before the kill, ${acked.length - ackedAtKill} after), ` +
      `${s.sink.statuses('demo').length} distinct delivered, ${s.sink.replays()} duplicates (replays), ` +
      `${unacked.length} never acknowledged after 4 attempts (${lostUnacked} lost, ${arrivedUnacked} delivered anyway: stored just before the kill)`,
  );
  t.equal(s.sink.statuses('demo').length, acked.length + arrivedUnacked, 'delivered = acknowledged + stored-but-unanswered');
  const took = Date.now() - began;
  t.comment(`took ${took} ms, of which ${startingMs} ms starting the two processes`);
  t.ok(took - startingMs < 60_000, `bounded: ${took - startingMs} ms besides process start-up`);
});

t.test('SIGTERM drains: exit 0 within the drain time, nothing acknowledged is lost', { timeout: 180_000 }, async (t) => {
  const drainMs = 5000;
  // read comes 3 s after acceptance: statuses are still flowing when the last send is answered.
  const s = await childStack({ statusDelaysMs: { sent: 300, delivered: 1500, read: 3000 }, retryDelayMs: 400, drain: '5s' });
  t.teardown(() => s.close());
  const child = await s.start();
  const ids = Array.from({ length: 50 }, (_, i) => `dur|term|${i}|1`);
  const answers = await pool(ids, 10, (id) => sendTo(s.url, payload(id)));
  const notOk = answers.filter((a) => !('status' in a) || (a.body as { status?: string }).status !== 'success');
  t.same(notOk, [], 'all 50 sends answered success');

  const ackedAtTerm = webhookOutcomes(s).acked.length;
  const termAt = Date.now();
  child.kill('SIGTERM');
  const exit = await Promise.race([child.exited, sleep(drainMs + 3000).then(() => undefined)]);
  t.ok(exit, `the process exited within the drain time + 3 s`);
  if (!exit) {
    const late = await Promise.race([child.exited, sleep(30_000).then(() => undefined)]);
    t.comment(`exit: ${late ? `${late.at - termAt} ms after SIGTERM, code ${late.code}` : 'not within 38 s'}; stderr: ${child.stderr.join(' | ')}; last stdout: ${child.stdout.slice(-5).join('\n')}`);
    return;
  }
  t.equal(exit.code, 0, 'exit code 0');
  t.equal(exit.signal, null, 'exited by itself, not by the signal');
  t.ok(exit.at - termAt < drainMs + 1000, `exited within the drain time (${exit.at - termAt} ms, drain ${drainMs} ms)`);
  t.ok(child.stderr.some((l) => l.includes('SIGTERM, draining')), 'says it drains');
  t.ok(child.stdout.some((l) => l.includes('"wabridge stopped"')), 'logs that it stopped');

  // After the exit no 200 can come from anywhere: this is exactly what the old process acknowledged.
  const ackedBeforeExit = new Set(webhookOutcomes(s).acked.map(keyOf));
  const atExit = sinkKeys(s.sink);
  const deliveredBeforeExit = [...ackedBeforeExit].filter((k) => atExit.has(k)).length;
  t.comment(`SIGTERM after ${ackedAtTerm} of 150 statuses acknowledged; exit ${exit.at - termAt} ms later with ${ackedBeforeExit.size} acknowledged, ${deliveredBeforeExit} of them delivered before the exit, ${ackedBeforeExit.size - deliveredBeforeExit} left in the outbox`);
  t.ok(ackedAtTerm < 150, 'statuses were still flowing at SIGTERM');

  await s.start();
  await s.sim.idle(60_000);
  await eventually(async () => (await adminStatus(s.url)).store.outboxPending === 0, 'an empty outbox after the restart', 20_000).catch(() => undefined);
  t.match((await adminStatus(s.url)).store, { outboxPending: 0, outboxDead: 0 }, 'outbox empty after restart');
  const now = sinkKeys(s.sink);
  t.same([...ackedBeforeExit].filter((k) => !now.has(k)), [], 'every status acknowledged before the exit reached CleverTap');
  const { all, acked, unacked } = webhookOutcomes(s);
  t.same(acked.map(keyOf).filter((k) => !now.has(k)), [], 'and every one acknowledged after the restart');
  t.same(outOfOrder(s.sink), [], 'in order per msgId');
  const lost = unacked.filter((w) => !now.has(keyOf(w))).length;
  t.comment(`statuses: ${all.length} posted, ${acked.length} acknowledged in total, ${now.size} distinct delivered, ${s.sink.replays()} duplicates, ${unacked.length} never acknowledged (${lost} lost)`);
  s.child!.kill('SIGTERM');
  t.equal((await s.child!.exited).code, 0, 'the second process drains and exits 0 too');
});

// Fails at the time of writing: CallbackDelivery.stop() ends its drain loop after any round that claimed
// fewer than batchSize callbacks, but a round only claims the head of each msgId, so the followers it
// exposes (delivered, read) are left for the next process although they are due and drain time remains.
t.test('SIGTERM delivers every due callback before exiting, not only the first of each msgId', { timeout: 180_000 }, async (t) => {
  // 15 dead statuses (5 msgIds × sent/delivered/read) replayed while wabridge is stopped: all due at
  // once. Started with CleverTap up and stopped at once, it has 5 s of drain time for them.
  const s = await childStack({ drain: '5s', retry: { baseDelay: '50ms', maxDelay: '100ms', retryFor: '300ms' } });
  t.teardown(() => s.close());
  s.sink.setDown(true);
  let child = await s.start();
  const ids = Array.from({ length: 5 }, (_, i) => `dur|flush|${i}|1`);
  for (const id of ids) await sendTo(s.url, payload(id));
  await s.sim.idle(30_000);
  await eventually(async () => (await adminStatus(s.url)).store.outboxDead === 15, '15 dead callbacks', 30_000);
  child.kill('SIGTERM');
  t.equal((await child.exited).code, 0);
  const replay = await runCli(['dlq', 'replay', '--config', s.configFile, '--json']);
  t.same(JSON.parse(replay.stdout), { replayed: 15 }, 'replayed while the service is stopped: 15 due now');
  s.sink.setDown(false);

  child = await s.start();
  const termAt = Date.now();
  child.kill('SIGTERM');
  const exit = await Promise.race([child.exited, sleep(20_000).then(() => undefined)]);
  t.ok(exit && exit.code === 0, 'exit 0');
  const delivered = s.sink.statuses('demo').map((x) => x.key);
  t.comment(`exit ${exit ? exit.at - termAt : '>20000'} ms after SIGTERM (drain 5 s); ${delivered.length} of 15 due callbacks delivered before the exit`);
  t.equal(delivered.length, 15, 'every due callback delivered within the drain time');
  t.same(outOfOrder(s.sink), [], 'in order per msgId');
});

// Fails at the time of writing: host close() awaits BspClient.close() (undici Agent.close), which waits for
// the late BSP call kept open for lateWindowMs (30 s) after CleverTap got its 2004, whatever server.drain says.
t.test('SIGTERM while a BSP call outlives the CleverTap deadline: exit within the drain time', { timeout: 120_000 }, async (t) => {
  const drainMs = 2000;
  const s = await childStack({ drain: '2s', deadline: '900ms' });
  t.teardown(() => s.close());
  const child = await s.start();
  s.sim.setScenario('hang');
  const r = await sendTo(s.url, payload('dur|hang|1|1'));
  t.match(r, { status: 200, body: { status: 'failure', error: { code: 2004 } } }, 'CleverTap gets 2004 at the deadline');
  const termAt = Date.now();
  child.kill('SIGTERM');
  const exit = await Promise.race([child.exited, sleep(45_000).then(() => undefined)]);
  const took = exit ? exit.at - termAt : undefined;
  t.comment(`exit ${took ?? '> 45000'} ms after SIGTERM, drain ${drainMs} ms`);
  t.equal(exit?.code, 0, 'exit 0');
  t.ok(took !== undefined && took < drainMs + 1500, `exited within the drain time (${took ?? '> 45000'} ms, drain ${drainMs} ms)`);
});

t.test('per-tenant concurrency: the requests above the limit get 429, the rest are served', { timeout: 120_000 }, async (t) => {
  const s = await childStack({ concurrency: 5, deadline: '900ms' });
  t.teardown(() => s.close());
  const child = await s.start();
  // 20 connections opened beforehand, so the 20 sends leave together (node:http: 'finish' = request flushed).
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 20 });
  t.teardown(() => agent.destroy());
  const call = (method: 'GET' | 'POST', path: string, body?: string) =>
    new Promise<{ status: number; text: string; flushedAt: number }>((res, rej) => {
      let flushedAt = 0;
      const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(BASIC).toString('base64')}`, 'content-length': String(Buffer.byteLength(body)) };
      const req = httpRequest(`${s.url}${path}`, { method, agent, headers, timeout: 30_000 }, (r) => {
        let text = '';
        r.setEncoding('utf8');
        r.on('data', (c: string) => (text += c));
        r.on('end', () => res({ status: r.statusCode ?? 0, text, flushedAt }));
      });
      req.on('finish', () => (flushedAt = Date.now()));
      req.on('error', rej);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end(body);
    });
  await Promise.all(Array.from({ length: 20 }, () => call('GET', '/healthz')));

  s.sim.setScenario({ scenario: 'slow', delayMs: 600 });
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => call('POST', '/v1/tenants/demo/messages', JSON.stringify(payload(`dur|conc|${i}|1`)))));
  const spread = Math.max(...results.map((r) => r.flushedAt)) - Math.min(...results.map((r) => r.flushedAt));
  const limited = results.filter((r) => r.status === 429);
  const served = results.filter((r) => r.status === 200);
  t.comment(`20 concurrent sends flushed within ${spread} ms: ${served.length} served (${served.map((r) => (JSON.parse(r.text) as { status: string; error?: { code: number } }).error?.code ?? 'success').join(', ')}), ${limited.length} got 429`);
  t.same(
    results.filter((r) => r.status !== 200 && r.status !== 429),
    [],
    'only 200 or 429: never a 5xx',
  );
  if (spread < 300) {
    t.equal(limited.length, 15, 'the 15 requests above the limit of 5 get 429');
    t.equal(served.length, 5, 'the 5 within the limit are served');
  } else {
    // A starved test process sent them spread out: a slot freed by a finished send may serve a later one.
    t.ok(served.length >= 5 && limited.length >= 1, `sent over ${spread} ms: at least 5 served, the rest 429`);
  }
  for (const r of limited) t.equal(r.text, '{"message":"Too many requests to process"}', "CleverTap's documented 429 body");
  for (const r of served) {
    const b = JSON.parse(r.text) as { status: string; error?: { code: number } };
    t.ok(b.status === 'success' || b.error?.code === 2004, `served: success or 2004 at the deadline (${r.text.slice(0, 100)})`);
  }
  t.equal(child.exit(), undefined, 'still running');

  s.sim.setScenario('success');
  const after = await sendTo(s.url, payload('dur|conc|after|1'));
  t.match(after, { status: 200, body: { status: 'success' } }, 'keeps serving afterwards');
  const st = (await (await fetch(`${s.url}/v1/admin/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { tenants: { inFlight: number; concurrency: number }[] };
  t.match(st.tenants[0], { inFlight: 0, concurrency: 5 }, 'the in-flight count went back to 0');
  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  t.match(metrics, new RegExp(`wabridge_messages_total\\{tenant="demo",answer="429"\\} ${limited.length}\\b`), 'the 429s are counted in the metrics');
});

t.test('wabridge dlq list|replay: dead statuses listed, replayed, delivered by the running service', { timeout: 180_000 }, async (t) => {
  const s = await childStack({ retry: { baseDelay: '50ms', maxDelay: '100ms', retryFor: '300ms' } });
  t.teardown(() => s.close());
  s.sink.setDown(true);
  await s.start();
  const ids = Array.from({ length: 5 }, (_, i) => `dur|dlq|${i}|1`);
  for (const id of ids) t.match(await sendTo(s.url, payload(id)), { status: 200, body: { status: 'success' } });
  await s.sim.idle(30_000);
  const expected = ids.flatMap((id) => ['sent', 'delivered', 'read'].map((st) => `${id}|${st}`)).sort();
  t.same(webhookOutcomes(s).acked.map(keyOf).sort(), expected, 'all 15 statuses acknowledged');
  await eventually(async () => (await adminStatus(s.url)).store.outboxDead === 15, '15 dead callbacks', 30_000).catch(() => undefined);
  t.match((await adminStatus(s.url)).store, { outboxDead: 15, outboxPending: 0 }, 'after retryFor, all 15 are dead');

  const list = await runCli(['dlq', 'list', '--config', s.configFile, '--json']);
  t.equal(list.code, 0, `dlq list exits 0 ${list.stderr}`);
  const dead = JSON.parse(list.stdout) as { id: string; tenant: string; kind: string; msgId: string; payload: { msgId: string; status: string }; lastError?: string }[];
  t.equal(dead.length, 15, 'dlq list --json shows the 15');
  t.same(dead.map((d) => `${d.payload.msgId}|${d.payload.status}`).sort(), expected, 'with their msgIds and statuses');
  t.ok(
    dead.every((d) => d.tenant === 'demo' && d.kind === 'status' && /503|retry window/.test(d.lastError ?? '')),
    'tenant, kind and the last error (HTTP 503 / retry window)',
  );
  const human = await runCli(['dlq', 'list', '--config', s.configFile]);
  t.match(human.stdout, /15 dead callback\(s\)/, 'the text form counts them');
  t.equal(s.sink.statuses('demo').length, 0, 'nothing delivered yet');

  s.sink.setDown(false);
  await sleep(500);
  t.equal(s.sink.statuses('demo').length, 0, 'dead callbacks stay dead when CleverTap comes back');
  // One by id first: the oldest `sent`.
  const one = dead.filter((d) => d.payload.status === 'sent').sort((a, b) => Number(a.id) - Number(b.id))[0]!;
  const r1 = await runCli(['dlq', 'replay', '--config', s.configFile, '--json', one.id]);
  t.equal(r1.code, 0);
  t.same(JSON.parse(r1.stdout), { replayed: 1 }, 'replay by id');
  await eventually(() => s.sink.statuses('demo').length === 1, 'the replayed one at the sink', 15_000).catch(() => undefined);
  t.same(s.sink.statuses('demo').map((x) => x.key), [`${one.payload.msgId}|sent`], 'only that one delivered');

  const r2 = await runCli(['dlq', 'replay', '--config', s.configFile, '--json']);
  t.equal(r2.code, 0);
  t.same(JSON.parse(r2.stdout), { replayed: 14 }, 'replay the rest');
  await eventually(() => s.sink.statuses('demo').length === 15, 'all 15 at the sink', 30_000).catch(() => undefined);
  t.same([...sinkKeys(s.sink)].sort(), expected, 'the running wabridge delivered every replayed status');
  t.same(outOfOrder(s.sink), [], 'in order per msgId');
  t.equal(s.sink.replays(), 0, 'each once');
  const again = await runCli(['dlq', 'list', '--config', s.configFile, '--json']);
  t.same(JSON.parse(again.stdout), [], 'the dead-letter list is empty');
  await eventually(async () => (await adminStatus(s.url)).store.outboxPending === 0, 'empty outbox', 15_000).catch(() => undefined);
  t.match((await adminStatus(s.url)).store, { outboxPending: 0, outboxDead: 0 });
});

t.test('logs: pino JSON, one line per message with what support needs, no secrets, no phone numbers', { timeout: 120_000 }, async (t) => {
  const s = await childStack();
  t.teardown(() => s.close());
  const child = await s.start();
  const ids = Array.from({ length: 10 }, (_, i) => `dur|log|${i}|1`);
  await pool(ids, 5, (id) => sendTo(s.url, payload(id)));
  s.sim.setScenario({ scenario: 'number', times: 1 });
  t.match(await sendTo(s.url, payload('dur|log|bad|1')), { status: 200, body: { status: 'failure', error: { code: 2002 } } });
  const unauth = await fetch(`${s.url}/v1/tenants/demo/messages`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('demo:wrong-password').toString('base64')}` }, body: TEMPLATE });
  t.equal(unauth.status, 401);
  await s.sim.idle(30_000);
  await sleep(300);
  child.kill('SIGTERM');
  t.equal((await child.exited).code, 0);

  const parsed = child.stdout.map((l) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  });
  t.same(
    child.stdout.filter((_, i) => parsed[i] === undefined),
    [],
    'every stdout line is JSON',
  );
  t.ok(
    parsed.every((p) => p && typeof p.level === 'number' && typeof p.time === 'number' && typeof p.msg === 'string'),
    'pino lines (level, time, msg)',
  );
  const messages = parsed.filter((p): p is Record<string, unknown> => p?.msg === 'message');
  t.equal(messages.length, 11, 'one "message" line per messaging request that reached a mapping');
  for (const id of ids) {
    const mine = messages.filter((m) => m.msgId === id);
    t.equal(mine.length, 1, `${id}: one line`);
    t.match(mine[0], { tenant: 'demo', msgId: id, providerMessageId: /^wamid\./, answer: 'success', bspMs: Number }, `${id}: tenant, msgId, providerMessageId, answer, bspMs`);
  }
  t.match(
    messages.find((m) => m.msgId === 'dur|log|bad|1'),
    { tenant: 'demo', answer: '2002', bspMs: Number },
    'a refused message: its CleverTap code and the BSP time',
  );
  t.ok(
    messages.every((m) => typeof m.to === 'string' && m.to !== RECIPIENT && /^\d{4}\*+\d{2}$/.test(m.to)),
    'the recipient is masked',
  );

  // Every line any child printed in this file (all the runs above included), stdout and stderr.
  const forbidden = {
    // every setting the demo's mapping declares secret
    ...Object.fromEntries(secretValues(loadDemoMapping(), SETTINGS)),
    'Basic password': BASIC.split(':')[1]!,
    'Basic credentials (base64)': Buffer.from(BASIC).toString('base64'),
    'wrong Basic password': 'wrong-password',
    'recipient phone number': RECIPIENT,
  };
  t.ok(allChildOutput.length > 300, `${allChildOutput.length} lines audited`);
  for (const [what, value] of Object.entries(forbidden)) {
    const hits = allChildOutput.filter((l) => l.includes(value));
    t.same(hits.slice(0, 3), [], `no ${what} in any log line (${hits.length} lines)`);
  }
});
