// A BSP that does not keep status order (Meta says webhooks may arrive out of order) and retries
// webhooks: the simulator's `shuffled` scenario posts each message's statuses in a random order, each
// twice. Whatever the order, CleverTap must get exactly one sent, one delivered and one read per
// message (a failing recipient: one sent, one failed), sent before delivered before read, so a
// campaign's counts match the BSP's. Once on one process with SQLite, once on two processes sharing
// Redis (skipped without a Redis at REDIS_URL).
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BspSimulator } from '../../engine/standins/bsp-simulator.js';
import type { CleverTapSink } from '../../engine/standins/clevertap-sink.js';
import { pool, sendTo } from '../support/child.js';
import { REDIS_URL, describeRedis, poll, probeRedis, startFleet } from '../support/fleet.js';
import { ROOT, startStack } from '../support/stack.js';

const TEMPLATE = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8')) as Record<string, unknown>;
const CHAIN = ['sent', 'delivered', 'read'];
// SHUFFLED_N: a bigger campaign for a measurement (the default keeps the test short).
const N = Number(process.env.SHUFFLED_N ?? 150); // messages delivered
const F = 10; // messages to recipients ending in 0000: sent, then failed

interface Run {
  sim: BspSimulator;
  sink: CleverTapSink;
  /** Every host's log lines. */
  logs: () => string[];
  send: (body: object, i: number) => Promise<{ status: number; body: unknown } | { error: string }>;
  /** The host's metrics text, where the run has one host in this process. */
  metrics?: () => Promise<string>;
}

async function shuffledCampaign(t: Test, label: string, r: Run): Promise<void> {
  r.sim.setScenario('shuffled');
  const ok = Array.from({ length: N }, (_, i) => `shuffle|${label}|${i}|1`);
  const failing = Array.from({ length: F }, (_, i) => `shuffle|${label}|f${i}|1`);
  const messages = [...ok.map((msgId) => ({ ...TEMPLATE, msgId })), ...failing.map((msgId, i) => ({ ...TEMPLATE, msgId, to: `9199999${i}0000` }))];
  const answers = await pool(messages, 10, (m, i) => r.send(m, i));
  t.same(
    answers.filter((a) => !('status' in a) || (a.body as { status?: string }).status !== 'success'),
    [],
    `all ${messages.length} sends answered success`,
  );
  await r.sim.idle(60_000 + 100 * N);
  const posted = r.sim.webhooks().filter((w) => w.kind === 'status');
  t.equal(posted.length, 6 * N + 4 * F, 'each status posted twice');
  t.same(posted.filter((w) => !w.delivered).length, 0, 'every webhook acknowledged');

  const expected = [...ok.flatMap((id) => CHAIN.map((s) => `${id}|${s}`)), ...failing.flatMap((id) => [`${id}|sent`, `${id}|failed`])].sort();
  const keys = () => r.sink.statuses('demo').map((s) => s.key);
  await poll(() => keys().length >= expected.length, 30_000 + 20 * N, 100);
  // Anything sent twice or late would arrive within the next delivery rounds (every 250 ms at most).
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.same(keys().sort(), expected, 'at the sink: one sent, one delivered, one read per message (sent and failed for the failing ones)');
  t.equal(r.sink.replays(), 0, 'nothing forwarded twice');

  const arrivals = new Map<string, string[]>();
  let entries = 0;
  const refused = r.sink.received().filter((c) => !c.accepted);
  t.same(refused, [], 'every callback valid against the CleverTap schema (no implied flag in the body)');
  for (const c of r.sink.received()) {
    if (c.kind !== 'status') continue;
    for (const e of (c.body as { statuses: { msgId: string; status: string }[] }).statuses) {
      entries++;
      arrivals.set(e.msgId, [...(arrivals.get(e.msgId) ?? []), e.status]);
    }
  }
  const outOfOrder = ok.filter((id) => (arrivals.get(id) ?? []).join(' ') !== 'sent delivered read');
  t.same(outOfOrder.map((id) => `${id}: ${(arrivals.get(id) ?? []).join(' → ')}`), [], 'per msgId: sent, then delivered, then read');
  t.same(failing.filter((id) => (arrivals.get(id) ?? []).filter((s) => s !== 'failed').join(' ') !== 'sent'), [], 'a failing message: its sent, once');

  // The hosts' own account: statuses accepted, implied and recognised as duplicates; implied deliveries named.
  const lines = r.logs().filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const sum = (msg: string, key: string) => lines.filter((l) => l.msg === msg).reduce((n, l) => n + Number(l[key] ?? 0), 0);
  const accepted = sum('webhook', 'accepted');
  const duplicates = sum('webhook', 'duplicates');
  const implied = sum('webhook', 'implied');
  const impliedNamed = lines.filter((l) => l.msg === 'implied statuses delivered').flatMap((l) => l.implied as string[]);
  t.equal(implied, impliedNamed.length, 'each implied status added is named in an "implied statuses delivered" line');
  t.ok(implied > 0, 'the shuffle made some statuses implied');
  if (r.metrics) {
    const text = await r.metrics();
    const counted = text.split('\n').filter((l) => l.startsWith('wabridge_statuses_implied_total{')).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    t.equal(counted, implied, 'wabridge_statuses_implied_total counts them');
  }
  const held = sum('webhook', 'held');
  // A status held for its send's correlation counts as accepted, and adds nothing if an implied twin got there first.
  if (held === 0) t.equal(accepted + implied, expected.length, 'accepted + implied = what CleverTap got');
  else t.ok(accepted + implied >= expected.length, `accepted + implied cover what CleverTap got (${held} held for a correlation)`);
  t.equal(accepted + duplicates, posted.length, 'every status webhook was either accepted or recognised as a duplicate');
  t.comment(
    `${label}: ${messages.length} messages (${F} failing); ${posted.length} status webhooks posted, ${posted.length / 2} of them duplicates by construction; ` +
      `hosts: ${accepted} accepted, ${implied} implied, ${duplicates} recognised as duplicates; sink: ${entries} status entries, ${keys().length} distinct, ${r.sink.replays()} replays`,
  );
}

t.test('SQLite, one process: shuffled and duplicated statuses reach CleverTap complete and in order', { timeout: 120_000 + 200 * N }, async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  await shuffledCampaign(t, 'sqlite', {
    sim: s.sim,
    sink: s.sink,
    logs: () => s.logs,
    send: async (m) => s.send(m),
    metrics: () => s.host.metrics.registry.metrics(),
  });
});

t.test('Redis, two processes behind a balancer: the same', { timeout: 180_000 + 200 * N }, async (t) => {
  const probe = await probeRedis(REDIS_URL);
  if (!probe) {
    t.plan(0, `no Redis at ${describeRedis(REDIS_URL)} (set REDIS_URL): skipped`);
    return;
  }
  probe.disconnect();
  const f = await startFleet({ instances: 2, redisUrl: REDIS_URL });
  t.teardown(() => f.close());
  await f.start();
  await shuffledCampaign(t, 'redis', {
    sim: f.sim,
    sink: f.sink,
    logs: () => f.instances.flatMap((i) => i.child?.stdout ?? []),
    send: (m, i) => sendTo(f.instances[i % 2]!.url, m),
  });
});
