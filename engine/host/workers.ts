// `wabridge serve --workers N`: one box's cores through node:cluster. The primary forks N workers that
// each run the whole host on the shared port (the primary hands out connections round-robin), and
// replaces one that dies. What must be one for the box stays in the primary:
// - the SQLite store: SQLite allows one writer at a time, and two processes committing to one WAL take
//   turns on its lock (with busy waits and fsyncs each); instead the primary owns the database (on its
//   own thread, as a single process does) and the workers' calls reach it over the IPC channel, batched
//   per turn like the thread's. A worker killed with -9 loses only calls the owner never got: what it
//   acknowledged was committed by the owner first.
// - the per-tenant concurrency limit and bspRate, counted in the primary for every worker (a dead
//   worker's slots are given back). With Redis both the store and the limits are Redis's already, as
//   for a fleet, and the primary owns nothing.
// - /metrics (prom-client's AggregatorRegistry sums the workers' registries) and the admin status's
//   list of workers, which any worker serves by asking the primary.
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { LocalConcurrencyLimiter, LocalRateLimiter, type ConcurrencyLimiter, type RateLimiter } from './concurrency.js';
import { loadConfig } from './config.js';
import { startHost, type Host, type ClusterView } from './host.js';
import { answerCalls, openSqliteStoreThread, perTurn, remoteStore, type StorePort, type ThreadCall, type ThreadReply } from '../stores/sqlite-thread.js';
import type { Store } from '../stores/store.js';
import { WabError } from '../mapping/errors.js';

/** `n`, or `auto` for every core this process may use. */
export function workerCount(text: string): number {
  if (text === 'auto') return availableParallelism();
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new WabError('WAB_INPUT_INVALID', `--workers must be a whole number from 1 to 256, or auto; got '${text}'`);
  return n;
}

type Message =
  | { wab: 'rpc'; calls: ThreadCall[] }
  | { wab: 'rpc'; replies: ThreadReply[] }
  | { wab: 'ask'; id: number; what: 'metrics' | 'workers' | 'local' }
  | { wab: 'answer'; id: number; value?: unknown; error?: string }
  | { wab: 'ready' };

const isMessage = (m: unknown): m is Message => typeof m === 'object' && m !== null && typeof (m as { wab?: unknown }).wab === 'string';

/** Questions over one IPC channel, each answered once (or failed when the other side goes away). */
class Asker {
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  constructor(private readonly send: (m: Message) => void) {}

  ask(what: 'metrics' | 'workers' | 'local', timeoutMs = 5000): Promise<unknown> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`no answer to '${what}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      this.send({ wab: 'ask', id, what });
    });
  }

  answered(m: { id: number; value?: unknown; error?: string }): void {
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    clearTimeout(w.timer);
    if (m.error !== undefined) w.reject(new Error(m.error));
    else w.resolve(m.value);
  }

  failAll(e: Error): void {
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(e);
    }
    this.waiting.clear();
  }
}

/** Answers `ask` with `answer` on `send` (an error becomes the answer's message). */
function reply(send: (m: Message) => void, id: number, answer: () => unknown): void {
  Promise.resolve()
    .then(answer)
    .then(
      (value) => send({ wab: 'answer', id, value }),
      (e: unknown) => send({ wab: 'answer', id, error: (e as Error).message }),
    );
}

// ---------------------------------------------------------------------------------------------
// the primary

export interface Primary {
  /** The workers now running (pids), for tests and logs. */
  pids(): number[];
  /** SIGTERM to every worker, each drains; then the store closes. */
  stop(): Promise<void>;
}

type Log = (line: string) => void;

export async function startPrimary(configFile: string, workers: number, log: Log): Promise<Primary> {
  // A broken configuration is reported once, by the primary, before anything is forked.
  const config = loadConfig(configFile);
  const store: Store | undefined = config.store.redis ? undefined : await openSqliteStoreThread(config.store.sqlite);
  const limiter = new LocalConcurrencyLimiter();
  const rate = new LocalRateLimiter();
  const aggregator = new AggregatorRegistry();
  cluster.setupPrimary({ serialization: 'advanced' });
  let stopping = false;
  let readyOnce = false;
  const held = new Map<Worker, Map<string, number>>();
  const askers = new Map<Worker, Asker>();

  // The limits every worker shares, slot by slot per worker so a dead one's are given back.
  const limitsFor = (w: Worker) => ({
    async acquire(tenant: string, limit: number): Promise<boolean> {
      const ok = await limiter.acquire(tenant, limit);
      if (ok) {
        const mine = held.get(w)!;
        mine.set(tenant, (mine.get(tenant) ?? 0) + 1);
      }
      return ok;
    },
    async release(tenant: string): Promise<void> {
      const mine = held.get(w)!;
      const n = mine.get(tenant) ?? 0;
      if (n <= 0) return;
      mine.set(tenant, n - 1);
      await limiter.release(tenant);
    },
    take: (tenant: string, perSecond: number, maxWaitMs: number) => rate.take(tenant, perSecond, maxWaitMs),
  });

  const workersStatus = async () => Promise.all([...askers.entries()].map(([w, a]) => a.ask('local', 3000).catch((e: Error) => ({ pid: w.process.pid, error: e.message }))));

  const fork = (): Worker => {
    const w = cluster.fork();
    const startedAt = Date.now();
    let ready = false;
    held.set(w, new Map());
    const send = (m: Message) => {
      if (w.isConnected()) w.send(m);
    };
    askers.set(w, new Asker(send));
    const limits = limitsFor(w);
    const replies = perTurn<ThreadReply>((r) => send({ wab: 'rpc', replies: r }));
    w.on('message', (m: unknown) => {
      if (!isMessage(m)) return;
      if (m.wab === 'rpc' && 'calls' in m) {
        const toStore: ThreadCall[] = [];
        const toLimits: ThreadCall[] = [];
        for (const c of m.calls) {
          if (c[1].startsWith('limits.')) toLimits.push([c[0], c[1].slice(7), c[2]]);
          // The database is the primary's: a worker lets go of it, it never closes it.
          else if (c[1] === 'close') replies([c[0], 0, undefined]);
          else toStore.push(c);
        }
        if (toLimits.length > 0) answerCalls(limits, toLimits, replies);
        if (toStore.length > 0) {
          if (store) answerCalls(store, toStore, replies);
          else for (const c of toStore) replies([c[0], 1, { name: 'Error', message: 'this cluster has no shared store (Redis is configured)' }]);
        }
      } else if (m.wab === 'ask') {
        if (m.what === 'metrics') reply(send, m.id, async () => ({ contentType: aggregator.contentType, text: await aggregator.clusterMetrics() }));
        else if (m.what === 'workers') reply(send, m.id, workersStatus);
      } else if (m.wab === 'answer') {
        askers.get(w)?.answered(m);
      } else if (m.wab === 'ready') {
        ready = readyOnce = true;
        log(`wabridge: worker ${w.process.pid} ready (${Date.now() - startedAt} ms)`);
      }
    });
    w.on('exit', (code, signal) => {
      askers.get(w)?.failAll(new Error(`worker ${w.process.pid} exited`));
      askers.delete(w);
      for (const [tenant, n] of held.get(w) ?? []) for (let i = 0; i < n; i++) void limiter.release(tenant);
      held.delete(w);
      if (stopping) return;
      if (!ready && !readyOnce) {
        // It never started (the port taken, a mapping broken): starting it again would fail the same way.
        log(`wabridge: worker ${w.process.pid} exited (${signal ?? code}) before it was ready; not restarting`);
        if (askers.size === 0) void stop().then(() => process.exit(1));
        return;
      }
      log(`wabridge: worker ${w.process.pid} exited (${signal ?? code}); starting another`);
      fork();
    });
    return w;
  };

  for (let i = 0; i < workers; i++) fork();
  log(`wabridge: primary ${process.pid}, ${workers} worker(s), store ${config.store.redis ? 'Redis (shared by the workers)' : `${config.store.sqlite} (owned by this process)`}`);

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      stopping = true;
      const all = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      await Promise.all(
        all.map(
          (w) =>
            new Promise<void>((res) => {
              if (w.isDead()) return res();
              w.once('exit', () => res());
              w.process.kill('SIGTERM');
              // Each worker drains within server.drain; one that hangs past it is killed.
              setTimeout(() => w.process.kill('SIGKILL'), config.server.drainMs + 5000).unref();
            }),
        ),
      );
      await store?.close();
      await limiter.close();
      await rate.close();
    })());
  return { pids: () => [...askers.keys()].map((w) => w.process.pid!).filter(Boolean), stop };
}

// ---------------------------------------------------------------------------------------------
// a worker

/** The limits the primary counts for every worker, asked over the store's channel. */
class PrimaryLimits implements ConcurrencyLimiter, RateLimiter {
  private readonly held = new Map<string, number>();
  constructor(private readonly request: <T>(method: string, args: unknown[]) => Promise<T>) {}

  async acquire(tenant: string, limit: number): Promise<boolean> {
    const ok = await this.request<boolean>('limits.acquire', [tenant, limit]);
    if (ok) this.held.set(tenant, (this.held.get(tenant) ?? 0) + 1);
    return ok;
  }

  async release(tenant: string): Promise<void> {
    this.held.set(tenant, Math.max(0, (this.held.get(tenant) ?? 0) - 1));
    await this.request<void>('limits.release', [tenant]);
  }

  local(tenant: string): number {
    return this.held.get(tenant) ?? 0;
  }

  take(tenant: string, perSecond: number, maxWaitMs: number): Promise<boolean> {
    return this.request<boolean>('limits.take', [tenant, perSecond, maxWaitMs]);
  }

  async close(): Promise<void> {}
}

export async function startWorker(configFile: string): Promise<Host> {
  const config = loadConfig(configFile);
  const send = (m: Message) => process.send?.(m);
  const asker = new Asker(send);
  const port: StorePort = {
    post: (calls) => send({ wab: 'rpc', calls }),
    listen(onReplies, onGone) {
      process.on('message', (m: unknown) => {
        if (isMessage(m) && m.wab === 'rpc' && 'replies' in m) onReplies(m.replies);
      });
      process.once('disconnect', () => onGone(new Error('the primary process is gone')));
    },
    busy: () => undefined,
    end: async () => undefined,
  };
  let shared: { store: Store; limits: PrimaryLimits } | undefined;
  if (!config.store.redis) {
    const store = remoteStore(port);
    shared = { store, limits: new PrimaryLimits((method, args) => store.request(method, args)) };
  }
  const view: ClusterView = {
    metrics: async () => (await asker.ask('metrics')) as { contentType: string; text: string },
    workers: async () => (await asker.ask('workers')) as unknown[],
  };
  const host = await startHost({ configFile, ...(shared ? { store: shared.store, limiter: shared.limits, rate: shared.limits } : {}), cluster: view });
  // prom-client answers the primary's requests only once an AggregatorRegistry exists in this process.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([host.metrics.registry as Registry]);
  process.on('message', (m: unknown) => {
    if (!isMessage(m)) return;
    if (m.wab === 'answer') asker.answered(m);
    else if (m.wab === 'ask' && m.what === 'local') reply(send, m.id, () => host.localStatus());
  });
  // The primary is gone (killed): nobody would replace or stop this worker; drain and leave.
  process.once('disconnect', () => {
    asker.failAll(new Error('the primary process is gone'));
    void host.close().finally(() => process.exit(0));
  });
  send({ wab: 'ready' });
  return host;
}

export const isWorker = (): boolean => cluster.isWorker;
