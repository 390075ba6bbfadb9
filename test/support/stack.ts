// The whole service on 127.0.0.1 for end-to-end tests: the CleverTap sink, the simulated BSP and
// wabridge itself, wired through a generated wabridge.yaml in a temp folder.
import { mkdtempSync, readFileSync, writeFileSync, rmSync, cpSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { request } from 'undici';
import { startHost, type Host } from '../../engine/host/host.js';
import { startBspSimulator, type BspSimulator } from '../../engine/standins/bsp-simulator.js';
import { startCleverTapSink, type CleverTapSink } from '../../engine/standins/clevertap-sink.js';
import { demoMapping } from './demo.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

// A port taken with listen(0) and released comes from ip_local_port_range, the range the kernel also
// draws every outgoing connection's local port and every other listen(0) from: between the release and
// the child's own bind, a connection can take it (CI saw a fleet instance die of EADDRINUSE). Below that
// range only an explicit bind takes a port, so the ones handed out here stay free until the child binds.
const EPHEMERAL_LOW = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 0;
  } catch {
    return 0;
  }
})();
const handedOut = new Set<number>();

function bindable(port: number): Promise<number | undefined> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(undefined));
    s.listen(port, '127.0.0.1', () => {
      const got = (s.address() as { port: number }).port;
      s.close(() => res(got));
    });
  });
}

/** A port on 127.0.0.1 that nothing holds, outside the kernel's ephemeral range where there is one. */
export async function freePort(): Promise<number> {
  const low = Math.max(10_000, EPHEMERAL_LOW - 12_000);
  for (let i = 0; EPHEMERAL_LOW > low && i < 100; i++) {
    const port = low + Math.floor(Math.random() * (EPHEMERAL_LOW - low));
    if (handedOut.has(port)) continue;
    if ((await bindable(port)) === port) {
      handedOut.add(port);
      return port;
    }
  }
  const port = await bindable(0);
  if (port === undefined) throw new Error('freePort: 127.0.0.1 has no port to bind');
  return port;
}

export interface Stack {
  dir: string;
  configFile: string;
  host: Host;
  sim: BspSimulator;
  sink: CleverTapSink;
  logs: string[];
  /** POST a CleverTap payload to the demo tenant's messaging endpoint. */
  /** `headers` replace the Basic credentials the demo tenant expects (tenant: another tenant's route). */
  send(body: string | object, opts?: { auth?: string | null; contentType?: string; headers?: Record<string, string>; tenant?: string }): Promise<{ status: number; body: unknown }>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** The demo's mapping (test/support/demo.ts): the BSP every stack plays unless told otherwise. */
export const DEMO = demoMapping();
/** Its settings as the demo tenant has them (baseUrl aside: the stack points it at the simulator). */
export const SETTINGS = DEMO.settings;

export interface StackOptions {
  /** Mapping the demo tenant uses (default: the demo's) and its settings (default SETTINGS); baseUrl is set to the simulator. */
  provider?: string;
  /** The mappings folder (default mappings/): a test with a made-up BSP of its own points it at its fixtures. */
  mappingsDir?: string;
  settings?: Record<string, unknown>;
  /** Copy mappings/ into the temp folder (for hot-reload tests that edit them). */
  copyMappings?: boolean;
  /** The tenant's BSP deadline; tests default to a generous 5 s so a loaded machine does not turn answers into 2004. */
  deadline?: string;
  concurrency?: number;
  /** The tenant's bspRate (messages per second); absent = unlimited. */
  bspRate?: number;
  retry?: { baseDelay: string; maxDelay: string; retryFor: string };
  /** server.overload in wabridge.yaml (docs/operations.md). */
  overload?: { targetLag?: string; maxWait?: string; minInFlight?: number; maxInFlight?: number; initialInFlight?: number };
  /** The demo tenant's incomingAudioType (absent: the default). */
  incomingAudioType?: 'audio' | 'voice';
  /** The CleverTap account the sink plays knows only this spelling of audio (absent: both). */
  sinkAudioType?: 'audio' | 'voice';
  /** The demo tenant's clickTracking, as in wabridge.yaml (docs/click-tracking.md). */
  clickTracking?: { linkTtl?: string; templates: Record<string, string | Record<string, string>> };
  /** server.clickRate: clicks per minute per client address on /c/. */
  clickRate?: number;
  /** server.trustProxy. */
  trustProxy?: boolean | string;
  /** The Redis store at this URL under this key prefix, instead of SQLite (the caller removes the keys). */
  redis?: { url: string; prefix: string };
}

export function writeConfig(file: string, o: { port: number; bspPort: number; sinkUrl: string; mappings: string; sqlite: string } & StackOptions): void {
  writeFileSync(
    file,
    `# yaml-language-server: $schema=${ROOT}schemas/config.schema.json
server:
  host: 127.0.0.1
  port: ${o.port}
  publicUrl: http://127.0.0.1:${o.port}
  adminToken: e2e-admin-token-0123456789
  mediaSecret: e2e-media-secret-0123456789
  mappings: ${o.mappings}
  logLevel: info
${o.overload ? `  overload: ${JSON.stringify(o.overload)}\n` : ''}${o.clickRate !== undefined ? `  clickRate: ${o.clickRate}\n` : ''}${o.trustProxy !== undefined ? `  trustProxy: ${JSON.stringify(o.trustProxy)}\n` : ''}store:
${o.redis ? `  redis: ${o.redis.url}\n  redisPrefix: ${JSON.stringify(o.redis.prefix)}` : `  sqlite: ${o.sqlite}`}
callbacks:
  baseDelay: ${o.retry?.baseDelay ?? '50ms'}
  maxDelay: ${o.retry?.maxDelay ?? '200ms'}
  retryFor: ${o.retry?.retryFor ?? '1h'}
  lookupWindow: 30s
tenants:
  demo:
    provider: ${o.provider ?? DEMO.provider}
    settings: ${JSON.stringify({ ...(o.settings ?? SETTINGS), baseUrl: `http://127.0.0.1:${o.bspPort}` })}
    auth:
      basic: { username: demo, password: s3cret }
    callbacks:
      status: ${o.sinkUrl}/callbacks/demo/status
      inbound: ${o.sinkUrl}/callbacks/demo/inbound
    concurrency: ${o.concurrency ?? 1500}
    deadline: ${o.deadline ?? '5s'}
${o.bspRate !== undefined ? `    bspRate: ${o.bspRate}\n` : ''}${o.incomingAudioType !== undefined ? `    incomingAudioType: ${o.incomingAudioType}\n` : ''}${o.clickTracking !== undefined ? `    clickTracking: ${JSON.stringify(o.clickTracking)}\n` : ''}  keyed:
    provider: ${o.provider ?? DEMO.provider}
    settings: ${JSON.stringify({ ...(o.settings ?? SETTINGS), baseUrl: `http://127.0.0.1:${o.bspPort}` })}
    auth:
      header: { name: X-Api-Key, value: k3y-0123456789 }
    callbacks:
      status: ${o.sinkUrl}/callbacks/keyed/status
      inbound: ${o.sinkUrl}/callbacks/keyed/inbound
`,
  );
}

export async function startStack(opts: StackOptions = {}, attempt = 1): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'wabridge-e2e-'));
  const source = opts.mappingsDir ?? join(ROOT, 'mappings');
  const mappings = opts.copyMappings ? join(dir, 'mappings') : source;
  if (opts.copyMappings) cpSync(source, mappings, { recursive: true });
  const logs: string[] = [];
  const sink = await startCleverTapSink({ port: 0, print: () => undefined, ...(opts.sinkAudioType ? { incomingAudioType: opts.sinkAudioType } : {}) });
  const port = await freePort();
  const sim = await startBspSimulator({
    mappingDir: join(mappings, opts.provider ?? DEMO.provider),
    settings: opts.settings ?? SETTINGS,
    webhookUrl: `http://127.0.0.1:${port}/v1/tenants/demo/webhook`,
    port: 0,
    statusDelaysMs: { sent: 20, delivered: 40, read: 60 },
    slowMs: 1500,
  });
  const configFile = join(dir, 'wabridge.yaml');
  writeConfig(configFile, { ...opts, port, bspPort: sim.port, sinkUrl: sink.url, mappings, sqlite: join(dir, 'wabridge.db') });
  const launch = () => {
    const out = new PassThrough();
    out.on('data', (chunk: Buffer) => logs.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
    return startHost({ configFile, logDestination: out });
  };
  let host: Host;
  try {
    host = await launch();
  } catch (e) {
    // freePort's port can be taken by a parallel test before the host listens on it: start over on another.
    await sim.close();
    await sink.close();
    rmSync(dir, { recursive: true, force: true });
    if ((e as { code?: string }).code === 'EADDRINUSE' && attempt < 3) return startStack(opts, attempt + 1);
    throw e;
  }
  const stack: Stack = {
    dir,
    configFile,
    host,
    sim,
    sink,
    logs,
    async send(body, o = {}) {
      const headers: Record<string, string> = { 'content-type': o.contentType ?? 'application/json' };
      const auth = o.auth === undefined ? 'demo:s3cret' : o.auth;
      if (auth !== null && o.headers === undefined) headers.authorization = `Basic ${Buffer.from(auth).toString('base64')}`;
      Object.assign(headers, o.headers);
      const res = await request(`${stack.host.url}/v1/tenants/${o.tenant ?? 'demo'}/messages`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
      const text = await res.body.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* keep the text */
      }
      return { status: res.statusCode, body: parsed };
    },
    async restart() {
      await stack.host.close();
      stack.host = await launch();
    },
    async close() {
      await stack.host.close();
      await sim.close();
      await sink.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return stack;
}

/** Polls `check` until it returns true or `timeoutMs` passes (then fails with `what`). */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Posts a webhook the simulator built (sim.statusWebhook) to the demo tenant's webhook route, as the BSP would. */
export async function postBuiltWebhook(s: Stack, w: { rawBody: string; headers: Record<string, string> }): Promise<{ status: number; body: unknown }> {
  const res = await request(`${s.host.url}/v1/tenants/demo/webhook`, { method: 'POST', headers: w.headers, body: w.rawBody });
  const text = await res.body.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* keep the text */
  }
  return { status: res.statusCode, body };
}
