// The SQLite store: the shared Store contract in memory and on a file, plus what only SQLite has —
// schema versioning, expiry against the given clock, and an acknowledged ingest surviving kill -9.
import t from 'tap';
import { existsSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { CLAIMABLE_SQL, MIGRATIONS, TRACE_MIGRATIONS, openSqliteStore, registerSqlFunctions, traceKey, tracePathOf } from '../../engine/stores/sqlite.js';
import type { NewCallback } from '../../engine/stores/store.js';
import { storeContract } from './store-contract.js';
import { killAfter } from '../support/kill-after.js';

const dir = mkdtempSync(join(tmpdir(), 'wab-store-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const T0 = 1_700_000_000_000;
const DAY = 24 * 3600 * 1000;

storeContract(t, 'sqlite :memory:', async () => openSqliteStore(':memory:'));
storeContract(t, 'sqlite file', async () => openSqliteStore(join(dir, `contract-${seq++}.db`)));

const sent = (msgId: string): NewCallback => ({
  tenant: 'acme',
  kind: 'status',
  msgId,
  rank: 1,
  payload: { msgId, status: 'sent', timestamp: '1700000000' },
  dedupeKey: `acme|${msgId}|sent`,
});

t.test('creates the parent folder; the schema is versioned and reopening keeps data', async (t) => {
  const file = join(dir, 'nested', 'deeper', 'w.db');
  const s1 = openSqliteStore(file);
  await s1.ingest({ callbacks: [sent('m1')], pending: [] }, T0);
  await s1.close();
  t.ok(existsSync(file));
  const s2 = openSqliteStore(file);
  t.match(await s2.stats(), { outboxPending: 1 }, 'migrations are not re-run over existing data');
  await s2.close();
  const db = new Database(file, { readonly: true });
  t.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length, 'the schema is at the last migration');
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  db.close();
});

t.test('dedupe keys expire with the clock ingest is given, and the sweep removes them', async (t) => {
  const s = openSqliteStore(':memory:', { dedupeTtlMs: 7 * DAY });
  t.teardown(() => s.close());
  await s.ingest({ callbacks: [sent('m1')], pending: [] }, T0);
  t.same(await s.ingest({ callbacks: [sent('m1')], pending: [] }, T0 + 7 * DAY - 1), { accepted: 0, duplicates: 1, implied: 0 });
  t.same(await s.ingest({ callbacks: [sent('m1')], pending: [] }, T0 + 7 * DAY), { accepted: 1, duplicates: 0, implied: 0 }, 'an expired key is a new callback');
  await s.ingest({ callbacks: [sent('m2')], pending: [] }, T0);
  await s.sweep(T0 + 8 * DAY, DAY);
  t.same(await s.ingest({ callbacks: [sent('m2')], pending: [] }, T0), { accepted: 1, duplicates: 0, implied: 0 }, 'swept keys are gone');
});

t.test('the sweep deletes expired click links, and only those', async (t) => {
  const file = join(dir, 'clicks.db');
  const s = openSqliteStore(file);
  const link = (token: string, expiresAt: number) => ({ token, tenant: 'acme', msgId: 'm1', url: 'https://shop.test/a', expiresAt });
  await s.saveClickLinks([link('a'.repeat(22), T0 + 1000), link('b'.repeat(22), T0 + 2000)], T0);
  await s.sweep(T0 + 1000, DAY);
  await s.close();
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  t.same(db.prepare('SELECT token FROM click_links').pluck().all(), ['b'.repeat(22)]);
});

t.test('one failing write in a group commit undoes only itself', async (t) => {
  const s = openSqliteStore(':memory:');
  t.teardown(() => s.close());
  // Same turn, so one transaction: a correlation before and after one that breaks NOT NULL, and an ingest.
  const results = await Promise.allSettled([
    s.saveCorrelation('acme', 'w1', 'm1', DAY),
    s.saveCorrelation('acme', 'w2', null as unknown as string, DAY),
    s.ingest({ callbacks: [sent('m3')], pending: [] }, Date.now()),
    s.saveCorrelation('acme', 'w3', 'm3', DAY),
  ]);
  t.same(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
  t.match((results[1] as PromiseRejectedResult).reason, { code: 'SQLITE_CONSTRAINT_NOTNULL' }, 'the failing write gets its own error');
  t.equal(await s.findMsgIds('acme', ['w1']).then((m) => m[0]), 'm1', 'the write before it is kept');
  t.equal(await s.findMsgIds('acme', ['w3']).then((m) => m[0]), 'm3', 'the write after it is kept');
  t.equal(await s.findMsgIds('acme', ['w2']).then((m) => m[0]), undefined);
  t.match(await s.stats(), { outboxPending: 1 }, 'the ingest is kept');
});

t.test('correlations expire by the store clock and are swept', async (t) => {
  let now = T0;
  const s = openSqliteStore(':memory:', { clock: () => now });
  t.teardown(() => s.close());
  await s.saveCorrelation('acme', 'w1', 'm1', 1000);
  now = T0 + 999;
  t.equal(await s.findMsgIds('acme', ['w1']).then((m) => m[0]), 'm1');
  now = T0 + 1000;
  t.equal(await s.findMsgIds('acme', ['w1']).then((m) => m[0]), undefined);
  now = T0;
  await s.sweep(T0 + 1000, DAY);
  t.equal(await s.findMsgIds('acme', ['w1']).then((m) => m[0]), undefined, 'deleted, not only hidden');
});

t.test('claimDue stays fast with many rows', async (t) => {
  const s = openSqliteStore(join(dir, 'big.db'));
  t.teardown(() => s.close());
  const N = 10_000;
  // Mostly delivered history plus a pending backlog: the shape a busy day leaves.
  await s.ingest({ callbacks: Array.from({ length: N }, (_, i) => sent(`h${i}`)), pending: [] }, T0);
  for (let done = 0; done < N * 0.8; ) {
    const got = await s.claimDue(T0, Math.min(5000, N * 0.8 - done), 1);
    await s.markDelivered(got.map((r) => r.id), T0);
    done += got.length;
  }
  const started = performance.now();
  const got = await s.claimDue(T0 + 10, 100, 30_000);
  const ms = performance.now() - started;
  t.equal(got.length, 100);
  const db = new Database(join(dir, 'big.db'), { readonly: true });
  const plan = (db.prepare(`EXPLAIN QUERY PLAN ${CLAIMABLE_SQL}`).all({ now: T0, limit: 100 }) as { detail: string }[]).map((r) => r.detail).join('\n');
  db.close();
  t.match(plan, /SEARCH o USING INDEX outbox_due/, 'due callbacks come from the partial index, in order');
  t.match(plan, /SEARCH b USING COVERING INDEX outbox_queue/, 'the head check is an index look-up');
  t.notMatch(plan, /SCAN|TEMP B-TREE/, `no scan, no sort:\n${plan}`);
  t.match(await s.stats(), { delivered: N * 0.8, outboxPending: N * 0.2 }, 'the trigger-kept counts agree');
  t.ok(ms < 250, `claimDue(100) over ${N} rows took ${ms.toFixed(1)} ms`);
});

t.test('an acknowledged ingest survives kill -9', async (t) => {
  const file = join(dir, 'durable.db');
  const N = 200;
  // .mts: the temp folder has no package.json saying "module", and the script uses top-level await.
  const script = join(dir, 'ingest-child.mts');
  const storeUrl = pathToFileURL(fileURLToPath(new URL('../../engine/stores/sqlite.ts', import.meta.url))).href;
  writeFileSync(
    script,
    `import { openSqliteStore } from ${JSON.stringify(storeUrl)};
const s = openSqliteStore(${JSON.stringify(file)});
for (let i = 0; i < ${N}; i++) {
  await s.ingest({ callbacks: [{ tenant: 'acme', kind: 'status', msgId: 'm' + i, rank: 1, payload: { i }, dedupeKey: 'k' + i }], pending: [] }, ${T0});
}
process.stdout.write('ingested\\n');
setInterval(() => {}, 1000); // stay alive, holding the database open, until killed
`,
  );
  const run = await killAfter(script, 'ingested', 8000);
  t.ok(run.printed, `the child ingested (stderr: ${run.stderr.slice(0, 500)})`);
  t.equal(run.signal, 'SIGKILL');
  const s = openSqliteStore(file);
  t.teardown(() => s.close());
  t.match(await s.stats(), { outboxPending: N }, 'every acknowledged callback is there');
});

/** A WAL sync the test finishes by hand, recording the file it was asked to sync. */
function heldSyncs() {
  const calls: { file: string; done: (e?: Error) => void }[] = [];
  const syncWal = (fd: number) =>
    new Promise<void>((resolve, reject) => {
      let file = String(fd);
      try {
        file = readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        // (no /proc: the descriptor number is all there is to show)
      }
      calls.push({ file, done: (e) => (e ? reject(e) : resolve()) });
    });
  return { calls, syncWal };
}

const settled = async (p: Promise<unknown>): Promise<string> => {
  let state = 'pending';
  p.then(
    () => (state = 'resolved'),
    () => (state = 'rejected'),
  );
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return state;
};

t.test('a write resolves only once the WAL sync after its commit is done; commits made meanwhile share the next sync', async (t) => {
  const file = join(dir, 'held-sync.db');
  const { calls, syncWal } = heldSyncs();
  const s = openSqliteStore(file, { syncWal });
  t.teardown(() => s.close());
  const a = s.saveCorrelation('acme', 'wamid.1', 'm1', DAY);
  t.equal(await settled(a), 'pending', 'committed, but not yet on disk: not resolved');
  t.equal(calls.length, 1, 'one sync started for the first commit');
  if (process.platform === 'linux') t.equal(calls[0]!.file, `${file}-wal`, "the sync is the WAL's");
  t.equal(await s.findMsgIds('acme', ['wamid.1']).then((m) => m[0]), 'm1', 'the commit itself is done (readable)');
  // three more group commits (a correlation, a webhook, an outbox mark) and a direct write while the first sync runs
  const b = s.saveCorrelation('acme', 'wamid.2', 'm2', DAY);
  await new Promise((r) => setImmediate(r));
  const c = s.ingest({ callbacks: [sent('m3')], pending: [] }, T0);
  await new Promise((r) => setImmediate(r));
  const d = s.markDead(['1'], 'x');
  await new Promise((r) => setImmediate(r));
  const e = s.replayDead(T0, ['1']);
  t.equal(calls.length, 1, 'no second sync while one runs');
  calls[0]!.done();
  t.equal(await settled(a), 'resolved');
  t.equal(await settled(b), 'pending', 'committed after the first sync began: waits for the next');
  t.equal(await settled(d), 'pending');
  t.equal(await settled(e), 'pending');
  t.equal(calls.length, 2, 'one sync for everything committed meanwhile');
  calls[1]!.done();
  t.equal(await settled(b), 'resolved');
  t.same(await c, { accepted: 1, duplicates: 0, implied: 0 });
  t.equal(await settled(d), 'resolved');
  t.equal(await e, 1, 'the dead callback was replayed');
  t.equal(calls.length, 2);
});

t.test('a failed WAL sync fails the writes waiting for it, and every write and health check after it', async (t) => {
  const { calls, syncWal } = heldSyncs();
  const s = openSqliteStore(join(dir, 'failed-sync.db'), { syncWal });
  t.teardown(() => s.close());
  const a = s.ingest({ callbacks: [sent('m1')], pending: [] }, T0);
  await settled(a);
  calls[0]!.done(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
  await t.rejects(a, /syncing the write-ahead log to disk failed \(EIO: i\/o error, fdatasync\)/, 'the acknowledgement never happens');
  await t.rejects(s.saveCorrelation('acme', 'wamid.9', 'm9', DAY), /write-ahead log/, 'a later group-committed write fails');
  await t.rejects(s.markDelivered(['1'], T0), /write-ahead log/, 'a later outbox mark fails');
  await t.rejects(s.replayDead(T0), /write-ahead log/, 'a later direct write fails');
  await t.rejects(s.ping(), /write-ahead log/, 'the health check reports it');
  t.equal(calls.length, 1, 'no further sync is attempted: a later success would prove nothing');
});

t.test('synchronous NORMAL and in-memory stores never wait for a sync', async (t) => {
  for (const [name, s] of [
    ['NORMAL', openSqliteStore(join(dir, 'normal.db'), { synchronous: 'NORMAL', syncWal: () => new Promise<void>(() => undefined) })],
    [':memory:', openSqliteStore(':memory:', { syncWal: () => new Promise<void>(() => undefined) })],
  ] as const) {
    t.equal(await settled(s.saveCorrelation('acme', 'wamid.1', 'm1', DAY)), 'resolved', name);
    await s.close();
  }
});

t.test('a status costs one statement per step: dedupe key, chain rank checked and taken together, outbox row', async (t) => {
  const run: string[] = [];
  const s = openSqliteStore(':memory:', { onStatement: (sql) => run.push(sql.trim().split(/\s+/).slice(0, 3).join(' ')) });
  t.teardown(() => s.close());
  const delivered: NewCallback = { ...sent('m1'), rank: 2, payload: { msgId: 'm1', status: 'delivered', timestamp: '1700000000' }, dedupeKey: 'acme|m1|delivered' };
  run.length = 0;
  t.same(await s.ingest({ callbacks: [sent('m1')], pending: [] }, T0), { accepted: 1, duplicates: 0, implied: 0 });
  t.same(run, ['BEGIN IMMEDIATE', 'INSERT INTO dedupe', 'INSERT INTO progress', 'INSERT INTO outbox', 'COMMIT']);
  run.length = 0;
  // delivered, with the sent it implies (already there: taken by nobody, one statement to find out)
  t.same(await s.ingest({ callbacks: [delivered, { ...sent('m1'), implied: true }], pending: [] }, T0), { accepted: 1, duplicates: 0, implied: 0 });
  t.same(run, ['BEGIN IMMEDIATE', 'INSERT INTO dedupe', 'INSERT INTO progress', 'INSERT INTO outbox', 'INSERT INTO progress', 'COMMIT']);
});

t.test('the look-up of many BSP ids is one statement on the primary key', async (t) => {
  const run: string[] = [];
  const s = openSqliteStore(':memory:', { onStatement: (sql) => run.push(sql) });
  t.teardown(() => s.close());
  run.length = 0;
  await s.findMsgIds('acme', ['w1', 'w2', 'w3']);
  t.equal(run.length, 1);
  const db = new Database(':memory:');
  t.teardown(() => db.close());
  registerSqlFunctions(db);
  for (const m of MIGRATIONS) db.exec(m);
  const plan = db.prepare(`EXPLAIN QUERY PLAN ${run[0]!}`).all() as { detail: string }[];
  t.match(plan.map((p) => p.detail).join('\n'), /SEARCH correlations USING PRIMARY KEY \(tenant=\? AND provider_message_id=\?\)/);
});

t.test('a store written before the trace had one key opens with its timelines found by either id', async (t) => {
  const file = join(dir, 'trace-upgrade.db');
  const old = new Database(file);
  for (const m of MIGRATIONS.slice(0, -1)) old.exec(m);
  old.pragma(`user_version = ${MIGRATIONS.length - 1}`);
  const insert = old.prepare('INSERT INTO trace (at, tenant, msg_id, provider_message_id, campaign, type, data) VALUES (?, ?, ?, ?, ?, ?, ?)');
  insert.run(1000, 'acme', 'm1', 'w1', 'c1', 'send', '{"n":1}');
  insert.run(2000, 'acme', null, 'w1', null, 'status', '{"n":2}');
  insert.run(3000, 'acme', 'm1', 'w1', 'c1', 'status', '{"n":3}');
  insert.run(4000, 'acme', 'm2', null, null, 'send', '{"n":4}');
  old.close();
  const s = openSqliteStore(file);
  t.teardown(() => s.close());
  const n = (events: { data: Record<string, unknown> }[]) => events.map((e) => e.data.n);
  t.same(n(await s.readTrace('m1', 100)), [1, 2, 3], 'by msgId, the held status through its BSP id');
  t.same(n(await s.readTrace('w1', 100)), [1, 2, 3], 'by BSP id');
  t.same(n(await s.readTrace('m2', 100)), [4]);
  t.same((await s.campaignMessages('c1', 10)).messages.map((m) => [m.msgId, n(m.events)]), [['m1', [1, 3]]], 'a campaign\'s messages');
  t.equal(await s.sweepTrace(3500 + 7 * 86_400_000, 7 * 86_400_000, 1000), 3, 'the sweep removes the rows before the first one kept');
  t.same(n(await s.readTrace('w1', 100)), []);
  t.same(n(await s.readTrace('m2', 100)), [4]);
});

t.test('a trace look-up reads integer keys only', async (t) => {
  const run: string[] = [];
  const s = openSqliteStore(':memory:', { onStatement: (sql) => run.push(sql) });
  t.teardown(() => s.close());
  await s.appendTrace([{ at: 1, tenant: 'acme', msgId: 'm1', providerMessageId: 'w1', campaignId: 'c1', type: 'send', data: {} }], 60_000);
  run.length = 0;
  t.equal((await s.readTrace('w1', 10)).length, 1);
  t.equal((await s.campaignMessages('c1', 10)).messages[0]?.events.length, 1);
  const db = new Database(':memory:');
  t.teardown(() => db.close());
  registerSqlFunctions(db);
  for (const m of MIGRATIONS) db.exec(m);
  db.exec(`ATTACH ':memory:' AS tr`);
  for (const m of TRACE_MIGRATIONS) db.exec(m);
  const plans = run.filter((q) => /FROM tr\.trace\s+WHERE/.test(q) && !/DISTINCT msg_id FROM tr\.trace WHERE campaign/.test(q)).map((q) => (db.prepare(`EXPLAIN QUERY PLAN ${q}`).all() as { detail: string }[]).map((p) => p.detail).join('; '));
  t.ok(plans.length >= 2, 'pairs, then rows');
  for (const p of plans) {
    t.match(p, /SEARCH tr\.trace USING INDEX (trace_block_key \(<expr>=\? AND key=\?\)|trace_pair_key \(pair_key=\?\))/, p);
    t.notMatch(p, /SCAN tr\.trace/, 'never every row');
  }
  const correlated = run.filter((q) => /FROM correlations/.test(q)).map((q) => (db.prepare(`EXPLAIN QUERY PLAN ${q}`).all() as { detail: string }[]).map((p) => p.detail).join('; '));
  t.ok(correlated.length >= 1, 'and the correlations');
  for (const p of correlated) {
    t.match(p, /SEARCH c USING PRIMARY KEY \(tenant=\? AND provider_message_id=\?\)/, 'by primary key, tenant by tenant');
    t.notMatch(p, /SCAN correlations/);
  }
});

t.test('a trace event whose pair the correlations hold writes no pair_key; other pairs once while remembered', async (t) => {
  const file = join(dir, 'trace-pairs.db');
  const s = openSqliteStore(file);
  t.teardown(() => s.close());
  await s.saveCorrelation('acme', 'w1', 'm1', 60_000);
  await s.appendTrace([
    { at: 1, tenant: 'acme', msgId: 'm1', providerMessageId: 'w1', type: 'send', data: {}, correlated: true },
    { at: 2, tenant: 'acme', msgId: 'm2', providerMessageId: 'w2', type: 'status', data: {} },
    { at: 3, tenant: 'acme', msgId: 'm2', providerMessageId: 'w2', type: 'status', data: {} },
  ], 60_000);
  const db = new Database(tracePathOf(file), { readonly: true });
  t.teardown(() => db.close());
  t.same(db.prepare('SELECT msg_id, pair_key IS NOT NULL AS indexed FROM trace ORDER BY id').all(), [
    { msg_id: 'm1', indexed: 0 },
    { msg_id: 'm2', indexed: 1 },
    { msg_id: 'm2', indexed: 0 },
  ]);
  t.same((await s.readTrace('w2', 10)).length, 2, 'the uncorrelated pair found by its BSP id');
  t.same((await s.readTrace('w1', 10)).length, 1, 'the correlated one through the correlations');
});

t.test('the trace lives in a file of its own; a store that kept it in its own file has it moved there on open', async (t) => {
  const file = join(dir, 'trace-move.db');
  const old = new Database(file);
  registerSqlFunctions(old);
  for (const m of MIGRATIONS) old.exec(m);
  old.pragma(`user_version = ${MIGRATIONS.length}`);
  const insert = old.prepare('INSERT INTO trace (at, tenant, key, msg_id, provider_message_id, campaign, type, data) VALUES (?, ?, wab_trace_key(?), ?, ?, ?, ?, ?)');
  insert.run(1000, 'acme', 'm1', 'm1', 'w1', 'c1', 'send', '{"n":1}');
  insert.run(2000, 'acme', 'm1', 'm1', null, 'c1', 'callback', '{"n":2}');
  old.prepare('INSERT INTO trace_campaigns (campaign, tenant, last_at) VALUES (?, ?, ?)').run('c1', 'acme', 2000);
  old.close();
  // A stop between the copy and the drop: the copy is there already, and is made again over it.
  const early = new Database(tracePathOf(file));
  early.exec(`ATTACH ':memory:' AS unused`);
  early.exec(TRACE_MIGRATIONS[0]!.replaceAll('tr.', ''));
  early.pragma(`user_version = ${TRACE_MIGRATIONS.length}`);
  early.prepare(`INSERT INTO trace (id, at, tenant, key, msg_id, provider_message_id, campaign, type, data) VALUES (1, 1000, 'acme', ?, 'm1', 'w1', 'c1', 'send', '{"n":1}')`).run(traceKey('m1'));
  early.close();

  const s = openSqliteStore(file);
  t.teardown(() => s.close());
  await s.saveCorrelation('acme', 'w1', 'm1', 60_000);
  t.same((await s.readTrace('m1', 100)).map((e) => e.data.n), [1, 2], 'every event once, found by msgId');
  t.same((await s.readTrace('w1', 100)).map((e) => e.data.n), [1, 2], 'and by BSP id');
  t.same((await s.listCampaigns(10)).map((c) => c.campaignId), ['c1']);
  await s.appendTrace([{ at: 3000, tenant: 'acme', msgId: 'm1', type: 'callback', data: { n: 3 } }], 60_000);
  t.same((await s.readTrace('m1', 100)).map((e) => e.data.n), [1, 2, 3], 'new events after the moved ones');
  const main = new Database(file, { readonly: true });
  t.teardown(() => main.close());
  t.same(main.prepare(`SELECT name FROM sqlite_master WHERE name LIKE 'trace%'`).all(), [], 'none left in the store\'s file');
  const traced = new Database(tracePathOf(file), { readonly: true });
  t.teardown(() => traced.close());
  t.same(traced.prepare('SELECT id FROM trace ORDER BY id').pluck().all(), [1, 2, 3], 'ids kept, never reused');
});

t.test('tracePathOf: beside the store, in memory for an in-memory store', async (t) => {
  t.equal(tracePathOf('/var/lib/wabridge/wabridge.db'), '/var/lib/wabridge/wabridge.db-trace');
  t.equal(tracePathOf(':memory:'), ':memory:');
  t.equal(tracePathOf('file:data/w.db?mode=rwc'), 'file:data/w.db-trace?mode=rwc');
});
