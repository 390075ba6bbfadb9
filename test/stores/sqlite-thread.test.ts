// The SQLite store on its own thread: the same Store contract, the store's own errors on this side,
// acknowledged writes surviving kill -9, a thread that dies failing every call loudly, and an idle
// thread never holding a process open.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { openSqliteStore } from '../../engine/stores/sqlite.js';
import { TRACE_NICE, openSqliteStoreThread } from '../../engine/stores/sqlite-thread.js';
import { storeContract } from './store-contract.js';
import { killAfter } from '../support/kill-after.js';
import { ROOT } from '../support/stack.js';

const dir = mkdtempSync(join(tmpdir(), 'wab-store-thread-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const T0 = 1_700_000_000_000;

storeContract(t, 'sqlite thread', async () => openSqliteStoreThread(join(dir, `contract-${seq++}.db`)));

t.test('a file that cannot be opened: the store error, on this side', async (t) => {
  const blocker = join(dir, 'not-a-folder');
  writeFileSync(blocker, 'x');
  await t.rejects(openSqliteStoreThread(join(blocker, 'w.db')), /EEXIST|ENOTDIR|not a directory|file already exists/i);
});

t.test('what the thread wrote, the in-process store reads back', async (t) => {
  const file = join(dir, 'shared.db');
  const s = await openSqliteStoreThread(file);
  await s.saveCorrelation('acme', 'wamid.1', 'm1', 60_000);
  const r = await s.ingest({ callbacks: [{ tenant: 'acme', kind: 'status', msgId: 'm1', rank: 1, payload: { msgId: 'm1', status: 'sent' }, dedupeKey: 'k1' }], pending: [] }, T0);
  t.same(r, { accepted: 1, duplicates: 0, implied: 0 });
  await s.close();
  await s.close(); // twice is harmless
  const again = openSqliteStore(file);
  t.teardown(() => again.close());
  t.equal(await again.findMsgIds('acme', ['wamid.1']).then((m) => m[0]), 'm1');
  t.match(await again.stats(), { outboxPending: 1 });
});

t.test('a thread that dies fails the calls in flight and every later one, saying so', async (t) => {
  const s = await openSqliteStoreThread(join(dir, 'dies.db'));
  const inFlight = s.stats();
  await (s as unknown as { worker: Worker }).worker.terminate();
  await t.rejects(inFlight, /SQLite store thread exited/);
  await t.rejects(s.saveCorrelation('acme', 'wamid.2', 'm2', 60_000), /SQLite store thread exited/);
  await t.rejects(s.ping(), /SQLite store thread exited/, 'readiness sees it');
  await s.close();
});

t.test('the trace has a thread of its own: a trace write in progress does not hold up a commit, and its death fails only the trace calls in flight; the next one starts a new thread', async (t) => {
  const s = await openSqliteStoreThread(join(dir, 'trace-thread.db'));
  const { worker, traceWorker } = s as unknown as { worker: Worker; traceWorker: Worker };
  t.ok(traceWorker && traceWorker !== worker, 'two threads');
  const many = Array.from({ length: 20_000 }, (_, i) => ({ at: T0 + i, tenant: 'acme', msgId: `m${i}`, type: 'send' as const, data: { i } }));
  let traced = false;
  const writing = s.appendTrace(many, 60_000).then(() => (traced = true));
  await s.saveCorrelation('acme', 'wamid.3', 'm3', 60_000);
  t.notOk(traced, 'the commit came back while 20,000 trace events were still being written');
  await writing;
  t.equal((await s.readTrace('m19999', 10)).length, 1);
  const inFlight = s.readTrace('m1', 10);
  await traceWorker.terminate();
  await t.rejects(inFlight, /SQLite trace thread exited/, 'the call in flight fails');
  t.equal(await s.findMsgIds('acme', ['wamid.3']).then((m) => m[0]), 'm3', 'the store goes on');
  await s.ping();
  const [a, b] = await Promise.all([s.readTrace('m19999', 10), s.readTrace('m1', 10)]);
  t.same([a.length, b.length], [1, 1], 'the next calls are answered by a new trace thread, with what the old one wrote');
  const again = (s as unknown as { traceWorker: Worker }).traceWorker;
  t.ok(again && again !== traceWorker && again !== worker, 'one new thread');
  await s.appendTrace([{ at: T0, tenant: 'acme', msgId: 'after', type: 'send', data: {} }], 60_000);
  t.equal((await s.readTrace('after', 10)).length, 1, 'and it writes');
  await s.close();
  await t.resolves(new Promise((r) => (again.threadId === -1 ? r(undefined) : again.once('exit', r))), 'closed with the store');
});

/** A thread's nice value (Linux: field 19 of /proc/self/task/<tid>/stat), undefined once it has ended. */
function niceOf(tid: string): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    // (the command name, in parentheses, may hold spaces: count the fields after it)
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  } catch {
    return undefined;
  }
}
const threadNices = (): number[] => readdirSync('/proc/self/task').flatMap((tid) => niceOf(tid) ?? []);

t.test('the trace thread gives way to the others: it runs at a lower priority, the store thread at the process\'s', { skip: existsSync('/proc/self/task') ? false : 'no per-thread priority to read here (not Linux)' }, async (t) => {
  const own = niceOf(String(process.pid))!;
  const lower = Math.min(19, own + TRACE_NICE);
  const before = threadNices();
  const atLower = before.filter((n) => n === lower).length;
  const atOwn = before.filter((n) => n === own).length;
  const s = await openSqliteStoreThread(join(dir, 'nice.db'));
  await s.ping();
  await s.appendTrace([{ at: T0, tenant: 'acme', msgId: 'n1', type: 'send', data: {} }], 60_000);
  const during = threadNices();
  t.equal(during.filter((n) => n === lower).length, atLower + 1, `one more thread at nice ${lower}: the trace's`);
  t.ok(during.filter((n) => n === own).length > atOwn, `the store thread at the process's nice (${own})`);
  t.equal(niceOf(String(process.pid)), own, 'the main thread keeps its priority');
  await s.close();
});

t.test('acknowledged ingests survive kill -9 of a process using the thread', async (t) => {
  const file = join(dir, 'durable.db');
  const N = 200;
  const script = join(dir, 'ingest-child.mts');
  const storeUrl = pathToFileURL(join(ROOT, 'engine', 'stores', 'sqlite-thread.ts')).href;
  writeFileSync(
    script,
    `import { openSqliteStoreThread } from ${JSON.stringify(storeUrl)};
const s = await openSqliteStoreThread(${JSON.stringify(file)});
await Promise.all(Array.from({ length: ${N} }, (_, i) => s.ingest({ callbacks: [{ tenant: 'acme', kind: 'status', msgId: 'm' + i, rank: 1, payload: { i }, dedupeKey: 'k' + i }], pending: [] }, ${T0})));
process.stdout.write('ingested\\n');
setInterval(() => {}, 1000);
`,
  );
  const run = await killAfter(script, 'ingested');
  t.ok(run.printed, `the child ingested (stderr: ${run.stderr.slice(0, 500)})`);
  t.equal(run.signal, 'SIGKILL');
  const s = openSqliteStore(file);
  t.teardown(() => s.close());
  t.match(await s.stats(), { outboxPending: N }, 'every acknowledged callback is there');
});

t.test('an idle thread does not keep its process alive', async (t) => {
  const script = join(dir, 'idle-child.mts');
  const storeUrl = pathToFileURL(join(ROOT, 'engine', 'stores', 'sqlite-thread.ts')).href;
  writeFileSync(
    script,
    `import { openSqliteStoreThread } from ${JSON.stringify(storeUrl)};
const s = await openSqliteStoreThread(${JSON.stringify(join(dir, 'idle.db'))});
await s.saveCorrelation('acme', 'wamid.9', 'm9', 60_000);
process.stdout.write(String(await s.findMsgIds('acme', ['wamid.9']).then((m) => m[0])));
`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(null);
    }, 10_000);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  t.equal(code, 0, 'the process ended by itself');
  t.equal(out, 'm9', 'after its calls were answered');
});
