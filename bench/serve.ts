// One server of the service bench (bench/service.ts) in its own process, so that the load generator,
// the simulated BSP and the server under test do not share an event loop:
//   node --import tsx bench/serve.ts <role> '<json options>'
// roles: wabridge (startHost, the same call `wabridge serve` makes, logs at the configured level into
// a file as production writes them to stdout), sim (the BSP simulator), pass (a bare fastify
// pass-through to the simulator), passlife (the lifecycle's pass-through), sink (the CleverTap sink). Binds 127.0.0.1 only. Prints one JSON
// line on stdout once listening ({role, url, port, pid}); answers {id, cmd} messages on the IPC
// channel; stops on SIGTERM/SIGINT and when the parent goes away (IPC disconnect).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { PerformanceObserver, constants, monitorEventLoopDelay } from 'node:perf_hooks';
import Fastify from 'fastify';
import { Agent } from 'undici';
import { startHost } from '../engine/host/host.js';
import { HttpCalls } from '../engine/host/http-call.js';
import { logDestination } from '../engine/host/logger.js';
import { startBspSimulator, type StatusDelays } from '../engine/standins/bsp-simulator.js';
import { startCleverTapSink } from '../engine/standins/clevertap-sink.js';
import { ROOT, SETTINGS } from '../test/support/stack.js';

type Reply = Record<string, unknown>;
type Handler = (msg: Record<string, unknown>) => Reply | Promise<Reply>;

const role = process.argv[2] ?? '';
const options = JSON.parse(process.argv[3] ?? '{}') as Record<string, unknown>;

let stopping = false;
let stopFn: () => Promise<void> = async () => undefined;
const stop = (code: number) => {
  if (stopping) return;
  stopping = true;
  // Bounded: a stop that hangs must not keep the process (and its port) alive.
  setTimeout(() => process.exit(code), 15_000).unref();
  stopFn().then(
    () => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`bench/serve ${role}: stop failed: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
};
process.once('SIGTERM', () => stop(0));
process.once('SIGINT', () => stop(0));
// The parent died or closed the channel: nobody will ever stop us otherwise.
process.once('disconnect', () => stop(0));

// Event-loop delay of this process, read (and reset) over IPC: an HTTP scrape would queue behind the load.
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
const loopHandler: Handler = () => {
  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  const out = { count: loop.count, p50Ms: ms(loop.percentile(50)), p99Ms: ms(loop.percentile(99)), maxMs: ms(loop.max) };
  loop.reset();
  // Time in garbage collection since the last read (the pauses V8 reports, on the main thread).
  const gc = { gcMs: Math.round(gcMs * 10) / 10, gcMinorMs: Math.round(gcMinorMs * 10) / 10 };
  gcMs = 0;
  gcMinorMs = 0;
  return { ...out, ...gc };
};
let gcMs = 0;
let gcMinorMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcMs += e.duration;
    if (((e as { detail?: { kind?: number } }).detail)?.kind === constants.NODE_PERFORMANCE_GC_MINOR) gcMinorMs += e.duration;
  }
}).observe({ entryTypes: ['gc'] });

// A CPU or allocation profile of this process on demand (bench/service.ts --cpu-prof, --heap-prof),
// so the warm-up stays out of it. kind 'heap': allocation sampling that keeps the objects the
// collector freed, so the profile counts every byte allocated (what the GC's cost follows).
let session: Session | undefined;
const profileHandlers: Record<string, Handler> = {
  'profile-start': async (m) => {
    session = new Session();
    session.connect();
    if (m.kind === 'heap') {
      await session.post('HeapProfiler.enable');
      await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    } else {
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    return { ok: true };
  },
  'profile-stop': async (m) => {
    if (!session) throw new Error('no profile started');
    const { profile } = m.kind === 'heap' ? await session.post('HeapProfiler.stopSampling') : await session.post('Profiler.stop');
    writeFileSync(String(m.file), JSON.stringify(profile));
    session.disconnect();
    session = undefined;
    return { ok: true };
  },
};

function serve(handlers: Record<string, Handler>): void {
  const all: Record<string, Handler> = { loop: loopHandler, ...profileHandlers, ...handlers };
  process.on('message', (raw) => {
    const msg = raw as Record<string, unknown>;
    const h = all[String(msg.cmd)];
    Promise.resolve()
      .then(() => (h ? h(msg) : { error: `unknown command ${String(msg.cmd)}` }))
      .then(
        (r) => process.send?.({ id: msg.id, ...r }),
        (e: unknown) => process.send?.({ id: msg.id, error: (e as Error).message }),
      );
  });
}

function ready(url: string): void {
  process.stdout.write(`${JSON.stringify({ role, url, port: Number(new URL(url).port), pid: process.pid })}\n`);
}

async function wabridge(): Promise<void> {
  const logFile = String(options.logFile ?? '/dev/null');
  // the destination `wabridge serve` gets for stdout (asynchronous sonic-boom), on a file
  const host = await startHost({ configFile: String(options.configFile), logDestination: logDestination(logFile) });
  stopFn = () => host.close();
  serve({
    ping: () => ({ ok: true }),
    /** process.memoryUsage(), after a full GC when asked and the process runs with --expose-gc. */
    mem: (m) => {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (m.gc === true && gc) gc();
      return { ...process.memoryUsage(), gc: m.gc === true && gc !== undefined };
    },
  });
  ready(host.url);
}

async function sim(): Promise<void> {
  const s = await startBspSimulator({
    mappingDir: join(ROOT, 'mappings', 'meta-cloud'),
    settings: SETTINGS,
    webhookUrl: String(options.webhookUrl),
    port: Number(options.port ?? 0),
    // A BSP's edge does not drop connections: 1500 opened at once must not overflow the accept queue.
    backlog: 4096,
    statusWebhooks: options.statusWebhooks !== false,
    ...(options.statusDelaysMs ? { statusDelaysMs: options.statusDelaysMs as Partial<StatusDelays> } : {}),
  });
  stopFn = () => s.close();
  // The BSP's answer time: scenario 'slow' with delayMs answers every accepted send after that long.
  let delayMs = 0;
  const apply = () => s.setScenario(delayMs > 0 ? { scenario: 'slow', delayMs } : { scenario: 'success' });
  // The simulator records every request and webhook; for long runs drop them every few seconds
  // (reset and scenario again in one synchronous step, so no request sees the default scenario).
  let record = false;
  const trim = setInterval(() => {
    if (record) return;
    s.reset();
    apply();
  }, 2_000);
  trim.unref();
  serve({
    delay: (m) => {
      delayMs = Number(m.ms);
      apply();
      return { ok: true };
    },
    record: (m) => {
      record = m.on === true;
      s.reset();
      apply();
      return { ok: true };
    },
    /** The accepted sends recorded since `record`: BSP id, the caller's msgId, recipient. */
    sent: () => ({ sent: s.sent().filter((r) => r.providerMessageId).map((r) => ({ id: r.providerMessageId, msgId: r.msgId, recipient: r.recipient })) }),
  });
  ready(s.url);
}

async function pass(): Promise<void> {
  const bspUrl = String(options.bspUrl);
  const headers = options.headers as Record<string, string>;
  // The HTTP client wabridge's BspClient uses (engine/host/http-call.ts, undici's dispatch through one
  // keep-alive agent with room for every concurrent request), so the two differ only by wabridge's work.
  const agent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000, connections: 2048, connect: { timeout: 5_000 } });
  const calls = new HttpCalls(agent);
  const app = Fastify({ logger: false });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, b, done) => done(null, b));
  app.post<{ Body: string }>('/pass', async (req, reply) => {
    const res = await calls.call({ method: 'POST', url: bspUrl, headers, body: req.body }, 10_000, 'BSP did not answer within 10 s', 1_048_576);
    return reply.code(res.status).type('application/json').send(res.text);
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  stopFn = async () => {
    await app.close();
    await agent.close();
  };
  serve({ ping: () => ({ ok: true }) });
  ready(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`);
}

/**
 * The lifecycle's pass-through (bench/lifecycle.ts): the same HTTP legs as wabridge, with none of its
 * work. A CleverTap message becomes the Meta request wabridge would send (a template with the msgId put
 * in, no mapping), the BSP's answer becomes success; each status webhook becomes one CleverTap status
 * callback POSTed at once (the msgId read from biz_opaque_callback_data: no store, no outbox, no retry,
 * no batching, no log).
 */
async function passlife(): Promise<void> {
  const bspUrl = String(options.bspUrl);
  const headers = options.headers as Record<string, string>;
  const [head, tail] = String(options.bodyTemplate).split('@@MSGID@@') as [string, string];
  const statusUrl = `${String(options.sinkUrl)}/callbacks/demo/status`;
  const agent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000, connections: 2048, connect: { timeout: 5_000 } });
  const calls = new HttpCalls(agent);
  const app = Fastify({ logger: false });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, b, done) => done(null, b));
  app.post<{ Body: string }>('/v1/tenants/demo/messages', async (req, reply) => {
    const msgId = (JSON.parse(req.body) as { msgId: string }).msgId;
    const res = await calls.call({ method: 'POST', url: bspUrl, headers, body: head + JSON.stringify(msgId).slice(1, -1) + tail }, 10_000, 'BSP did not answer within 10 s', 1_048_576);
    return reply.type('application/json').send(res.status >= 200 && res.status < 300 ? '{"status":"success"}' : '{"status":"failure","error":{"code":2004,"message":"BSP error"}}');
  });
  type MetaStatus = { status: string; timestamp: string; biz_opaque_callback_data?: string };
  app.post<{ Body: string }>('/v1/tenants/demo/webhook', async (req, reply) => {
    const body = JSON.parse(req.body) as { entry: { changes: { value: { statuses?: MetaStatus[] } }[] }[] };
    const statuses = body.entry.flatMap((e) => e.changes.flatMap((c) => c.value.statuses ?? []));
    for (const st of statuses) {
      if (!st.biz_opaque_callback_data) continue;
      const entry = { msgId: st.biz_opaque_callback_data, status: st.status, timestamp: st.timestamp };
      await calls.call({ method: 'POST', url: statusUrl, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ payloadVersion: '0.1', statuses: [entry] }) }, 10_000, 'sink did not answer', 65_536);
    }
    return reply.code(200).send({ ok: true });
  });
  await app.listen({ host: '127.0.0.1', port: Number(options.port ?? 0) });
  stopFn = async () => {
    await app.close();
    await agent.close();
  };
  serve({ ping: () => ({ ok: true }) });
  ready(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`);
}

async function sink(): Promise<void> {
  const s = await startCleverTapSink({ port: Number(options.port ?? 0), print: () => undefined });
  stopFn = () => s.close();
  // The sink keeps every callback; fold its counts into totals every few seconds and forget them,
  // so a long soak does not grow this process without bound.
  const totals = { statuses: 0, callbacks: 0, refused: 0, replays: 0 };
  let firstAt = 0;
  let lastAt = 0;
  const fold = () => {
    const got = s.received();
    if (got.length === 0) return;
    if (firstAt === 0) firstAt = Date.parse(got[0]!.at);
    lastAt = Date.parse(got[got.length - 1]!.at);
    totals.statuses += s.statuses().length;
    totals.replays += s.replays();
    totals.callbacks += got.length;
    totals.refused += got.filter((c) => !c.accepted).length;
    s.clear();
  };
  const folder = setInterval(fold, 5_000);
  folder.unref();
  serve({
    count: () => {
      fold();
      return { ...totals, firstAt, lastAt };
    },
    reset: () => {
      s.clear();
      Object.assign(totals, { statuses: 0, callbacks: 0, refused: 0, replays: 0 });
      firstAt = 0;
      lastAt = 0;
      return { ok: true };
    },
  });
  ready(s.url);
}

const roles: Record<string, () => Promise<void>> = { wabridge, sim, pass, passlife, sink };
const start = roles[role];
if (!start) {
  process.stderr.write(`bench/serve: unknown role '${role}' (one of ${Object.keys(roles).join(', ')})\n`);
  process.exit(2);
}
start().catch((e: unknown) => {
  process.stderr.write(`bench/serve ${role}: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
