// The worker side of engine/stores/sqlite-thread.ts: opens the SQLite store and runs the calls it is
// sent, answering each batch's calls as they settle, those of one turn of the event loop together.
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { openSqliteStore } from './sqlite.js';
import type { Store } from './store.js';
import { TRACE_NICE, answerCalls, perTurn, plainError, type ThreadCall, type ThreadReply, type ThreadStoreOptions } from './sqlite-thread.js';

const port = parentPort!;
const { path, options } = workerData as { path: string; options: ThreadStoreOptions };

// The trace is diagnostics: on a box whose cores are all busy it gives way to the threads answers wait
// for (the event loop, the store's thread). Its writes already wait for the loop to keep time; this
// lets the kernel hand its CPU to them too. At -c 1500 on two cores (the load generator and the
// simulator beside wabridge) it was worth 5 % more answers per second and 9 % off the p99, with no trace
// event dropped; with a core to spare it changes nothing. Linux gives each thread its own nice value
// (setpriority on the thread's id, which /proc/thread-self names); elsewhere the thread keeps the
// process's.
if (options.part === 'trace') {
  try {
    // (a thread starts at its creator's nice value; raising a nice value needs no privilege)
    setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), Math.min(19, getPriority() + TRACE_NICE));
  } catch {
    // (not Linux: no per-thread priority)
  }
}

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
