// The whole message lifecycle, which is what sizes a deployment: each message CleverTap sends comes
// back as three statuses (sent, delivered, read) that wabridge must ingest, correlate and deliver as
// callbacks. A fixed number of messages go through the real host (its own process, as `wabridge
// serve` runs) to the simulated BSP, which posts the three statuses of each to the host's webhook; the
// run ends when the CleverTap sink holds all of them. The same legs through a bare Fastify (serve.ts
// passlife: no mapping, store, outbox or log) are the baseline, in the same run.
//   node --import tsx bench/lifecycle.ts [--quick] [--messages N] [--only sqlite,redis,passthrough,workers1,workers2]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadResult, LoadSpec } from './load.js';
import { Child, LOAD, SERVE, TARGET_NODE_ARGS, cpuTicks, killAll, metaRequest } from './service.js';
import { ROOT, freePort, writeConfig } from '../test/support/stack.js';

/** The target as the lifecycle run needs it: where it listens, its processes (for CPU), how to stop it. */
interface Target {
  info: { url: string };
  pids(): number[];
  stop(): Promise<void>;
}

/** Every descendant of a process (a cluster primary's workers, their threads are counted with them). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d), ...descendants(Number(d)));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** `wabridge serve --config file --workers n`, started the way a user starts it, ready when /readyz says so. */
async function startCli(configFile: string, workers: number, url: string): Promise<Target> {
  const proc = spawn(process.execPath, [...TARGET_NODE_ARGS, join(ROOT, 'bin', 'wabridge.js'), 'serve', '--config', configFile, '--workers', String(workers)], {
    cwd: ROOT,
    env: Object.fromEntries(Object.entries({ ...process.env, LOG_LEVEL: 'warn', PORT: '' }).filter(([k]) => k !== 'NODE_OPTIONS')),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const until = Date.now() + 40_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`wabridge serve --workers ${workers} exited (${proc.exitCode}):\n${stderr}`);
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) {
      proc.kill('SIGKILL');
      throw new Error(`wabridge serve --workers ${workers} not ready within 40 s:\n${stderr}`);
    }
    await sleep(100);
  }
  return {
    info: { url },
    pids: () => [proc.pid!, ...descendants(proc.pid!)],
    async stop() {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** workers1/workers2: `wabridge serve --workers 1|2` as a user starts it (the CLI, SQLite store). */
export type LifecycleTarget = 'sqlite' | 'redis' | 'passthrough' | 'workers1' | 'workers2';

export interface LifecycleRow {
  target: LifecycleTarget;
  messages: number;
  /** Messages whose three statuses all reached the sink, per second from the first send. */
  msgsPerS: number;
  seconds: number;
  /** CPU of the target's process per message (all its threads), ms. */
  cpuMsPerMsg: number;
  /** CPU of every process of the run per message (target, simulator, sink, load generator), ms. */
  allMsPerMsg: number;
  statusesAtSink: number;
  sendErrors: number;
}

export interface LifecycleFigures {
  lifecycle_msgs_per_s: number;
  lifecycle_vs_passthrough: number;
  lifecycle_redis_msgs_per_s: number | null;
  lifecycle_redis_vs_passthrough: number | null;
  lifecycle_cpu_ms_per_msg: number;
  /**
   * Lifecycle messages/s of `wabridge serve --workers 2` ÷ `--workers 1` (SQLite), in the same run;
   * null when not asked for. On a 2-core machine the load generator, simulator and sink share the cores.
   */
  workers_scaling: number | null;
  lifecycle_runs: LifecycleRow[];
}

const TICKS_PER_S = 100;
const STATUS_DELAYS_MS = { sent: 50, delivered: 100, read: 150 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const r2 = (x: number) => Math.round(x * 100) / 100;

async function redisAvailable(url: string): Promise<boolean> {
  const { Redis } = await import('ioredis');
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    await r.ping();
    return true;
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

async function dropPrefix(url: string, prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  r.on('error', () => undefined);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}

async function runOne(target: LifecycleTarget, messages: number, connections: number, sink: Child, load: Child, dir: string, redisUrl: string, log: (l: string) => void): Promise<LifecycleRow> {
  const [targetPort, simPort] = [await freePort(), await freePort()];
  const sinkUrl = sink.info.url;
  const started: Target[] = [];
  const prefix = `wabbench:life:${Date.now()}:`;
  try {
    const sim = await Child.start('sim', SERVE, ['sim', JSON.stringify({ port: simPort, webhookUrl: `http://127.0.0.1:${targetPort}/v1/tenants/demo/webhook`, statusWebhooks: true, statusDelaysMs: STATUS_DELAYS_MS })]);
    started.push({ info: sim.info, pids: () => [sim.pid], stop: () => sim.stop() });
    let child: Target;
    if (target === 'passthrough') {
      const meta = await metaRequest(simPort, '@@MSGID@@');
      const c = await Child.start('passlife', SERVE, ['passlife', JSON.stringify({ port: targetPort, bspUrl: meta.url, headers: meta.headers, bodyTemplate: meta.body, sinkUrl })], { nodeArgs: [...TARGET_NODE_ARGS] });
      child = { info: c.info, pids: () => [c.pid], stop: () => c.stop() };
    } else {
      const configFile = join(dir, `${target}.yaml`);
      writeConfig(configFile, { port: targetPort, bspPort: simPort, sinkUrl, mappings: join(ROOT, 'mappings'), sqlite: join(dir, `${target}-${Date.now()}.db`), deadline: '900ms', concurrency: 1500 });
      if (target === 'redis') writeFileSync(configFile, readFileSync(configFile, 'utf8').replace(/^store:\n {2}sqlite: .*$/m, `store:\n  redis: ${redisUrl}\n  redisPrefix: "${prefix}"`));
      if (target === 'workers1' || target === 'workers2') {
        child = await startCli(configFile, target === 'workers1' ? 1 : 2, `http://127.0.0.1:${targetPort}`);
      } else {
        const c = await Child.start('wabridge', SERVE, ['wabridge', JSON.stringify({ configFile, logFile: join(dir, `${target}.log`) })], { env: { ...process.env, LOG_LEVEL: '', PORT: '' }, nodeArgs: [...TARGET_NODE_ARGS] });
        child = { info: c.info, pids: () => [c.pid], stop: () => c.stop() };
      }
    }
    started.push(child);
    await sink.call('reset');
    const template = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8')) as Record<string, unknown>;
    const spec: LoadSpec = {
      url: child.info.url,
      path: '/v1/tenants/demo/messages',
      connections,
      amount: messages,
      headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('demo:s3cret').toString('base64')}` },
      body: JSON.stringify({ ...template, msgId: `life|[<id>]|${Date.now()}|1` }),
      expect: 'clevertap',
      timeoutS: 10,
    };
    // The target's processes (a cluster's workers too) are summed into the first entry.
    const others = [sim.pid, sink.pid, load.pid];
    const ticks = () => [child.pids().reduce((n, p) => n + cpuTicks(p), 0), ...others.map((p) => cpuTicks(p))];
    const c0 = ticks();
    const t0 = Date.now();
    const sent = (await load.call('run', { spec }, 300_000)).result as LoadResult;
    const want = 3 * (sent.kinds.success ?? 0);
    let statuses = 0;
    const until = Date.now() + 120_000;
    for (;;) {
      const count = await sink.call('count');
      statuses = Number(count.statuses ?? 0);
      if (statuses >= want || Date.now() > until) break;
      await sleep(50);
    }
    const seconds = (Date.now() - t0) / 1000;
    const c1 = ticks();
    const msOf = (i: number) => ((c1[i]! - c0[i]!) / TICKS_PER_S) * 1000;
    const cpuMs = msOf(0);
    const allMs = c0.reduce((n, _p, i) => n + msOf(i), 0);
    const row: LifecycleRow = {
      target,
      messages,
      msgsPerS: Math.round(Math.min(statuses, want) / 3 / seconds),
      seconds: r2(seconds),
      cpuMsPerMsg: r2(cpuMs / messages),
      allMsPerMsg: r2(allMs / messages),
      statusesAtSink: statuses,
      sendErrors: messages - (sent.kinds.success ?? 0),
    };
    log(`lifecycle ${target.padEnd(11)} ${row.msgsPerS} messages/s completed (${messages} messages, ${row.statusesAtSink}/${want} statuses at the sink in ${row.seconds} s), CPU ${row.cpuMsPerMsg} ms/message in the target, ${row.allMsPerMsg} ms in all the run's processes; send errors ${row.sendErrors} ${JSON.stringify(sent.kinds)}`);
    if (statuses < want) log(`lifecycle ${target}: only ${statuses} of ${want} statuses reached the sink within 120 s`);
    return row;
  } finally {
    for (const c of started.reverse()) await c.stop();
    if (target === 'redis') await dropPrefix(redisUrl, prefix).catch(() => undefined);
  }
}

export async function runLifecycleBench(o: { quick?: boolean; messages?: number; only?: LifecycleTarget[]; log?: (l: string) => void } = {}): Promise<LifecycleFigures> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const messages = o.messages ?? (o.quick ? 2000 : 6000);
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  let targets: LifecycleTarget[] = o.only ?? ['passthrough', 'sqlite', 'redis'];
  if (targets.includes('redis') && !(await redisAvailable(redisUrl))) {
    log(`lifecycle: redis skipped, no Redis at ${redisUrl}`);
    targets = targets.filter((t) => t !== 'redis');
  }
  const dir = mkdtempSync(join(tmpdir(), 'wabridge-lifecycle-'));
  const sink = await Child.start('sink', SERVE, ['sink', JSON.stringify({ port: await freePort() })]);
  const load = await Child.start('load', LOAD, []);
  try {
    const rows: LifecycleRow[] = [];
    for (const t of targets) rows.push(await runOne(t, messages, 100, sink, load, dir, redisUrl, log));
    const by = (t: LifecycleTarget) => rows.find((r) => r.target === t);
    const pass = by('passthrough')?.msgsPerS;
    const sqlite = by('sqlite');
    const redis = by('redis');
    return {
      lifecycle_msgs_per_s: sqlite?.msgsPerS ?? 0,
      lifecycle_vs_passthrough: sqlite && pass ? r2(sqlite.msgsPerS / pass) : 0,
      lifecycle_redis_msgs_per_s: redis?.msgsPerS ?? null,
      lifecycle_redis_vs_passthrough: redis && pass ? r2(redis.msgsPerS / pass) : null,
      lifecycle_cpu_ms_per_msg: sqlite?.cpuMsPerMsg ?? 0,
      workers_scaling: by('workers1') && by('workers2') ? r2(by('workers2')!.msgsPerS / by('workers1')!.msgsPerS) : null,
      lifecycle_runs: rows,
    };
  } finally {
    await sink.stop();
    await load.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const argv = process.argv.slice(2);
  const at = (f: string) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : undefined);
  try {
    const figures = await runLifecycleBench({
      quick: argv.includes('--quick'),
      ...(at('--messages') ? { messages: Number(at('--messages')) } : {}),
      ...(at('--only') ? { only: at('--only')!.split(',') as LifecycleTarget[] } : {}),
      log: (l) => console.log(l),
    });
    const { lifecycle_runs: _rows, ...headline } = figures;
    console.log(JSON.stringify(headline));
  } finally {
    killAll();
  }
}
