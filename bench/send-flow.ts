// What one CleverTap message costs wabridge itself, without the network: the whole send flow
// (engine/host/send-flow.ts handleSend: parse and normalize the payload, plan the Meta request, map the
// BSP's answer, store the correlation, count it and log its line) with a BSP client and a store that
// answer at once, in this process. Time per message, and bytes allocated per message measured by V8's
// sampling heap profiler with the collected objects counted: unlike time, that figure hardly moves
// between runs, so a change of a few hundred bytes shows. At -c 1500 the garbage collector's share of
// wabridge's CPU follows the bytes (BENCHMARKS.md, ninth session).
//   node --import tsx bench/send-flow.ts [--quick] [--top]
// --top prints the functions allocating most. The last line printed is one JSON object.
import { Session } from 'node:inspector/promises';
import { readFileSync } from 'node:fs';
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
import type { BspResponse } from '../engine/mapping/send.js';
import { ROOT, SETTINGS } from '../test/support/stack.js';
import { byFunction, heapWeighted } from './profile.js';

export interface SendFlowFigures {
  /** µs per message through handleSend, BSP and store answering at once. */
  send_flow_us: number;
  /** KB allocated per message (collected objects included). */
  send_flow_kb: number;
}

/** The send flow on the Meta mapping and CleverTap's template sample, every message a new msgId. */
function setUp(): { one: (i: number) => Promise<unknown> } {
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
    headers: { 'content-type': 'application/json' },
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
  };
  return {
    one: async (i) => {
      const out = await handleSend(deps, tenant, mapping, bodies[i % 1000]!);
      if (out.answer.status !== 'success') throw new Error(`bench message not sent: ${JSON.stringify(out.answer)}`);
      return out;
    },
  };
}

/** n messages one after another, the event loop turning every 50 (so the log file is written as in service). */
async function run(one: (i: number) => Promise<unknown>, n: number): Promise<void> {
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

  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 128, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  await run(one, n);
  const { profile } = await session.post('HeapProfiler.stopSampling');
  session.disconnect();
  const w = heapWeighted(profile.head);
  const kb = w.total / 1024 / n;
  log(`send flow (Meta template, BSP and store answering at once): ${us.toFixed(2)} µs and ${kb.toFixed(2)} KB allocated per message`);
  // (weights divided by the message count: bytes per message)
  if (opts.top) for (const e of byFunction(w, n, 25)) log(`  ${String(e.self).padStart(6)} B  ${e.fn}  ${e.where}`);
  return { send_flow_us: Math.round(us * 100) / 100, send_flow_kb: Math.round(kb * 100) / 100 };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const argv = process.argv.slice(2);
  const figures = await runSendFlowBench({ quick: argv.includes('--quick'), top: argv.includes('--top') });
  console.log(JSON.stringify(figures));
}
