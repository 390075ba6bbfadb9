// What one CleverTap message costs wabridge itself, without the network: the whole send flow
// (engine/host/send-flow.ts handleSend: parse and normalize the payload, plan the Meta request, map the
// BSP's answer, store the correlation, count it and log its line) with a BSP client and a store that
// answer at once, in this process. Time per message, and bytes allocated per message measured by V8's
// sampling heap profiler with the collected objects counted: unlike time, that figure hardly moves
// between runs, so a change of a few hundred bytes shows. At -c 1500 the garbage collector's share of
// wabridge's CPU follows the bytes (BENCHMARKS.md, ninth session).
//   node --import tsx bench/send-flow.ts [--quick] [--top]
// --top prints the functions allocating most. The last line printed is one JSON object.
//
// Then the message trace's cost (engine/host/trace.ts): the same flow with a Tracer writing to a real
// SQLite store on its thread, against the flow without one, alternating in this process (a busy
// machine slows both alike). The main thread's time (where answers wait) and the process's CPU time
// (the store's thread included) per message, median of three pairs; and the bytes the trace adds to
// a message on the main thread.
import { Session } from 'node:inspector/promises';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, logDestination } from '../engine/host/logger.js';
import { loadMapping } from '../engine/mapping/loader.js';
import { createMetrics } from '../engine/host/metrics.js';
import { handleSend, type SendDeps } from '../engine/host/send-flow.js';
import { checkSettings } from '../engine/mapping/settings.js';
import { TokenCache } from '../engine/mapping/token-cache.js';
import type { TenantConfig } from '../engine/host/config.js';
import type { BspClient } from '../engine/host/bsp-client.js';
import type { Store } from '../engine/stores/store.js';
import { openSqliteStoreThread } from '../engine/stores/sqlite-thread.js';
import { Tracer } from '../engine/host/trace.js';
import type { BspResponse } from '../engine/mapping/send.js';
import { ROOT, SETTINGS } from '../test/support/stack.js';
import { byFunction, heapWeighted } from './profile.js';

export interface SendFlowFigures {
  /** µs per message through handleSend, BSP and store answering at once. */
  send_flow_us: number;
  /** KB allocated per message (collected objects included). */
  send_flow_kb: number;
  /** µs of the main thread per message with the message trace on (SQLite store on its thread). */
  send_flow_traced_us: number;
  /** Messages per second with the trace on, as a fraction of the same without it, on the main thread (median of 3 pairs). */
  send_flow_trace_ratio: number;
  /** The same from the process's CPU time, the store thread's included. */
  send_flow_trace_cpu_ratio: number;
  /** KB the trace adds to a message on the main thread. */
  send_flow_trace_kb: number;
}

// As Meta's Graph API answers: what the trace keeps of a response is its headers.
const META_HEADERS = {
  'content-type': 'application/json; charset=UTF-8',
  vary: 'Origin',
  'access-control-allow-origin': '*',
  'facebook-api-version': 'v21.0',
  'strict-transport-security': 'max-age=15552000; preload',
  pragma: 'no-cache',
  'cache-control': 'private, no-cache, no-store, must-revalidate',
  expires: 'Sat, 01 Jan 2000 00:00:00 GMT',
  'x-fb-request-id': 'AbCdEfGhIjKlMnOpQrSt',
  'x-fb-trace-id': 'GhIjKlMnOpQ',
  'x-fb-rev': '1019876543',
  'x-business-use-case-usage': '{"123456789012345":[{"type":"whatsapp","call_count":1,"total_cputime":1,"total_time":1}]}',
  'x-fb-debug': 'Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fEdCbA+zYxWvUtSrQpOnMlKjIhGfEdCbAzYxWvUtSrQpOnMl==',
  date: 'Fri, 04 Dec 2026 12:00:00 GMT',
  'content-length': '168',
};

/** The send flow on the Meta mapping and CleverTap's template sample, every message a new msgId. */
export function setUp(tracer?: Tracer): { one: (i: number) => Promise<unknown> } {
  const loaded = loadMapping(join(ROOT, 'mappings', 'meta-cloud'));
  if (!loaded.ok) throw new Error('meta-cloud mapping does not load');
  const mapping = loaded.mapping;
  const settings = checkSettings(mapping.settings, { ...SETTINGS, baseUrl: 'http://127.0.0.1:9' }, 'bench');
  const tenant = { id: 'demo', provider: 'meta-cloud', settings, deadlineMs: 900, concurrency: 1500, auth: { basic: { username: 'demo', password: 'x' } } } as unknown as TenantConfig;
  const template = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8')) as Record<string, unknown>;
  // Distinct payloads and BSP ids, as in production: nothing is served from a cache by accident.
  const bodies = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ ...template, msgId: `bench|${i}|1764150000000|1` }));
  const answers: BspResponse[] = Array.from({ length: 1000 }, (_, i) => ({
    status: 200,
    headers: META_HEADERS,
    text: `{"messaging_product":"whatsapp","contacts":[{"input":"919999999999","wa_id":"919999999999"}],"messages":[{"id":"wamid.HBgMOTE5OTk5OTk5OTk5FQIAERgS${String(i).padStart(20, '0')}"}]}`,
  }));
  let n = 0;
  const client = { send: () => Promise.resolve(answers[n++ % 1000]!) } as unknown as BspClient;
  const store = { saveCorrelation: () => Promise.resolve() } as unknown as Store;
  const deps: SendDeps = {
    store,
    client,
    tokens: new TokenCache(() => Promise.reject(new Error('no token endpoint'))),
    metrics: createMetrics(),
    logger: createLogger('info', logDestination('/dev/null')),
    correlationTtlMs: 86_400_000,
    lateWindowMs: 30_000,
    ...(tracer ? { tracer } : {}),
  };
  return {
    one: async (i) => {
      const out = await handleSend(deps, tenant, mapping, bodies[i % 1000]!);
      if (out.answer.status !== 'success') throw new Error(`bench message not sent: ${JSON.stringify(out.answer)}`);
      return out;
    },
  };
}

/** KB allocated per message by `one` (objects collected since included). */
async function allocated(one: (i: number) => Promise<unknown>, n: number, top?: (w: ReturnType<typeof heapWeighted>) => void): Promise<number> {
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 128, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  await run(one, n);
  const { profile } = await session.post('HeapProfiler.stopSampling');
  session.disconnect();
  const w = heapWeighted(profile.head);
  top?.(w);
  return w.total / 1024 / n;
}

/** n messages one after another, the event loop turning every 50 (so the log file is written as in service). */
export async function run(one: (i: number) => Promise<unknown>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await one(i);
    if (i % 50 === 49) await new Promise((r) => setImmediate(r));
  }
}

export async function runSendFlowBench(opts: { quick: boolean; top?: boolean; log?: (line: string) => void; messages?: number }): Promise<SendFlowFigures> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const { one } = setUp();
  const n = opts.messages ?? (opts.quick ? 20_000 : 100_000);
  await run(one, n / 2);
  const t0 = performance.now();
  await run(one, n);
  const us = ((performance.now() - t0) * 1000) / n;

  let heaviest: ReturnType<typeof byFunction> = [];
  // (weights divided by the message count: bytes per message)
  const kb = await allocated(one, n, (w) => (heaviest = byFunction(w, n, 25)));
  log(`send flow (Meta template, BSP and store answering at once): ${us.toFixed(2)} µs and ${kb.toFixed(2)} KB allocated per message`);
  if (opts.top) for (const e of heaviest) log(`  ${String(e.self).padStart(6)} B  ${e.fn}  ${e.where}`);
  const trace = await traceCost(one, n, log);
  return { send_flow_us: r2(us), send_flow_kb: r2(kb), ...trace };
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * µs per message of n messages: on the main thread (the answers' thread: the flow, and the tracer's
 * building, serializing and handing events to the store, up to its last write begun), and the
 * process's CPU (the store's thread too) up to the last write stored.
 */
async function timed(one: (i: number) => Promise<unknown>, n: number, tracer?: Tracer): Promise<{ us: number; cpuUs: number }> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await run(one, n);
  const stored = tracer?.flush(); // (its first write starts at once)
  const main = performance.now() - t0;
  await stored;
  const c = process.cpuUsage(c0);
  return { us: (main * 1000) / n, cpuUs: (c.user + c.system) / n };
}

async function traceCost(plain: (i: number) => Promise<unknown>, n: number, log: (line: string) => void): Promise<Pick<SendFlowFigures, 'send_flow_traced_us' | 'send_flow_trace_ratio' | 'send_flow_trace_cpu_ratio' | 'send_flow_trace_kb'>> {
  const dir = mkdtempSync(join(tmpdir(), 'wabridge-trace-bench-'));
  const store = await openSqliteStoreThread(join(dir, 'trace.db'));
  try {
    // Every event is written (the cost measured is the whole trace's): the buffer holds a whole run,
    // where the host's 20,000 would drop part of the full run's 100,000 messages sent back to back.
    const tracer = new Tracer(store, { keepMs: 7 * 86_400_000, maxBuffered: 2 * n });
    const { one: traced } = setUp(tracer);
    await run(traced, n / 2);
    await tracer.flush();
    const pairs: { off: { us: number; cpuUs: number }; on: { us: number; cpuUs: number } }[] = [];
    for (let round = 0; round < 3; round++) {
      // Alternating which goes first, so a drift in the machine's load weighs on both.
      if (round % 2 === 0) {
        const off = await timed(plain, n);
        pairs.push({ off, on: await timed(traced, n, tracer) });
      } else {
        const on = await timed(traced, n, tracer);
        pairs.push({ on, off: await timed(plain, n) });
      }
    }
    const kbOff = await allocated(plain, n);
    const kbOn = await allocated(traced, n);
    await tracer.flush();
    if (tracer.dropped > 0) throw new Error(`the bench's trace dropped ${tracer.dropped} events`);
    const onUs = median(pairs.map((p) => p.on.us));
    const ratio = median(pairs.map((p) => p.off.us / p.on.us));
    const cpuRatio = median(pairs.map((p) => p.off.cpuUs / p.on.cpuUs));
    log(
      `message trace on (SQLite thread): ${onUs.toFixed(2)} µs per message, ${ratio.toFixed(3)} of the messages/s without it on the main thread ` +
        `(CPU, the store's thread too: ${cpuRatio.toFixed(3)}; pairs off/on µs ${pairs.map((p) => `${p.off.us.toFixed(1)}/${p.on.us.toFixed(1)}`).join(', ')}); +${(kbOn - kbOff).toFixed(2)} KB per message`,
    );
    return { send_flow_traced_us: r2(onUs), send_flow_trace_ratio: Math.round(ratio * 1000) / 1000, send_flow_trace_cpu_ratio: Math.round(cpuRatio * 1000) / 1000, send_flow_trace_kb: r2(kbOn - kbOff) };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const argv = process.argv.slice(2);
  const figures = await runSendFlowBench({ quick: argv.includes('--quick'), top: argv.includes('--top') });
  console.log(JSON.stringify(figures));
}
