// A fleet: two or three `wabridge serve` child processes sharing one Redis store (store.redis, a random
// store.redisPrefix per fleet, keys deleted afterwards with SCAN + UNLINK), behind a small load balancer,
// between the BSP simulator and the CleverTap sink (both in this process); everything on 127.0.0.1.
// Needs a Redis at REDIS_URL (default redis://127.0.0.1:6379); without one the file is skipped. The
// Redis-restart scenario never touches that Redis: it starts its own redis-server and kills that one.
// FLEET_SINK_DOWN_S (default 60) sets how long the CleverTap sink stays down in the outage scenario.
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse as parseYaml } from 'yaml';
import { mappingDirs } from '../../engine/mapping/loader.js';
import { loadSimulator, type SimWebhook } from '../../engine/standins/bsp-simulator.js';
import type { CleverTapSink } from '../../engine/standins/clevertap-sink.js';
import { ADMIN_TOKEN, BASIC, killAllChildren, pool, sendTo } from '../support/child.js';
import { REDIS_URL, describeRedis, get, ownRedis, poll, probeRedis, startFleet, type Fleet, type FleetOptions, type OwnRedis } from '../support/fleet.js';
import { ROOT, eventually } from '../support/stack.js';

const TEMPLATE = readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8');
const payload = (msgId: string) => ({ ...(JSON.parse(TEMPLATE) as Record<string, unknown>), msgId });
// The chain CleverTap must see in order; failed is outside it (it implies and supersedes nothing).
const RANK: Record<string, number> = { sent: 1, delivered: 2, read: 3 };
const keyOf = (w: Pick<SimWebhook, 'msgId' | 'status'>) => `${w.msgId}|${w.status}`;
// A BSP whose statuses echo no caller reference (its simulator.yaml reads no send.msgId): correlation is
// by its message id only. The first such folder of mappings/, whichever it is.
const NO_ECHO = mappingDirs(join(ROOT, 'mappings')).find((dir) => {
  const sim = loadSimulator(dir);
  return sim.ok && sim.simulator.send.msgId === undefined;
});
if (!NO_ECHO) throw new Error('no BSP in mappings/ whose statuses echo no msgId');
const NO_ECHO_SETTINGS = parseYaml(readFileSync(join(NO_ECHO, 'fixtures', 'settings.yaml'), 'utf8')) as Record<string, unknown>;
const SINK_DOWN_S = Number(process.env.FLEET_SINK_DOWN_S ?? 60);

/**
 * Status webhooks the simulator posted, split by whether wabridge finally answered 2xx. A BSP that
 * echoes no msgId gets it from the instances' own "message" log lines (msgId ↔ providerMessageId).
 */
function statusWebhooks(f: Fleet) {
  let all = f.sim.webhooks().filter((w) => w.kind === 'status');
  if (all.some((w) => w.msgId === undefined)) {
    const corr = new Map<string, string>();
    for (const i of f.instances)
      for (const l of i.child?.stdout ?? []) {
        if (!l.includes('"msg":"message"')) continue;
        const m = JSON.parse(l) as { msgId?: string; providerMessageId?: string };
        if (m.msgId && m.providerMessageId) corr.set(m.providerMessageId, m.msgId);
      }
    all = all.map((w) => ({ ...w, msgId: w.msgId ?? corr.get(w.providerMessageId) }));
  }
  return { all, acked: all.filter((w) => w.delivered), unacked: all.filter((w) => !w.delivered) };
}
const sinkKeys = (sink: CleverTapSink) => new Set(sink.statuses('demo').map((x) => x.key));

/** msgIds whose statuses reached the sink out of sent → delivered → read order (every arrival, replays included). */
function outOfOrder(sink: CleverTapSink): string[] {
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

/** Waits until every acknowledged status is at the sink; returns the acknowledged ones still missing. */
async function awaitDelivery(f: Fleet, timeoutMs: number): Promise<string[]> {
  const missing = () => {
    const have = sinkKeys(f.sink);
    return statusWebhooks(f).acked.map(keyOf).filter((k) => !have.has(k));
  };
  await poll(() => missing().length === 0, timeoutMs, 500);
  return missing();
}

/** The counts the issue asks for, as one comment line, and the checks behind them. */
function account(t: Test, f: Fleet, label: string, sends: number) {
  const { all, acked, unacked } = statusWebhooks(f);
  const have = sinkKeys(f.sink);
  const ackedKeys = new Set(acked.map(keyOf));
  const lost = [...ackedKeys].filter((k) => !have.has(k));
  const arrivedUnacked = unacked.filter((w) => have.has(keyOf(w))).length;
  t.comment(
    `${label}: sent ${sends} messages; statuses posted ${all.length}, acknowledged ${acked.length}, delivered ${have.size} distinct, ` +
      `duplicates (sink replays) ${f.sink.replays()}, lost ${lost.length}; never acknowledged by wabridge ${unacked.length} (${arrivedUnacked} of them delivered anyway)`,
  );
  if (unacked.length > 0) {
    const why: Record<string, number> = {};
    for (const w of unacked) why[String(w.outcome)] = (why[String(w.outcome)] ?? 0) + 1;
    t.comment(`${label}: last answer to the never-acknowledged webhooks (after ${unacked[0]!.attempts} attempts): ${JSON.stringify(why)}`);
  }
  t.same(lost.slice(0, 5), [], `${label}: 0 lost: every acknowledged status reached CleverTap`);
  const posted = new Set(all.map(keyOf));
  t.same([...have].filter((k) => !posted.has(k)).slice(0, 5), [], `${label}: nothing at the sink that the BSP never posted`);
  t.same(outOfOrder(f.sink).slice(0, 5), [], `${label}: per msgId, sent before delivered before read (every arrival, replays included)`);
  return { acked: acked.length, delivered: have.size, lost: lost.length, unacked: unacked.length };
}

const admin = await probeRedis(REDIS_URL);
if (!admin) {
  t.plan(0, `no Redis at ${describeRedis(REDIS_URL)} (set REDIS_URL): fleet tests skipped`);
} else {
  admin.disconnect();
  t.teardown(killAllChildren);
  t.setTimeout(290_000);

  const fleetFor = async (t: Test, o: Omit<FleetOptions, 'redisUrl'> & { redisUrl?: string }) => {
    const f = await startFleet({ redisUrl: REDIS_URL, ...o });
    t.teardown(() => f.close());
    const t0 = Date.now();
    await f.start();
    t.comment(`${o.instances} instances started in ${Date.now() - t0} ms (Redis prefix ${f.prefix})`);
    return f;
  };

  t.test('(1) sends on A, webhooks on B; a fleet-wide concurrency limit; a killed instance gives its slots back', { timeout: 90_000 }, async (t) => {
    // This BSP does not echo the msgId in its statuses: B can only find it through the pair A stored.
    t.comment(`BSP without msgId echo: ${basename(NO_ECHO)}`);
    const f = await fleetFor(t, { instances: 2, provider: basename(NO_ECHO), settings: NO_ECHO_SETTINGS, concurrency: 5 });
    const [A, B] = f.instances as [Fleet['instances'][0], Fleet['instances'][0]];
    f.lb.setTargets([B.url]);
    const ids = Array.from({ length: 60 }, (_, i) => `fleet|ab|${i}|1`);
    const answers = await pool(ids, 5, (id) => sendTo(A.url, payload(id)));
    t.same(
      answers.filter((a) => !('status' in a) || (a.body as { status?: string }).status !== 'success'),
      [],
      'all 60 sends on A answered success',
    );
    await f.sim.idle(30_000);
    t.same(await awaitDelivery(f, 30_000), [], 'every acknowledged status at the sink');
    const expected = ids.flatMap((id) => ['sent', 'delivered', 'read'].map((s) => `${id}|${s}`)).sort();
    t.same([...sinkKeys(f.sink)].sort(), expected, 'all 180 statuses reached the sink, each with the msgId of its send');
    const webhookLines = (i: Fleet['instances'][0]) => i.child!.stdout.filter((l) => l.includes('"msg":"webhook"')).length;
    // The log lines are written asynchronously and read from a pipe: the last ones may still be on their way.
    await eventually(() => webhookLines(B) >= 180, 'B logged every webhook', 5_000).catch(() => undefined);
    t.equal(webhookLines(A), 0, 'A took no webhook');
    t.ok(webhookLines(B) >= 180, `B took every webhook (${webhookLines(B)})`);
    t.same(
      f.sim.webhooks().filter((w) => w.rawBody.includes('fleet|ab|')).length,
      0,
      "the BSP's statuses carry no msgId: B found each one in the pairs A stored",
    );
    account(t, f, 'A→B', ids.length);

    // 20 concurrent sends, 10 on A and 10 on B, limit 5 for the tenant: 15 get 429 whatever instance took them.
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 20 });
    t.teardown(() => agent.destroy());
    const call = (base: string, method: 'GET' | 'POST', path: string, body?: string) =>
      new Promise<{ status: number; text: string; flushedAt: number }>((res, rej) => {
        let flushedAt = 0;
        const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(BASIC).toString('base64')}`, 'content-length': String(Buffer.byteLength(body)) };
        const req = httpRequest(`${base}${path}`, { method, agent, headers, timeout: 30_000 }, (r) => {
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
    await Promise.all(Array.from({ length: 20 }, (_, i) => call(i % 2 ? B.url : A.url, 'GET', '/healthz')));
    f.sim.setScenario({ scenario: 'slow', delayMs: 800 });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => call(i % 2 ? B.url : A.url, 'POST', '/v1/tenants/demo/messages', JSON.stringify(payload(`fleet|conc|${i}|1`)))));
    const spread = Math.max(...results.map((r) => r.flushedAt)) - Math.min(...results.map((r) => r.flushedAt));
    const limited = results.filter((r) => r.status === 429);
    const served = results.filter((r) => r.status === 200);
    t.comment(`20 concurrent sends (10 on A, 10 on B) flushed within ${spread} ms: ${served.length} served, ${limited.length} got 429 (A ${results.filter((r, i) => r.status === 429 && i % 2 === 0).length}, B ${results.filter((r, i) => r.status === 429 && i % 2 === 1).length})`);
    t.same(
      results.filter((r) => r.status !== 200 && r.status !== 429),
      [],
      'only 200 or 429',
    );
    if (spread < 500) {
      t.equal(limited.length, 15, 'exactly 15 of 20 get 429: the limit of 5 holds across both instances');
      t.equal(served.length, 5, 'exactly 5 served');
    } else {
      t.ok(served.length >= 5 && limited.length >= 1, `sent over ${spread} ms: at least 5 served, the rest 429`);
    }
    for (const r of limited) t.equal(r.text, '{"message":"Too many requests to process"}');
    f.sim.setScenario('success');
    for (const inst of [A, B]) {
      const st = (await (await fetch(`${inst.url}/v1/admin/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { tenants: { inFlight: number }[] };
      t.equal(st.tenants[0]?.inFlight, 0, `${inst.name}: nothing in flight afterwards`);
    }

    // A kill -9 while A holds all 5 slots: B refuses at first (the slots are A's), then within the
    // instance TTL (10 s) A's slots are reclaimed and B serves again. No leak.
    f.sim.setScenario('hang');
    const hung = Array.from({ length: 5 }, (_, i) => sendTo(A.url, payload(`fleet|leak|${i}|1`)));
    await eventually(async () => {
      const st = (await (await fetch(`${A.url}/v1/admin/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { tenants: { inFlight: number }[] };
      return st.tenants[0]?.inFlight === 5;
    }, 'A holding 5 slots', 10_000);
    A.child!.kill('SIGKILL');
    await A.child!.exited;
    await Promise.all(hung);
    f.sim.setScenario('success');
    const killedAt = Date.now();
    const refused = await sendTo(B.url, payload('fleet|leak|b|1'));
    t.match(refused, { status: 429 }, "right after the kill, A's 5 slots still count: B answers 429");
    let servedAfter = 0;
    await eventually(
      async () => {
        const r = await sendTo(B.url, payload(`fleet|leak|b|${Date.now()}`));
        if ('status' in r && r.status === 200) servedAfter = Date.now() - killedAt;
        return servedAfter > 0;
      },
      'B serving again',
      20_000,
    ).catch(() => undefined);
    t.ok(servedAfter > 0 && servedAfter < 15_000, `A's slots reclaimed ${servedAfter} ms after its kill -9 (instance TTL 10 s)`);
  });

  t.test('(1b) a fleet-wide BSP rate: bspRate 10 across two instances, a burst smoothed within the deadline', { timeout: 30_000 }, async (t) => {
    const f = await fleetFor(t, { instances: 2, bspRate: 10, deadline: '3s' });
    const [A, B] = f.instances as [Fleet['instances'][0], Fleet['instances'][0]];
    // One send per instance first (connections, first-call costs), in a second of its own.
    for (const inst of [A, B]) t.match(await sendTo(inst.url, payload(`fleet|rate|warm${inst.name}|1`)), { status: 200 }, `${inst.name} warmed up`);
    const before = f.sim.sent().length;
    // Start 300 ms into a fresh second: every token is then taken well inside its window (the first
    // ones at once, the waiting ones right after a second begins), so the BSP sees them in that second.
    await sleep(1000 - (Date.now() % 1000) + 300);
    const N = 50;
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: N }, (_, i) => sendTo(i % 2 ? B.url : A.url, payload(`fleet|rate|${i}|1`))));
    const tookMs = Date.now() - t0;
    const codes: Record<string, number> = {};
    let success = 0;
    const other: unknown[] = [];
    for (const a of answers) {
      const body = 'body' in a ? (a.body as { status?: string; error?: { code?: number; message?: string } }) : undefined;
      const k = 'error' in a ? 'error' : a.status !== 200 ? `HTTP ${a.status}` : body?.status === 'success' ? 'success' : `${body?.error?.code}: ${body?.error?.message}`;
      codes[k] = (codes[k] ?? 0) + 1;
      if (k === 'success') success++;
      else if (k !== '2004: BSP rate limit of 10/s reached') other.push(a);
    }
    const sent = f.sim.sent().slice(before);
    const perSecond = new Map<number, number>();
    for (const r of sent) {
      const sec = Math.floor(Date.parse(r.at) / 1000);
      perSecond.set(sec, (perSecond.get(sec) ?? 0) + 1);
    }
    const t0s = Math.floor(t0 / 1000);
    t.comment(`${N} sends (25 on A, 25 on B) at ${t0 % 1000} ms into a second, answered within ${tookMs} ms: ${JSON.stringify(codes)}; BSP calls per second: ${JSON.stringify(Object.fromEntries([...perSecond].map(([k, v]) => [`+${k - t0s}s`, v])))}`);
    t.same(other, [], 'every answer is HTTP 200: success or 2004 "BSP rate limit of 10/s reached" (none 5xx, none 429, no deadline miss)');
    t.ok(Math.max(...perSecond.values()) <= 10, 'at most 10 BSP calls in any calendar second, across both instances');
    t.ok(success >= 30, `the burst was smoothed over the next seconds, not refused (${success} sent, ≥ 30)`);
    t.ok(N - success >= 10, `what could not be sent within the 3 s deadline got 2004 (${N - success})`);
    t.equal(sent.length, success, 'the BSP got exactly the sends answered success: none lost, none sent after a 2004');
    t.ok(tookMs < 3800, 'every answer within the deadline');
    const metrics = await Promise.all([A, B].map(async (i) => (await get(`${i.url}/metrics`)).text));
    const limited = metrics.reduce((n, m) => n + Number(/^wabridge_bsp_rate_limited_total\{tenant="demo"\} (\d+)/m.exec(m)?.[1] ?? 0), 0);
    t.equal(limited, N - success, 'wabridge_bsp_rate_limited_total counts them');
  });

  t.test('(2) kill -9 of one of three instances in the middle of 10,000 statuses', { timeout: 150_000 }, async (t) => {
    // Statuses 0.1, 4 and 8 s after each send: the kill always lands with statuses of the same msgIds
    // still to come. The simulator retries a failed webhook after 1, 2, 4 s (through the balancer), all
    // before the next status of its msgId, as a real BSP's retries (hours) would be on a busy 2-core
    // machine. (A `sent` acknowledged after its `delivered` would still count: the delivered releases an
    // implied sent first, and the real one is then a duplicate; test/e2e/shuffled.test.ts.)
    const f = await fleetFor(t, { instances: 3, statusDelaysMs: { sent: 100, delivered: 4000, read: 8000 }, retryDelayMs: 1000, retry: { baseDelay: '100ms', maxDelay: '1s', retryFor: '1h' } });
    const N = 3334;
    const ids = Array.from({ length: N }, (_, i) => `fleet|kill|${i}|1`);
    const t0 = Date.now();
    let killedAt = 0;
    let ackedAtKill = 0;
    let sendsDone = false;
    let sendsDoneAtKill = false;
    const victim = f.instances[1]!;
    const killer = (async () => {
      if (!(await poll(() => f.sim.webhooks().filter((w) => w.delivered).length >= 4000, 90_000))) throw new Error('4,000 statuses not acknowledged within 90 s');
      ackedAtKill = statusWebhooks(f).acked.length;
      sendsDoneAtKill = sendsDone;
      killedAt = Date.now();
      victim.child!.kill('SIGKILL');
    })().catch((e: unknown) => e as Error);
    // Sends go to the two instances that survive: a send cut by the kill is CleverTap's to retry (it
    // gets no answer), which would blur the count; the webhooks go through the balancer to all three.
    const survivors = [f.instances[0]!.url, f.instances[2]!.url];
    const answers = await pool(ids, 20, (id, i) => sendTo(survivors[i % 2]!, payload(id)));
    sendsDone = true;
    t.notOk(await killer, 'killed mid-stream');
    t.equal((await victim.child!.exited).signal, 'SIGKILL', `instance ${victim.name} died of SIGKILL`);
    const byOutcome: Record<string, number> = {};
    for (const a of answers) {
      const k = 'error' in a ? 'error' : a.status !== 200 ? `HTTP ${a.status}` : ((a.body as { status?: string }).status ?? '?');
      byOutcome[k] = (byOutcome[k] ?? 0) + 1;
    }
    t.comment(`sends: ${N} to A and C at concurrency 20 in ${Date.now() - t0} ms, outcomes ${JSON.stringify(byOutcome)}; kill after ${ackedAtKill} statuses acknowledged, ${killedAt - t0} ms in (sends ${sendsDoneAtKill ? 'done' : 'still going'})`);
    await f.sim.idle(60_000);
    const ackedDone = Date.now();
    const { acked, all } = statusWebhooks(f);
    t.ok(all.length >= 10_000, `${all.length} statuses posted by the BSP`);
    // The victim's leased callbacks come back after the 30 s lease.
    t.same(await awaitDelivery(f, 60_000), [], 'every acknowledged status at the sink');
    const deliveredDone = Date.now();
    const r = account(t, f, 'kill -9', N);
    t.ok(r.acked >= 10_000, 'at least 10,000 statuses acknowledged');
    t.comment(
      `3 instances (one killed): ${r.acked} statuses acknowledged in ${ackedDone - t0} ms from the first send (${Math.round(r.acked / ((ackedDone - t0) / 1000))}/s, paced by the sends and the 8 s status delay); ` +
        `all delivered ${deliveredDone - t0} ms from the first send (a callback the killed instance had leased waits out its 30 s lease)`,
    );
    const ackedKeys = new Set(acked.map(keyOf));
    const complete = ids.filter((id) => ['sent', 'delivered', 'read'].every((s) => ackedKeys.has(`${id}|${s}`)));
    t.equal(complete.length, N, `all ${N} msgIds had their three statuses acknowledged`);
  });

  t.test(`(3) throughput of two instances, then CleverTap down ${SINK_DOWN_S} s while statuses keep arriving`, { timeout: 60_000 + SINK_DOWN_S * 1000 + 60_000 }, async (t) => {
    const f = await fleetFor(t, { instances: 2, statusDelaysMs: { sent: 50, delivered: 300, read: 600 }, retry: { baseDelay: '200ms', maxDelay: '2s', retryFor: '1h' } });
    // Throughput: 1,000 sends as fast as the two instances take them, 3,000 statuses.
    const N = 1000;
    const t0 = Date.now();
    const answers = await pool(
      Array.from({ length: N }, (_, i) => `fleet|tp|${i}|1`),
      50,
      (id) => sendTo(f.lb.url, payload(id)),
    );
    const sendMs = Date.now() - t0;
    t.equal(answers.filter((a) => 'status' in a && a.status === 200).length, N, 'all sends answered');
    let ingestMs = 0;
    t.ok(await poll(() => f.sim.webhooks().filter((w) => w.delivered).length >= 3 * N && (ingestMs = Date.now() - t0) > 0, 60_000, 100), '3,000 statuses acknowledged');
    let deliverMs = 0;
    t.ok(await poll(() => f.sink.statuses('demo').length >= 3 * N && (deliverMs = Date.now() - t0) > 0, 60_000, 100), '3,000 statuses delivered');
    t.comment(
      `throughput, 2 instances: ${N} sends in ${sendMs} ms (${Math.round(N / (sendMs / 1000))}/s); ${3 * N} statuses ingested by ${ingestMs} ms (${Math.round((3 * N) / (ingestMs / 1000))}/s) ` +
        `and delivered by ${deliverMs} ms (${Math.round((3 * N) / (deliverMs / 1000))}/s), from the first send (the last status is posted 600 ms after its send)`,
    );
    account(t, f, 'throughput', N);
    f.sink.clear();
    f.sim.reset();

    // The outage: 10 sends a second while CleverTap answers 503.
    f.sink.setDown(true);
    const downAt = Date.now();
    let sent = 0;
    while (Date.now() - downAt < SINK_DOWN_S * 1000) {
      const batch = Array.from({ length: 5 }, () => `fleet|down|${sent++}|1`);
      await Promise.all([...batch.map((id) => sendTo(f.lb.url, payload(id))), sleep(500)]);
    }
    await f.sim.idle(30_000);
    const refusedWhileDown = f.sink.received().length;
    t.equal(f.sink.statuses('demo').length, 0, 'nothing accepted while CleverTap is down');
    f.sink.setDown(false);
    const upAt = Date.now();
    t.same(await awaitDelivery(f, 60_000), [], 'every acknowledged status at the sink');
    t.comment(`CleverTap down ${Date.now() - downAt - (Date.now() - upAt)} ms: ${refusedWhileDown} callback POSTs answered 503 meanwhile; backlog delivered ${Date.now() - upAt} ms after it came back`);
    const r = account(t, f, `sink down ${SINK_DOWN_S} s`, sent);
    t.equal(r.acked, 3 * sent, 'every status of the outage acknowledged');
    t.equal(r.lost, 0, '0 lost');
    const stats = await get(`${f.instances[0]!.url}/v1/admin/status`, { authorization: `Bearer ${ADMIN_TOKEN}` });
    t.match(JSON.parse(stats.text), { store: { outboxDead: 0 } }, 'nothing dead-lettered');
  });

  t.test('(4) Redis restarted mid-run (a private redis-server): not ready, recovers, loses nothing acknowledged', { timeout: 120_000 }, async (t) => {
    let redis: OwnRedis;
    try {
      redis = await ownRedis('always');
    } catch (e) {
      t.plan(0, `cannot start a private redis-server: ${(e as Error).message}`);
      return;
    }
    t.teardown(() => redis.close());
    t.comment(`private redis-server on port ${redis.port}: --save "" --appendonly yes --appendfsync always`);
    const f = await fleetFor(t, { instances: 2, redisUrl: redis.url, statusDelaysMs: { sent: 50, delivered: 300, read: 600 }, retryDelayMs: 500, retry: { baseDelay: '200ms', maxDelay: '1s', retryFor: '1h' } });
    for (const i of f.instances) t.equal((await get(`${i.url}/readyz`)).status, 200, `${i.name} ready`);

    const N = 300;
    let sent = 0;
    const outcomes: Record<string, number> = {};
    const stream = (async () => {
      for (; sent < N; ) {
        const batch = Array.from({ length: 10 }, () => `fleet|redis|${sent++}|1`);
        const rs = await Promise.all([...batch.map((id) => sendTo(f.lb.url, payload(id))), sleep(400)]);
        for (const a of rs.slice(0, batch.length) as Awaited<ReturnType<typeof sendTo>>[]) {
          const k = 'error' in a ? 'error' : a.status !== 200 ? `HTTP ${a.status}` : ((a.body as { status?: string; error?: { code?: number } }).error?.code ?? 'success');
          outcomes[String(k)] = (outcomes[String(k)] ?? 0) + 1;
        }
      }
    })();
    t.ok(await poll(() => statusWebhooks(f).acked.length >= 150, 30_000), '150 statuses acknowledged before Redis is killed');
    const ackedBefore = new Set(statusWebhooks(f).acked.map(keyOf));
    await redis.kill();
    const killedAt = Date.now();
    const notReady: string[] = [];
    for (const i of f.instances) {
      let seen = 0;
      await eventually(async () => (seen = (await get(`${i.url}/readyz`)).status) === 503, `${i.name} /readyz 503`, 5_000).catch(() => undefined);
      if (seen === 503) notReady.push(i.name);
    }
    t.same(notReady, ['A', 'B'], `both instances answer /readyz 503 while Redis is down (${Date.now() - killedAt} ms after the kill)`);
    t.equal((await get(`${f.instances[0]!.url}/healthz`)).status, 200, '/healthz stays 200 (the process is fine: no restart wanted)');
    await sleep(Math.max(0, 3000 - (Date.now() - killedAt)));
    await redis.start();
    const restartedAt = Date.now();
    for (const i of f.instances) await eventually(async () => (await get(`${i.url}/readyz`)).status === 200, `${i.name} ready again`, 20_000).catch(() => undefined);
    const readyAgain = Date.now() - restartedAt;
    for (const i of f.instances) t.equal((await get(`${i.url}/readyz`)).status, 200, `${i.name} ready again`);
    t.comment(`Redis down ${restartedAt - killedAt} ms (SIGKILL, then restarted on its AOF); both ready again ${readyAgain} ms after the restart`);
    await stream;
    t.comment(`sends: ${JSON.stringify(outcomes)}`);
    await f.sim.idle(60_000);
    t.same(await awaitDelivery(f, 60_000), [], 'every acknowledged status at the sink');
    const have = sinkKeys(f.sink);
    t.same([...ackedBefore].filter((k) => !have.has(k)), [], `the ${ackedBefore.size} statuses acknowledged before Redis died all reached CleverTap (the AOF had them)`);
    account(t, f, 'Redis restart', N);
  });
}
