// `wabridge serve --workers 2` as a real process tree on SQLite: the primary owns the database and the
// per-tenant limits, the workers serve HTTP. One tenant limit counts across workers, /metrics and the
// admin status cover every worker, a worker killed with -9 is replaced and loses nothing it
// acknowledged, and SIGTERM drains them all.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { ADMIN_TOKEN, childStack, killAllChildren, pool, sendTo } from '../support/child.js';
import { ROOT, eventually } from '../support/stack.js';

t.teardown(killAllChildren);
t.setTimeout(300_000);

const TEMPLATE = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8')) as Record<string, unknown>;
const payload = (msgId: string) => ({ ...TEMPLATE, msgId });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type WorkerStatus = { pid: number; admission: { limit: number } };

async function status(url: string): Promise<{ workers: WorkerStatus[]; store: { outboxPending: number } }> {
  const res = await request(`${url}/v1/admin/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  t.equal(res.statusCode, 200, 'admin status');
  return (await res.body.json()) as Awaited<ReturnType<typeof status>>;
}

/** The sum of a counter's samples with these labels in Prometheus text. */
function sample(text: string, name: string, labels: string): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && l.includes(labels))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

t.test('two workers share one tenant limit, and /metrics and the admin status cover both', { timeout: 120_000 }, async (t) => {
  const s = await childStack({ workers: 2, concurrency: 4 });
  t.teardown(() => s.close());
  const c = await s.start();
  const first = await status(s.url);
  t.equal(first.workers.length, 2, 'the admin status lists both workers');
  t.equal(new Set(first.workers.map((w) => w.pid)).size, 2, 'two processes');
  t.notOk(first.workers.some((w) => w.pid === c.pid), 'the primary serves no HTTP itself');

  s.sim.setScenario({ scenario: 'slow', delayMs: 1500 });
  // 12 at once over several connections: the primary's round robin spreads them over both workers.
  const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => sendTo(s.url, payload(`workers|1|1|${i}`))));
  const codes = answers.map((a) => ('status' in a ? a.status : a.error));
  t.equal(codes.filter((x) => x === 200).length, 4, `the tenant's 4 slots are shared by both workers: ${JSON.stringify(codes)}`);
  t.equal(codes.filter((x) => x === 429).length, 8, 'the rest are refused');

  const text = await (await request(`${s.url}/metrics`)).body.text();
  t.equal(sample(text, 'wabridge_messages_total', 'answer="success"'), 4, '/metrics sums both workers: 4 successes');
  t.equal(sample(text, 'wabridge_messages_total', 'answer="429"'), 8, 'and 8 refusals');
  // The console's overview reads the same sums.
  const overview = (await (await request(`${s.url}/v1/admin/overview`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).body.json()) as { tenants: { id: string; answers: Record<string, number>; bsp: { count: number } }[] };
  const demo = overview.tenants.find((x) => x.id === 'demo')!;
  t.same([demo.answers.success, demo.answers['429']], [4, 8], 'the overview covers both workers too');

  s.sim.setScenario('success');
  const later = await Promise.all(Array.from({ length: 4 }, (_, i) => sendTo(s.url, payload(`workers|1|2|${i}`))));
  t.same(later.map((a) => ('body' in a ? a.body : a.error)), Array(4).fill({ status: 'success' }), 'every slot was given back');

  c.kill('SIGTERM');
  const exit = await c.exited;
  t.equal(exit.code, 0, 'SIGTERM: the primary drains both workers and exits 0');
  for (const w of first.workers) t.throws(() => process.kill(w.pid, 0), `worker ${w.pid} is gone`);
});

t.test('kill -9 of a worker under load: it is replaced, and every acknowledged message reaches CleverTap whole', { timeout: 180_000 }, async (t) => {
  const s = await childStack({ workers: 2, statusDelaysMs: { sent: 100, delivered: 300, read: 600 }, retryDelayMs: 300 });
  t.teardown(() => s.close());
  const c = await s.start();
  const before = await status(s.url);
  const victim = before.workers[0]!.pid;
  let killedAt = 0;
  const ids = Array.from({ length: 300 }, (_, i) => `kill|1|1|${i}`);
  const answers = await pool(ids, 10, async (id, i) => {
    if (i === 100) {
      process.kill(victim, 'SIGKILL');
      killedAt = Date.now();
    }
    return sendTo(s.url, payload(id));
  });
  t.ok(killedAt > 0, 'a worker was killed mid-stream');
  const acked = ids.filter((_, i) => 'status' in answers[i]! && (answers[i] as { status: number }).status === 200);
  t.ok(acked.length >= 250, `${acked.length} of 300 sends answered success (a few in the killed worker's hands may not be)`);

  await eventually(async () => (await status(s.url)).workers.length === 2, 'a replacement worker is up', 30_000);
  const after = await status(s.url);
  t.notOk(after.workers.some((w) => w.pid === victim), 'the killed worker is not listed');

  // Every message CleverTap was told "success" about gets its sent, delivered and read.
  const complete = () => {
    const have = new Map<string, Set<string>>();
    for (const x of s.sink.statuses('demo')) have.set(x.msgId, (have.get(x.msgId) ?? new Set()).add(x.status));
    return acked.filter((id) => (have.get(id)?.size ?? 0) < 3);
  };
  await eventually(() => complete().length === 0, 'every acknowledged message has its three statuses at the sink', 60_000);
  t.same(complete(), [], 'nothing acknowledged was lost');

  c.kill('SIGTERM');
  t.equal((await c.exited).code, 0, 'SIGTERM drains the workers, the replacement included');
  await sleep(100);
  for (const w of after.workers) t.throws(() => process.kill(w.pid, 0), `worker ${w.pid} is gone`);
});
