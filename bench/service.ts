// Latency of CleverTap's messaging endpoint, end to end over HTTP: the CleverTap sink, the simulated
// Meta Cloud API (answering at once) and wabridge, all in this process on 127.0.0.1, as in
// test/support/stack.ts. 2000 template messages at concurrency 50 (after a warm-up), then the same load
// on a bare fastify pass-through (the mapped request body forwarded to the same simulator with undici)
// as the floor any bridge pays. Prints p50/p99/max and req/s of both; the last line is one JSON object.
// Status webhooks are scheduled a minute out, so only the messaging path is measured.
//   node --import tsx bench/service.ts [--requests 2000] [--concurrency 50] [--store-dir /dev/shm]
// --store-dir puts the SQLite file elsewhere (a tmpfs makes fsync free: the difference is its cost).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { Agent, Pool, request } from 'undici';
import { startHost } from '../engine/host.js';
import { toCanonical } from '../engine/pipeline.js';
import { planSend } from '../engine/send.js';
import { startBspSimulator } from '../engine/standins/bsp-simulator.js';
import { startCleverTapSink } from '../engine/standins/clevertap-sink.js';
import { ROOT, SETTINGS, freePort, writeConfig } from '../test/support/stack.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const REQUESTS = arg('requests', 2000);
const CONCURRENCY = arg('concurrency', 50);
const WARMUP = Math.min(500, REQUESTS);
const LIMIT_MS = 60_000;
const storeDirArg = process.argv.indexOf('--store-dir');
const STORE_DIR = storeDirArg > 0 ? process.argv[storeDirArg + 1] : undefined;

const guard = setTimeout(() => {
  console.error(`bench/service: not finished within ${LIMIT_MS / 1000} s, giving up`);
  process.exit(1);
}, LIMIT_MS);
guard.unref();

interface Run {
  requests: number;
  ok: number;
  p50: number;
  p99: number;
  max: number;
  rps: number;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

/** `n` POSTs at `concurrency` over one keep-alive pool; `ok` judges each answer body. */
async function load(origin: string, path: string, n: number, concurrency: number, body: (i: number) => string, headers: Record<string, string>, ok: (status: number, text: string) => boolean): Promise<Run> {
  const pool = new Pool(origin, { connections: concurrency, pipelining: 1 });
  const latencies: number[] = [];
  let good = 0;
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < n) {
      const i = next++;
      const t0 = performance.now();
      const res = await pool.request({ method: 'POST', path, headers, body: body(i) });
      const text = await res.body.text();
      latencies.push(performance.now() - t0);
      if (ok(res.statusCode, text)) good++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  const seconds = (performance.now() - started) / 1000;
  await pool.close();
  latencies.sort((a, b) => a - b);
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return { requests: n, ok: good, p50: r2(pct(latencies, 50)), p99: r2(pct(latencies, 99)), max: r2(latencies[latencies.length - 1] ?? NaN), rps: Math.round(n / seconds) };
}

const dir = mkdtempSync(join(tmpdir(), 'wabridge-bench-'));
const storeDir = STORE_DIR ? mkdtempSync(join(STORE_DIR, 'wabridge-bench-')) : dir;
const sink = await startCleverTapSink({ port: 0, print: () => undefined });
const port = await freePort();
const sim = await startBspSimulator({
  mappingDir: join(ROOT, 'mappings', 'meta-cloud'),
  settings: SETTINGS,
  webhookUrl: `http://127.0.0.1:${port}/v1/tenants/demo/webhook`,
  port: 0,
  statusDelaysMs: { sent: 60_000, delivered: 60_000, read: 60_000 },
});
const configFile = join(dir, 'wabridge.yaml');
writeConfig(configFile, { port, bspPort: sim.port, sinkUrl: sink.url, mappings: join(ROOT, 'mappings'), sqlite: join(storeDir, 'wabridge.db'), deadline: '900ms' });
// Logs at info, as in production, into a sink that drops them.
const devnull = new Writable({ write: (_c, _e, cb) => cb() });
const host = await startHost({ configFile, logDestination: devnull });

const template = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8')) as Record<string, unknown>;
const clevertapBody = (i: number) => JSON.stringify({ ...template, msgId: `bench|${i}|${Date.now()}|1` });
const auth = { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('demo:s3cret').toString('base64')}` };
const success = (status: number, text: string) => status === 200 && text === '{"status":"success"}';

// The pass-through: the request wabridge would send to the BSP for this message, forwarded verbatim.
const canonical = toCanonical(clevertapBody(0));
if (!canonical.ok) throw new Error('the sample does not normalize');
const plan = await planSend(host.registry.get('meta-cloud')!, canonical.message, host.config.tenants.get('demo')!.settings);
if (plan.kind !== 'request') throw new Error('the sample does not map to a request');
const bsp = plan.request;
const passAgent = new Agent({ keepAliveTimeout: 30_000, connections: 2048 });
const pass = Fastify({ logger: false });
pass.removeAllContentTypeParsers();
pass.addContentTypeParser('*', { parseAs: 'string' }, (_req, b, done) => done(null, b));
pass.post<{ Body: string }>('/pass', async (req, reply) => {
  const res = await request(bsp.url, { method: 'POST', headers: bsp.headers, body: req.body, dispatcher: passAgent });
  const text = await res.body.text();
  return reply.code(res.statusCode).type('application/json').send(text);
});
await pass.listen({ host: '127.0.0.1', port: 0 });
const passUrl = `http://127.0.0.1:${(pass.server.address() as { port: number }).port}`;

try {
  const wabridgePath = '/v1/tenants/demo/messages';
  await load(host.url, wabridgePath, WARMUP, CONCURRENCY, (i) => clevertapBody(1_000_000 + i), auth, success);
  const w = await load(host.url, wabridgePath, REQUESTS, CONCURRENCY, clevertapBody, auth, success);
  const passOk = (status: number, text: string) => status === 200 && text.includes('"messages"');
  await load(passUrl, '/pass', WARMUP, CONCURRENCY, () => bsp.body ?? '', { 'content-type': 'application/json' }, passOk);
  const b = await load(passUrl, '/pass', REQUESTS, CONCURRENCY, () => bsp.body ?? '', { 'content-type': 'application/json' }, passOk);

  const line = (name: string, r: Run) => `${name}: ${r.requests} requests at concurrency ${CONCURRENCY}, ${r.ok} ok: p50 ${r.p50} ms, p99 ${r.p99} ms, max ${r.max} ms, ${r.rps} req/s`;
  console.log(line('wabridge  ', w));
  console.log(line('pass-through', b));
  console.log(`wabridge over pass-through: p50 +${(w.p50 - b.p50).toFixed(2)} ms, p99 +${(w.p99 - b.p99).toFixed(2)} ms, throughput ${((w.rps / b.rps) * 100).toFixed(0)}%`);
  console.log(
    JSON.stringify({
      requests: REQUESTS,
      concurrency: CONCURRENCY,
      storeDir: STORE_DIR ?? tmpdir(),
      wabridge: { ok: w.ok, p50Ms: w.p50, p99Ms: w.p99, maxMs: w.max, rps: w.rps },
      passThrough: { ok: b.ok, p50Ms: b.p50, p99Ms: b.p99, maxMs: b.max, rps: b.rps },
    }),
  );
  if (w.ok !== REQUESTS || b.ok !== REQUESTS) process.exitCode = 1;
} finally {
  await pass.close();
  await passAgent.close();
  await host.close();
  await sim.close();
  await sink.close();
  rmSync(dir, { recursive: true, force: true });
  if (storeDir !== dir) rmSync(storeDir, { recursive: true, force: true });
}
