// The SQLite store on a thread of its own. better-sqlite3 is synchronous: every statement, every
// commit and every checkpoint (which writes pages back and fsyncs the database file) ran on the event
// loop. At -c 1500 that was about 30 µs of the main thread per message, a third of it waiting on the
// disk, with every request queued behind it. Here the store (engine/stores/sqlite.ts, unchanged) runs
// in a worker thread and this side forwards the Store calls to it: the calls of one turn of the event
// loop travel as one message, and so do the answers. Durability is the store's own: a write's promise
// resolves only after the worker's commit and sync.
//
// If the thread dies (a bug, an out-of-memory), every call in flight and every later call fails with
// an error saying so, and readiness (/readyz pings the store) reports it: a supervisor restarts the
// process, which reopens the same file. Nothing acknowledged is lost: acknowledgements wait for commits.
import { Worker } from 'node:worker_threads';
import type { SqliteStoreOptions } from './sqlite.js';
import type { Store } from './store.js';

/** An error as it crosses between the threads: its name, message and code. */
export type PlainError = { name: string; message: string; code?: string };

/** [call id, Store method, arguments] */
export type ThreadCall = [number, string, unknown[]];
/** [call id, 0, value] or [call id, 1, the error's name, message and code] */
export type ThreadReply = [number, 0, unknown] | [number, 1, PlainError];
/** Options that can cross to the thread (functions cannot). */
export type ThreadStoreOptions = Pick<SqliteStoreOptions, 'synchronous' | 'dedupeTtlMs' | 'part'>;

/** On Linux the trace thread runs this much nicer than the thread that opened the store (capped at 19, the lowest priority): sqlite-worker.ts. */
export const TRACE_NICE = 10;

function startWorker(path: string, options: ThreadStoreOptions): Worker {
  const entry = new URL(`./sqlite-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);
  const workerData = { path, options };
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { workerData });
  // Run from the TypeScript sources (tsx): a worker does not inherit the loader, so it registers it first.
  const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

export function plainError(e: unknown): PlainError {
  const err = e as { name?: unknown; message?: unknown; code?: unknown };
  return { name: typeof err.name === 'string' ? err.name : 'Error', message: typeof err.message === 'string' ? err.message : String(e), ...(typeof err.code === 'string' ? { code: err.code } : {}) };
}

function revive(e: PlainError): Error {
  const err = new Error(e.message);
  err.name = e.name;
  if (e.code !== undefined) (err as Error & { code?: string }).code = e.code;
  return err;
}

/** Collects items and hands them to `send` together, once per turn of the event loop. */
export function perTurn<T>(send: (batch: T[]) => void): (item: T) => void {
  let batch: T[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const out = batch;
    batch = [];
    send(out);
  };
  return (item) => {
    batch.push(item);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
}

/**
 * Where a store's calls go and its answers come from: the SQLite thread, or (wabridge serve --workers)
 * the primary process that owns the database, over the cluster's IPC channel.
 */
export interface StorePort {
  post(calls: ThreadCall[]): void;
  /** Registers the receiver of answers and of the port's end (the owner is gone: every call fails). */
  listen(onReplies: (replies: ThreadReply[]) => void, onGone: (e: Error) => void): void;
  /** Calls are waiting (true) or none is (false): an idle port must not keep a process alive. */
  busy(waiting: boolean): void;
  /** After the store's own close call was answered. */
  end(): Promise<void>;
}

/** Answers a batch of calls on `target`, each as it settles, through `reply` (batched per turn by the caller). */
export function answerCalls(target: object, calls: ThreadCall[], reply: (r: ThreadReply) => void): void {
  const methods = target as Record<string, (...a: unknown[]) => Promise<unknown>>;
  for (const [id, method, args] of calls) {
    // the executor turns a synchronous throw into a rejection like any other
    new Promise<unknown>((resolve) => {
      if (typeof methods[method] !== 'function') throw new Error(`the store has no method ${method}`);
      resolve(methods[method].apply(target, args));
    }).then(
      (v) => reply([id, 0, v]),
      (e: unknown) => reply([id, 1, plainError(e)]),
    );
  }
}

function threadPort(worker: Worker, name = 'store'): StorePort {
  return {
    post: (calls) => worker.postMessage(calls),
    listen(onReplies, onGone) {
      worker.on('message', onReplies);
      worker.on('error', (e) => onGone(new Error(`SQLite ${name} thread failed: ${e.message}`)));
      worker.on('exit', (code) => onGone(new Error(`SQLite ${name} thread exited (code ${code})`)));
      worker.unref();
    },
    busy: (waiting) => void (waiting ? worker.ref() : worker.unref()),
    end: async () => void (await worker.terminate()),
  };
}

/** One side of a port: calls out, their answers back, every call failing once the other side is gone. */
class Channel {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: never) => void; reject: (e: Error) => void }>();
  private readonly send: (call: ThreadCall) => void;
  /** Set once the other side is gone: every call fails with it. */
  dead: Error | undefined;

  /** `worker`: the thread on the other side, which owns the store (absent over IPC: the owner is another process's). */
  constructor(
    private readonly port: StorePort,
    readonly worker?: Worker,
  ) {
    this.send = perTurn((calls) => port.post(calls));
    port.listen(
      (replies) => {
        for (const r of replies) {
          const w = this.waiting.get(r[0]);
          if (!w) continue;
          this.waiting.delete(r[0]);
          if (r[1] === 0) w.resolve(r[2] as never);
          else w.reject(revive(r[2]));
        }
        // Idle, the port must not keep a process alive that has nothing else to do.
        if (this.waiting.size === 0) port.busy(false);
      },
      (e) => {
        this.dead ??= e;
        for (const w of this.waiting.values()) w.reject(this.dead);
        this.waiting.clear();
      },
    );
  }

  request<T>(method: string, args: unknown[]): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise<T>((resolve, reject) => {
      const id = this.nextId++;
      if (this.waiting.size === 0) this.port.busy(true);
      this.waiting.set(id, { resolve, reject });
      this.send([id, method, args]);
    });
  }

  /** Closes the store when this side owns it, then lets go of the port. */
  async close(): Promise<void> {
    if (!this.dead && this.worker) await this.request<void>('close', []);
    await this.port.end();
  }
}

/** The first wait before a trace thread that failed to start is started again; it doubles up to TRACE_RESTART_MAX_MS. */
const TRACE_RESTART_MS = 1_000;
const TRACE_RESTART_MAX_MS = 60_000;

class ThreadStore implements Store {
  readonly kind = 'sqlite' as const;
  private closing: Promise<void> | undefined;
  private traceRestart: Promise<void> | undefined;
  private traceRestartAfter = 0;
  private traceRestartWaitMs = TRACE_RESTART_MS;

  /**
   * `traces`: the trace's thread; the main one when the store has no second (over IPC, in memory).
   * `reopenTrace`: starts a new trace thread when the one there is gone (diagnostics must not stop for
   * the life of the process because their thread died; the calls in flight on the dead one fail).
   */
  constructor(
    private readonly main: Channel,
    private traces: Channel = main,
    private readonly reopenTrace?: () => Promise<Channel>,
  ) {}

  /** The threads themselves, for diagnostics and for tests that make them fail (absent over IPC). */
  get worker(): Worker | undefined {
    return this.main.worker;
  }

  get traceWorker(): Worker | undefined {
    return this.traces.worker;
  }

  saveCorrelation: Store['saveCorrelation'] = (...a) => this.call('saveCorrelation', a);
  findMsgIds: Store['findMsgIds'] = (...a) => this.call('findMsgIds', a);
  ingest: Store['ingest'] = (...a) => this.call('ingest', a);
  duePending: Store['duePending'] = (...a) => this.call('duePending', a);
  resolvePending: Store['resolvePending'] = (...a) => this.call('resolvePending', a);
  reschedulePending: Store['reschedulePending'] = (...a) => this.call('reschedulePending', a);
  listUnmatched: Store['listUnmatched'] = (...a) => this.call('listUnmatched', a);
  claimDue: Store['claimDue'] = (...a) => this.call('claimDue', a);
  markDelivered: Store['markDelivered'] = (...a) => this.call('markDelivered', a);
  markFailed: Store['markFailed'] = (...a) => this.call('markFailed', a);
  markDead: Store['markDead'] = (...a) => this.call('markDead', a);
  listDead: Store['listDead'] = (...a) => this.call('listDead', a);
  replayDead: Store['replayDead'] = (...a) => this.call('replayDead', a);
  saveClickLinks: Store['saveClickLinks'] = (...a) => this.call('saveClickLinks', a);
  findClickLink: Store['findClickLink'] = (...a) => this.call('findClickLink', a);
  recordClick: Store['recordClick'] = (...a) => this.call('recordClick', a);
  addQuarantined: Store['addQuarantined'] = (...a) => this.call('addQuarantined', a);
  listQuarantined: Store['listQuarantined'] = (...a) => this.call('listQuarantined', a);
  getQuarantined: Store['getQuarantined'] = (...a) => this.call('getQuarantined', a);
  requarantine: Store['requarantine'] = (...a) => this.call('requarantine', a);
  removeQuarantined: Store['removeQuarantined'] = (...a) => this.call('removeQuarantined', a);
  quarantineSize: Store['quarantineSize'] = () => this.call('quarantineSize', []);
  sweep: Store['sweep'] = (...a) => this.call('sweep', a);
  appendTrace: Store['appendTrace'] = (...a) => this.traceCall('appendTrace', a);
  readTrace: Store['readTrace'] = (...a) => this.traceCall('readTrace', a);
  sweepTrace: Store['sweepTrace'] = (...a) => this.traceCall('sweepTrace', a);
  campaignTrace: Store['campaignTrace'] = (...a) => this.traceCall('campaignTrace', a);
  listCampaigns: Store['listCampaigns'] = (...a) => this.traceCall('listCampaigns', a);
  campaignMessages: Store['campaignMessages'] = (...a) => this.traceCall('campaignMessages', a);
  stats: Store['stats'] = () => this.call('stats', []);
  ping: Store['ping'] = () => this.call('ping', []);

  private call<T>(method: keyof Store, args: unknown[]): Promise<T> {
    return this.main.request<T>(method, args);
  }

  /** A trace call: on a new trace thread if the last one is gone (a call waits for its start). */
  private async traceCall<T>(method: keyof Store, args: unknown[]): Promise<T> {
    if (this.traces.dead && this.reopenTrace && !this.closing) {
      if (!this.traceRestart && performance.now() >= this.traceRestartAfter) {
        this.traceRestart = this.reopenTrace().then(
          (c) => {
            this.traceRestartWaitMs = TRACE_RESTART_MS;
            // (a close that began meanwhile waits for this one too)
            if (this.closing) return c.close();
            this.traces = c;
          },
          () => {
            // It did not start (its file cannot be opened, say): the calls fail with the old
            // thread's error until the next try, which waits longer each time.
            this.traceRestartAfter = performance.now() + this.traceRestartWaitMs;
            this.traceRestartWaitMs = Math.min(TRACE_RESTART_MAX_MS, this.traceRestartWaitMs * 2);
          },
        );
        void this.traceRestart.finally(() => (this.traceRestart = undefined));
      }
      await this.traceRestart;
    }
    return this.traces.request<T>(method, args);
  }

  /** Any call the other side answers: the store's methods, and (over IPC) the primary's `limits.*`. */
  request<T>(method: string, args: unknown[]): Promise<T> {
    return this.main.request<T>(method, args);
  }

  close(): Promise<void> {
    return (this.closing ??= (async () => {
      // Over IPC the store is the owner's: this side only lets go of it.
      await this.traceRestart;
      await Promise.all([this.main.close(), ...(this.traces !== this.main ? [this.traces.close()] : [])]);
    })());
  }
}

/**
 * Opens (creating when absent) the SQLite store at `path` in a worker thread; rejects with the
 * store's own error when the file cannot be opened or migrated.
 */
export async function openSqliteStoreThread(path: string, options: ThreadStoreOptions = {}): Promise<Store> {
  // The trace on a thread and connection of its own (a file of its own, engine/stores/sqlite.ts): its
  // writes, their checkpoints and syncs never hold up a commit an answer waits for. An in-memory
  // database is one connection's: one thread serves it all.
  if (path === ':memory:') {
    const worker = await startedWorker(path, options);
    return new ThreadStore(new Channel(threadPort(worker), worker));
  }
  const worker = await startedWorker(path, { ...options, part: 'store' });
  // Opened once the store has migrated both files.
  const openTrace = async () => {
    const traceWorker = await startedWorker(path, { ...options, part: 'trace' });
    return new Channel(threadPort(traceWorker, 'trace'), traceWorker);
  };
  const traces = await openTrace().catch(async (e: unknown) => {
    await worker.terminate();
    throw e;
  });
  return new ThreadStore(new Channel(threadPort(worker), worker), traces, openTrace);
}

async function startedWorker(path: string, options: ThreadStoreOptions): Promise<Worker> {
  const worker = startWorker(path, options);
  await new Promise<void>((resolve, reject) => {
    const onExit = (code: number) => reject(new Error(`SQLite store thread exited while opening ${path} (code ${code})`));
    worker.once('exit', onExit);
    worker.once('error', reject);
    worker.once('message', (m: { ready?: true; error?: PlainError }) => {
      worker.off('exit', onExit);
      worker.off('error', reject);
      if (m.ready) resolve();
      else reject(revive(m.error ?? { name: 'Error', message: 'SQLite store thread did not start' }));
    });
  }).catch(async (e: unknown) => {
    await worker.terminate();
    throw e;
  });
  return worker;
}

/** A store whose calls go through `port` to a store that another thread or process owns. */
export function remoteStore(port: StorePort): Store & { request<T>(method: string, args: unknown[]): Promise<T> } {
  return new ThreadStore(new Channel(port));
}
