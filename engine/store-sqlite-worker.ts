// The worker side of engine/store-sqlite-thread.ts: opens the SQLite store and runs the calls it is
// sent, answering each batch's calls as they settle, those of one turn of the event loop together.
import { parentPort, workerData } from 'node:worker_threads';
import { openSqliteStore } from './store-sqlite.js';
import type { Store } from './store.js';
import type { ThreadCall, ThreadReply, ThreadStoreOptions } from './store-sqlite-thread.js';

const port = parentPort!;
const { path, options } = workerData as { path: string; options: ThreadStoreOptions };

function plain(e: unknown): { name: string; message: string; code?: string } {
  const err = e as { name?: unknown; message?: unknown; code?: unknown };
  return { name: typeof err.name === 'string' ? err.name : 'Error', message: typeof err.message === 'string' ? err.message : String(e), ...(typeof err.code === 'string' ? { code: err.code } : {}) };
}

let store: Store;
try {
  store = openSqliteStore(path, options);
} catch (e) {
  port.postMessage({ error: plain(e) });
  process.exit(1);
}

let replies: ThreadReply[] = [];
let flushing = false;
const flush = () => {
  flushing = false;
  const out = replies;
  replies = [];
  port.postMessage(out);
};
const reply = (r: ThreadReply) => {
  replies.push(r);
  if (!flushing) {
    flushing = true;
    setImmediate(flush);
  }
};

port.on('message', (calls: ThreadCall[]) => {
  for (const [id, method, args] of calls) {
    let result: Promise<unknown>;
    try {
      const fn = (store as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[method];
      if (typeof fn !== 'function') throw new Error(`the store has no method ${method}`);
      result = fn.apply(store, args);
    } catch (e) {
      result = Promise.reject(e);
    }
    result.then(
      (v) => reply([id, 0, v]),
      (e: unknown) => reply([id, 1, plain(e)]),
    );
  }
});
port.postMessage({ ready: true });
