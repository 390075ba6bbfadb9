// The worker side of engine/stores/sqlite-thread.ts: opens the SQLite store and runs the calls it is
// sent, answering each batch's calls as they settle, those of one turn of the event loop together.
import { parentPort, workerData } from 'node:worker_threads';
import { openSqliteStore } from './sqlite.js';
import type { Store } from './store.js';
import { answerCalls, perTurn, plainError, type ThreadCall, type ThreadReply, type ThreadStoreOptions } from './sqlite-thread.js';

const port = parentPort!;
const { path, options } = workerData as { path: string; options: ThreadStoreOptions };

let store: Store;
try {
  store = openSqliteStore(path, options);
} catch (e) {
  port.postMessage({ error: plainError(e) });
  process.exit(1);
}

const reply = perTurn<ThreadReply>((replies) => port.postMessage(replies));

port.on('message', (calls: ThreadCall[]) => answerCalls(store, calls, reply));
port.postMessage({ ready: true });
