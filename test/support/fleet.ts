// Several wabridge child processes sharing one Redis store, behind a small load balancer, with the BSP
// simulator and the CleverTap sink in the test process; everything on 127.0.0.1. Each fleet gets its
// own random key prefix (store.redisPrefix) and deletes exactly those keys afterwards (SCAN + UNLINK,
// never FLUSHALL: the Redis may be shared). `ownRedis` starts a private redis-server for tests that
// kill or restart Redis: the machine's shared Redis is never restarted.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { startBspSimulator, type BspSimulator, type StatusDelays } from '../../engine/standins/bsp-simulator.js';
import { startCleverTapSink, type CleverTapSink } from '../../engine/standins/clevertap-sink.js';
import { redactRedisUrl } from '../../engine/stores/redis.js';
import { startChild, type WabridgeChild } from './child.js';
import { DEMO, ROOT, SETTINGS, freePort, writeConfig, type StackOptions } from './stack.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A connection to `url` that answered PING within 1 s, or undefined. */
export async function probeRedis(url: string): Promise<Redis | undefined> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 1000, commandTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await Promise.race([r.connect().then(() => r.ping()), sleep(1000).then(() => Promise.reject(new Error('timeout')))]);
    return r;
  } catch {
    r.disconnect();
    return undefined;
  }
}

/** Deletes the keys under `prefix` only (SCAN + UNLINK). Returns how many. */
export async function deleteKeys(r: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) n += await r.unlink(...keys);
  } while (cursor !== '0');
  return n;
}

export const describeRedis = redactRedisUrl;

// ---- a private redis-server -----------------------------------------------------------------------

export interface OwnRedis {
  url: string;
  port: number;
  dir: string;
  /** Running now. */
  up(): boolean;
  /** SIGKILL (no shutdown save: what the AOF holds is all that survives). */
  kill(): Promise<void>;
  /** Starts it again on the same port and folder (the AOF is replayed). */
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * redis-server on a free port with `--save "" --appendonly yes --appendfsync always` in a temp folder:
 * every write is in the fsynced AOF before Redis answers it.
 */
export async function ownRedis(appendfsync: 'always' | 'everysec' = 'always'): Promise<OwnRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'wabridge-redis-'));
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let proc: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const start = async () => {
    const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', appendfsync, '--dir', dir, '--logfile', join(dir, 'redis.log')], {
      stdio: 'ignore',
    });
    proc = p;
    exited = new Promise((res) => p.once('exit', () => res()));
    const until = Date.now() + 10_000;
    for (;;) {
      const r = await probeRedis(url);
      if (r) {
        // Loading the AOF answers -LOADING: wait until it is really serving.
        const ok = await r
          .get('x')
          .then(() => true)
          .catch(() => false);
        r.disconnect();
        if (ok) return;
      }
      if (p.exitCode !== null) throw new Error(`redis-server exited (${p.exitCode}): ${readFileSync(join(dir, 'redis.log'), 'utf8').slice(-500)}`);
      if (Date.now() > until) throw new Error('redis-server did not start within 10 s');
      await sleep(50);
    }
  };
  await start();
  const self: OwnRedis = {
    url,
    port,
    dir,
    up: () => proc !== undefined && proc.exitCode === null && proc.signalCode === null,
    async kill() {
      if (self.up()) proc!.kill('SIGKILL');
      await exited;
    },
    start,
    async close() {
      await self.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return self;
}

// ---- a load balancer ------------------------------------------------------------------------------

export interface LoadBalancer {
  url: string;
  setTargets(urls: string[]): void;
  /** Requests answered per target URL. */
  served: Map<string, number>;
  close(): Promise<void>;
}

/**
 * Round-robin HTTP proxy, like nginx `proxy_next_upstream error`: a connection refused goes to the
 * next instance; a webhook (idempotent: wabridge dedupes it) whose instance died mid-request is also
 * retried on the next one; a send is not (the BSP may have taken it), it gets 502.
 */
export async function startLoadBalancer(targets: string[]): Promise<LoadBalancer> {
  let list = [...targets];
  let rr = 0;
  const served = new Map<string, number>();
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: 64 });
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !['connection', 'keep-alive', 'transfer-encoding', 'host', 'content-length'].includes(k)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    const idempotent = req.method === 'GET' || (req.url ?? '').includes('/webhook');
    let lastError = 'no instance';
    // Each request walks the whole list once from its own starting point: a refused instance is skipped,
    // never tried twice by the same request.
    const start = rr++;
    for (let i = 0; i < list.length; i++) {
      const target = list[(start + i) % list.length]!;
      try {
        const r = await request(`${target}${req.url}`, { method: req.method as 'POST', headers, body: body.length > 0 ? body : undefined, dispatcher: agent, headersTimeout: 30_000, bodyTimeout: 30_000 });
        const text = Buffer.from(await r.body.arrayBuffer());
        served.set(target, (served.get(target) ?? 0) + 1);
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(r.headers)) if (v !== undefined && !['connection', 'keep-alive', 'transfer-encoding'].includes(k)) out[k] = Array.isArray(v) ? v.join(', ') : v;
        res.writeHead(r.statusCode, out);
        res.end(text);
        return;
      } catch (e) {
        const err = e as Error & { code?: string; cause?: { code?: string } };
        lastError = err.message;
        const refused = err.code === 'ECONNREFUSED' || err.cause?.code === 'ECONNREFUSED';
        if (!refused && !idempotent) break;
      }
    }
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ message: `load balancer: ${lastError}` }));
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
  });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    setTargets: (urls) => {
      list = [...urls];
    },
    served,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((res) => server.close(() => res()));
      await agent.close().catch(() => undefined);
    },
  };
}

// ---- the fleet ------------------------------------------------------------------------------------

export interface FleetOptions extends StackOptions {
  instances: number;
  redisUrl: string;
  statusDelaysMs?: Partial<StatusDelays>;
  retryDelayMs?: number;
}

export interface FleetInstance {
  name: string;
  port: number;
  url: string;
  configFile: string;
  child?: WabridgeChild;
}

export interface Fleet {
  dir: string;
  prefix: string;
  instances: FleetInstance[];
  sim: BspSimulator;
  sink: CleverTapSink;
  lb: LoadBalancer;
  /** Starts every instance (in parallel) and points the load balancer at all of them. */
  start(): Promise<void>;
  startInstance(i: number): Promise<WabridgeChild>;
  close(): Promise<void>;
}

/** Sink, simulator (webhooks → the load balancer) and N configs sharing one Redis under a random prefix. */
export async function startFleet(opts: FleetOptions): Promise<Fleet> {
  const dir = mkdtempSync(join(tmpdir(), 'wabridge-fleet-'));
  const prefix = `wabtest:fleet:${randomBytes(6).toString('hex')}:`;
  const sink = await startCleverTapSink({ port: 0, print: () => undefined });
  const lb = await startLoadBalancer([]);
  const provider = opts.provider ?? DEMO.provider;
  const mappings = opts.mappingsDir ?? join(ROOT, 'mappings');
  const settings = opts.settings ?? SETTINGS;
  const sim = await startBspSimulator({
    mappingDir: join(mappings, provider),
    settings,
    webhookUrl: `${lb.url}/v1/tenants/demo/webhook`,
    port: 0,
    statusDelaysMs: opts.statusDelaysMs ?? { sent: 20, delivered: 40, read: 60 },
    ...(opts.retryDelayMs !== undefined ? { retryDelayMs: opts.retryDelayMs } : {}),
  });
  const instances: FleetInstance[] = [];
  for (let i = 0; i < opts.instances; i++) {
    const port = await freePort();
    const idir = join(dir, `i${i}`);
    mkdirSync(idir);
    const configFile = join(idir, 'wabridge.yaml');
    writeConfig(configFile, { ...opts, provider, settings, port, bspPort: sim.port, sinkUrl: sink.url, mappings, sqlite: join(idir, 'unused.db') });
    const text = readFileSync(configFile, 'utf8').replace(/^store:\n {2}sqlite: .*\n/m, `store:\n  redis: ${opts.redisUrl}\n  redisPrefix: "${prefix}"\n`);
    if (text.includes('sqlite:')) throw new Error('fleet: could not swap the store for Redis in the generated configuration');
    writeFileSync(configFile, text);
    instances.push({ name: String.fromCharCode(65 + i), port, url: `http://127.0.0.1:${port}`, configFile });
  }
  const fleet: Fleet = {
    dir,
    prefix,
    instances,
    sim,
    sink,
    lb,
    async startInstance(i) {
      const inst = instances[i]!;
      inst.child = await startChild(inst.configFile, inst.port);
      return inst.child;
    },
    async start() {
      await Promise.all(instances.map((_, i) => fleet.startInstance(i)));
      lb.setTargets(instances.map((x) => x.url));
    },
    async close() {
      await Promise.all(
        instances.map(async (inst) => {
          const c = inst.child;
          if (c && !c.exit()) {
            c.kill('SIGKILL');
            await Promise.race([c.exited, sleep(5000)]);
          }
        }),
      );
      await sim.close();
      await sink.close();
      await lb.close();
      const r = await probeRedis(opts.redisUrl);
      if (r) {
        await deleteKeys(r, prefix).catch(() => undefined);
        r.disconnect();
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fleet;
}

/**
 * Polls `check` every `everyMs` until it is true; false after `timeoutMs`. The checks here scan
 * thousands of recorded webhooks, so they run far less often than stack.ts's `eventually`: the
 * simulator, the sink and the balancer share this process's event loop.
 */
export async function poll(check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 250): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > until) return false;
    await sleep(everyMs);
  }
}

/** GET a path; a connection error is { status: 0 }. */
export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  try {
    const r = await request(url, { headers, headersTimeout: 5000, bodyTimeout: 5000 });
    return { status: r.statusCode, text: await r.body.text() };
  } catch (e) {
    return { status: 0, text: (e as Error).message };
  }
}
