// The service bench: CleverTap's messaging endpoint and the BSP webhook endpoint over real HTTP, with
// every party in its own process on 127.0.0.1 (bench/serve.ts roles, bench/load.ts for autocannon):
//
//   load (autocannon) ──▶ target ──▶ BSP simulator (answers after 0 or 200 ms, posts no statuses)
//
// Targets, each measured in every scenario (connections 100 and 1500 × BSP 0 and 200 ms):
//   wabridge          startHost on a fresh SQLite store, the tenant at concurrency 1500 / deadline 900ms,
//                     logs at info into a file (as production writes them to stdout)
//   passthrough       a bare fastify app forwarding the Meta request body wabridge would send to the
//                     same simulator through wabridge's own HTTP client (engine/host/http-call.ts: undici
//                     dispatch, keep-alive agent, 2048 connections): the floor
//   wabridge-jsonata  wabridge with WAB_JSONATA_FASTPATH=0 (every expression on jsonata's evaluator)
// All three stay up for the whole bench and run back to back within each scenario, so a change in the
// machine's load hits them alike. Each run is one autocannon run whose first seconds (warm-up and the
// connect storm of opening every connection at once) and each connection's first answer are left out.
// An answer counts as an error unless it is HTTP 2xx with the expected body ({"status":"success"}: a
// 2004 or a 429 is an error); socket errors and timeouts count too. rps = good answers per second;
// p50/p99/max in ms; late = answers slower than CleverTap's 1 s; rssMb = peak VmRSS of the target's
// process; cpu% its CPU (100 = one core) and cpu ms/req its CPU time per answer (the figure least
// moved by other load on the machine); for wabridge the event-loop delay and the BSP calls that
// succeeded after the deadline (from its /metrics).
//
// Then the webhook bench: M messages are sent through wabridge, and their sent/delivered/read statuses
// are posted as Meta webhooks (signed with the tenant's appSecret, biz_opaque_callback_data = msgId,
// the BSP ids the simulator gave) to wabridge's webhook endpoint at -c 100; ingested/s = statuses
// acknowledged per second of posting, delivered/s = statuses received by the CleverTap sink per
// second from the first post until the last one arrived.
//
//   node --import tsx bench/service.ts [--quick] [--store-dir /dev/shm] [--keep]
//   node --import tsx bench/service.ts --soak [--soak-seconds 300] [--soak-statuses]
//   node --import tsx bench/service.ts --cpu-prof|--heap-prof [--quick] [--target passthrough]
//   node --import tsx bench/service.ts --only wabridge@1500/200,passthrough@1500/200[,webhooks] [--quick]
// --soak: wabridge alone at -c 500, BSP 200 ms (send path; --soak-statuses adds sent/delivered/read
// webhooks 1/2/3 s after each send); RSS after the warm-up and at the end, and the live heap after a
// full GC at both ends. --cpu-prof: one profile of wabridge at c1500/BSP 200 ms, taken in the wabridge
// process with the inspector after the warm-up (the same as `node --cpu-prof` on that child, minus
// start-up and warm-up); prints the top self-time functions and modules and keeps the .cpuprofile.
// --target profiles the pass-through (or wabridge-jsonata) instead.
// --heap-prof: the same run with allocation sampling that counts the objects the collector freed:
// KB allocated per answer, the top allocating functions and modules; keeps the .heapprofile.
// --only: just those runs (investigation); --node-args '<flags>' starts the targets' processes with
// those Node/V8 flags instead of TARGET_NODE_ARGS ('' for none). --keep keeps the temp folder (config, SQLite, wabridge's
// log). The last line printed is one JSON object of all figures. Exported for bench/index.ts:
// runServiceBench({quick, soak?}), runSoak, runProfile.
//
// File descriptors: at c1500 the load process holds 1500 sockets, wabridge 1500 inbound + up to 1500
// to the simulator, and the simulator up to 1500 per target pool still open. Node raises its soft
// RLIMIT_NOFILE to the hard limit at start, so the hard limit (`ulimit -Hn`) must allow ~5000; the
// bench checks it and warns. The kernel's net.core.somaxconn caps every listen backlog.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { loadMapping } from '../engine/mapping/loader.js';
import { toCanonical } from '../engine/mapping/pipeline.js';
import { planSend } from '../engine/mapping/send.js';
import { checkSettings } from '../engine/mapping/settings.js';
import { ROOT, SETTINGS, freePort, writeConfig } from '../test/support/stack.js';
import type { LoadResult, LoadSpec } from './load.js';
import { byFunction, byModule, cpuSamples, heapSamples, type ProfileEntry } from './profile.js';

export type { ProfileEntry };

const HERE = fileURLToPath(new URL('.', import.meta.url));
export const SERVE = join(HERE, 'serve.ts');
export const LOAD = join(HERE, 'load.ts');

export type Target = 'wabridge' | 'passthrough' | 'wabridge-jsonata';
export const TARGETS: readonly Target[] = ['wabridge', 'passthrough', 'wabridge-jsonata'];
export const CONNECTIONS = [100, 1500] as const;
export const BSP_DELAYS_MS = [0, 200] as const;

export interface RunRow {
  target: Target;
  connections: number;
  bspDelayMs: number;
  durationS: number;
  /** Good answers per second. */
  rps: number;
  p50: number;
  p99: number;
  max: number;
  /** Wrong answers (non-2xx or another body) + socket errors + timeouts. */
  errors: number;
  /** Answers slower than CleverTap's 1 s timeout (counted in p99/max, not in errors). */
  late: number;
  /** Requests CleverTap would not count as a success: an error or an answer after 1 s (each once). The pass-through has no deadline, so this is the figure to compare. */
  failed: number;
  /** Each connection's first answer is not in the figures above (it includes the connect); the slowest one, ms, and how many were errors. */
  firstMax: number;
  firstErrors: number;
  /** Peak VmRSS of the target's process during the run, MB. */
  rssMb: number;
  /** The target's time in garbage-collection pauses per answer, ms, all kinds and scavenges alone (perf_hooks 'gc' entries). */
  gcMsPerReq: number;
  scavengeMsPerReq: number;
  /** The target's event-loop delay during the run, p99 and max, ms (perf_hooks, 10 ms resolution: an idle loop shows ~10). */
  loopP99Ms: number;
  loopMaxMs: number;
  /** wabridge only (its /metrics): BSP calls that succeeded after CleverTap was answered 2004. */
  lateBspSuccess?: number;
  /** CPU used on the whole machine during the run beyond the target, simulator, load generator and this process (other work, kernel networking), % of one core. */
  otherCpuPct: number;
  /** CPU of the target's process, the simulator and the load generator during the run (100 = one core). */
  cpuPct: number;
  /** The target's main thread alone (its event loop, GC pauses included), % of one core: below 100 while the process's cpuPct is near it, the other threads (the collector's helpers, the store's, the thread pool) hold the rest. */
  loopCpuPct: number;
  /** The whole machine's busy CPU, % of one core (the cores × 100 is all of it): near that, every process waits for a core and throughput is the machine's. */
  machineCpuPct: number;
  /** The target's CPU time per answer, ms: unlike req/s, hardly moved by other load on the machine. */
  cpuMsPerReq: number;
  simCpuPct: number;
  loadCpuPct: number;
  answers: number;
  statusCodes: Record<string, number>;
  mismatchSamples: Record<string, number>;
  errorSamples: Record<string, number>;
}

export interface ServiceFigures extends Partial<SoakFigures> {
  mode: 'quick' | 'full';
  /** wabridge at c1500 and c100, BSP answering after 200 ms: the headline. */
  c1500_rps: number;
  c1500_p99_ms: number;
  c1500_errors: number;
  /** Errors or answers after 1 s, wabridge and pass-through (c1500, BSP 200 ms). */
  c1500_failed: number;
  c1500_passthrough_failed: number;
  /** The pass-through's own p99 in the same scenario: the floor c1500_p99_ms cannot go below on this machine. */
  c1500_passthrough_p99_ms: number;
  /** wabridge req/s ÷ pass-through req/s (good answers), c1500, BSP 200 ms. */
  c1500_vs_passthrough: number;
  c1500_jsonata_vs_passthrough: number;
  /** CPU wabridge spends per answer at c1500 (BSP 200 ms), ms. */
  c1500_cpu_ms_per_answer: number;
  /**
   * The CPU per answer one wabridge process could spend at c1500 (BSP 200 ms) and still reach 0.9 of the
   * pass-through on this machine: the cores the load generator and the simulator leave at that rate,
   * and at most one core (one event loop). Above c1500_cpu_ms_per_answer: the target is in reach.
   */
  c1500_cpu_budget_ms: number;
  c100_rps: number;
  c100_p99_ms: number;
  c100_errors: number;
  c100_failed: number;
  c100_passthrough_failed: number;
  c100_vs_passthrough: number;
  c100_jsonata_vs_passthrough: number;
  /** Peak RSS of the wabridge process over every run, MB. */
  wabridge_peak_rss_mb: number;
  webhook_statuses: number;
  webhook_ingested_per_s: number;
  webhook_delivered_per_s: number;
  webhook_errors: number;
  /** Statuses posted but not (yet) at the sink when the bench stopped waiting. */
  webhook_undelivered: number;
  webhook_rss_mb: number;
  runs: RunRow[];
  /** The most CPU other processes (and kernel networking) took during any run, % of one core: above ~50 the figures say more about the machine than about wabridge. */
  max_other_cpu_pct: number;
  ulimit_nofile: number;
  wall_s: number;
  // With `soak`: the soak_* figures of SoakFigures.
}

export interface SoakFigures {
  soak_seconds: number;
  soak_connections: number;
  soak_statuses: boolean;
  soak_rps: number;
  soak_p99_ms: number;
  soak_errors: number;
  soak_rss_start_mb: number;
  soak_rss_end_mb: number;
  soak_rss_peak_mb: number;
  soak_rss_growth_pct: number;
  /** RSS (MB) at each tenth of the run. */
  soak_rss_series_mb: number[];
  /** RSS growth over the second half of the run (series[4] → series[9]), %: the warm-up's heap sizing is over by then. */
  soak_rss_growth_2nd_half_pct: number;
  /** V8 heap in use right after a full GC, at the start (load running) and after the run (idle), MB. */
  soak_heap_start_mb: number;
  soak_heap_end_mb: number;
  /** With statuses: status callbacks the sink received vs 3 per accepted send. */
  soak_callbacks_expected?: number;
  soak_callbacks_delivered?: number;
}

export interface ServiceOptions {
  quick: boolean;
  /** Seconds of soak (wabridge at c500, BSP 200 ms) after the bench; absent = no soak. */
  soak?: number;
  soakStatuses?: boolean;
  /** SQLite folder (e.g. /dev/shm); default the temp folder. */
  storeDir?: string;
  /** Keep the temp folder (config, SQLite file, wabridge log). */
  keep?: boolean;
  /** Progress lines; default stderr. */
  log?: (line: string) => void;
}

// ---------------------------------------------------------------------------------------------
// child processes

/** Every child started here, SIGKILLed on exit whatever happens. */
const live = new Set<ChildProcess>();
/** Temp folders to remove if the bench is cut short (signal, time limit). */
const temps = new Set<string>();
export function killAll(): void {
  for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  live.clear();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
  temps.clear();
}
process.on('exit', killAll);

type Info = { role?: string; url: string; port: number; pid: number };

export class Child {
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  private exitInfo: string | undefined;
  readonly exited: Promise<void>;

  private stopping = false;

  private constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    public info: Info,
    stderrTail: () => string,
  ) {
    this.exited = new Promise((res) =>
      proc.once('exit', (code, signal) => {
        live.delete(proc);
        this.exitInfo = `${code ?? signal}`;
        if (!this.stopping && code !== null && code !== 0) process.stderr.write(`bench/service: ${name} exited (${this.exitInfo}) unasked:\n${stderrTail()}\n`);
        for (const w of this.waiting.values()) w.reject(new Error(`${name} exited (${this.exitInfo})`));
        this.waiting.clear();
        res();
      }),
    );
    proc.on('message', (raw) => {
      const m = raw as { id: number } & Record<string, unknown>;
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (typeof m.error === 'string') w.reject(new Error(`${name}: ${m.error}`));
      else w.resolve(m);
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  static async start(name: string, script: string, args: string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number; nodeArgs?: string[] } = {}): Promise<Child> {
    const proc = spawn(process.execPath, [...(o.nodeArgs ?? []), '--import', 'tsx', script, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: o.env ?? process.env,
    });
    live.add(proc);
    proc.on('error', (e) => process.stderr.write(`bench/service: ${name}: ${e.message}\n`));
    let stderr = '';
    proc.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
      if (stderr.length > 20_000) stderr = stderr.slice(-10_000);
    });
    const info = await new Promise<Info>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`${name} did not start within ${(o.timeoutMs ?? 40_000) / 1000} s:\n${stderr}`));
      }, o.timeoutMs ?? 40_000);
      const onData = (c: Buffer) => {
        out += c.toString('utf8');
        const nl = out.indexOf('\n');
        if (nl < 0) return;
        clearTimeout(timer);
        proc.stdout!.off('data', onData);
        proc.stdout!.resume();
        try {
          resolve(JSON.parse(out.slice(0, nl)) as Info);
        } catch {
          reject(new Error(`${name}: not a JSON ready line: ${out.slice(0, nl)}`));
        }
      };
      proc.stdout!.on('data', onData);
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code ?? signal}) before it was ready:\n${stderr}`));
      });
    });
    // Whatever else it prints is drained and dropped.
    proc.stdout!.on('data', () => undefined);
    return new Child(name, proc, info, () => stderr.slice(-4000));
  }

  call(cmd: string, payload: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    if (this.exitInfo !== undefined) return Promise.reject(new Error(`${this.name} has exited (${this.exitInfo})`));
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name}: no answer to '${cmd}' within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.proc.send({ id, cmd, ...payload });
    });
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.exitInfo !== undefined) return;
    this.stopping = true;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------------------------
// /proc sampling (Linux; elsewhere rssMb and cpu% are 0)

const TICKS_PER_S = 100;

function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** CPU time of a process, or of one of its threads (`tid`; the main thread's is the pid), in ticks. */
export function cpuTicks(pid: number, tid?: number): number {
  try {
    // Fields after the ")" of the command name: utime and stime are the 12th and 13th.
    const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** Busy and total jiffies of the whole machine (all CPUs). */
export function machineTicks(): { busy: number; total: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

function hardNofile(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const v = line?.trim().split(/\s+/)[4];
    return v === 'unlimited' ? Infinity : Number(v);
  } catch {
    return NaN;
  }
}

/** Peak RSS of `pid`, CPU % of each pid in `cpuPids` and of `pid`'s main thread (its event loop) between start and stop. */
function sampler(pid: number, cpuPids: number[], everyMs = 200) {
  let peak = rssKb(pid);
  const series: number[] = [];
  let t0 = performance.now();
  let c0 = cpuPids.map((p) => cpuTicks(p));
  let l0 = cpuTicks(pid, pid);
  let m0 = machineTicks();
  const timer = setInterval(() => {
    const r = rssKb(pid);
    series.push(r);
    if (r > peak) peak = r;
  }, everyMs);
  return {
    series,
    /** Forget the peak and the series so far (the warm-up's). */
    reset() {
      peak = rssKb(pid);
      series.length = 0;
      t0 = performance.now();
      c0 = cpuPids.map((p) => cpuTicks(p));
      l0 = cpuTicks(pid, pid);
      m0 = machineTicks();
    },
    stop() {
      clearInterval(timer);
      const r = rssKb(pid);
      if (r > peak) peak = r;
      const s = (performance.now() - t0) / 1000;
      const m = machineTicks();
      return {
        peakMb: mb(peak),
        cpuPct: cpuPids.map((p, i) => Math.round(((cpuTicks(p) - c0[i]!) / TICKS_PER_S / s) * 1000) / 10),
        loopPct: Math.round(((cpuTicks(pid, pid) - l0) / TICKS_PER_S / s) * 1000) / 10,
        /** The whole machine, % of one core. */
        machinePct: Math.round(((m.busy - m0.busy) / TICKS_PER_S / s) * 100),
      };
    },
  };
}

const mb = (kb: number) => Math.round(kb / 102.4) / 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const r2 = (x: number) => Math.round(x * 100) / 100;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

// ---------------------------------------------------------------------------------------------
// the pieces

const CLEVERTAP_PATH = '/v1/tenants/demo/messages';
const AUTH = { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('demo:s3cret').toString('base64')}` };

/** CleverTap's template sample with a fresh msgId per request (autocannon replaces [<id>]). */
function clevertapBody(): string {
  const template = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8')) as Record<string, unknown>;
  return JSON.stringify({ ...template, msgId: `bench|[<id>]|${Date.now()}|1` });
}

/** The request wabridge sends to the BSP for that sample: what the pass-through forwards. */
export async function metaRequest(bspPort: number, msgId?: string): Promise<{ url: string; headers: Record<string, string>; body: string }> {
  const loaded = loadMapping(join(ROOT, 'mappings', 'meta-cloud'));
  if (!loaded.ok) throw new Error('meta-cloud mapping does not load');
  const settings = checkSettings(loaded.mapping.settings, { ...SETTINGS, baseUrl: `http://127.0.0.1:${bspPort}` }, 'bench');
  const body = clevertapBody().replace('[<id>]', 'passthrough');
  const canonical = toCanonical(msgId === undefined ? body : JSON.stringify({ ...(JSON.parse(body) as object), msgId }));
  if (!canonical.ok) throw new Error('the sample does not normalize');
  const plan = await planSend(loaded.mapping, canonical.message, settings);
  if (plan.kind !== 'request') throw new Error('the sample does not map to a request');
  return { url: plan.request.url, headers: plan.request.headers, body: plan.request.body ?? '' };
}

interface Stack {
  dir: string;
  sink: Child;
  sim: Child;
  load: Child;
  wabridgePort: number;
  targets: Map<Target, Child>;
  meta: { url: string; headers: Record<string, string>; body: string };
  close(): Promise<void>;
}

/**
 * The Node flags every target's process starts with: what docs/deploy.md tells production to run
 * wabridge with (a 64 MB young generation: at 1500 requests in flight their objects outlive the
 * default 16 MB one, are copied and promoted, and the collector pays for it). The pass-through gets
 * the same, so the two differ only by wabridge's work. --node-args replaces them.
 */
export const TARGET_NODE_ARGS: readonly string[] = ['--max-semi-space-size=64'];

async function startStack(o: { targets: readonly Target[]; statuses: boolean; storeDir?: string; keep?: boolean; log: (l: string) => void; targetNodeArgs?: readonly string[] }): Promise<Stack> {
  const nodeArgs = [...(o.targetNodeArgs ?? TARGET_NODE_ARGS)];
  const dir = mkdtempSync(join(tmpdir(), 'wabridge-bench-'));
  const storeDir = o.storeDir ? mkdtempSync(join(o.storeDir, 'wabridge-bench-')) : dir;
  if (!o.keep) for (const d of [dir, storeDir]) temps.add(d);
  const started: Child[] = [];
  const close = async () => {
    await Promise.all(started.map((c) => c.stop()));
    if (!o.keep) {
      temps.delete(dir);
      temps.delete(storeDir);
      rmSync(dir, { recursive: true, force: true });
      if (storeDir !== dir) rmSync(storeDir, { recursive: true, force: true });
    } else o.log(`bench/service: kept ${dir}${storeDir !== dir ? ` and ${storeDir}` : ''}`);
  };
  try {
    // Ports chosen up front, so every process starts at once: [wabridge, jsonata, simulator, sink].
    const ports: number[] = [];
    while (ports.length < 4) {
      const p = await freePort();
      if (!ports.includes(p)) ports.push(p);
    }
    const [wabridgePort, jsonataPort, simPort, sinkPort] = ports as [number, number, number, number];
    const sinkUrl = `http://127.0.0.1:${sinkPort}`;
    const simEnv = { ...process.env };
    // The simulator runs mapping expressions too; it is the same BSP for every target.
    delete simEnv.WAB_JSONATA_FASTPATH;
    const meta = await metaRequest(simPort);
    const targets = new Map<Target, Child>();
    const startTarget = async (t: Target): Promise<Child> => {
      if (t === 'passthrough') return Child.start(t, SERVE, ['pass', JSON.stringify({ bspUrl: meta.url, headers: meta.headers })], { nodeArgs });
      const name = t === 'wabridge' ? 'wabridge' : 'jsonata';
      const configFile = join(dir, `${name}.yaml`);
      // The first wabridge has the port the simulator posts its webhooks to.
      writeConfig(configFile, { port: t === 'wabridge' ? wabridgePort : jsonataPort, bspPort: simPort, sinkUrl, mappings: join(ROOT, 'mappings'), sqlite: join(storeDir, `${name}.db`), deadline: '900ms', concurrency: 1500 });
      const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: '', PORT: '' };
      if (t === 'wabridge-jsonata') env.WAB_JSONATA_FASTPATH = '0';
      else delete env.WAB_JSONATA_FASTPATH;
      return Child.start(t, SERVE, ['wabridge', JSON.stringify({ configFile, logFile: join(dir, `${name}.log`) })], { env, nodeArgs });
    };
    const track = async <T extends Child>(p: Promise<T>): Promise<T> => {
      const c = await p;
      started.push(c);
      return c;
    };
    const [sink, sim, load] = await Promise.all([
      track(Child.start('sink', SERVE, ['sink', JSON.stringify({ port: sinkPort })])),
      track(Child.start('sim', SERVE, ['sim', JSON.stringify({ port: simPort, webhookUrl: `http://127.0.0.1:${wabridgePort}/v1/tenants/demo/webhook`, statusWebhooks: o.statuses, statusDelaysMs: { sent: 1000, delivered: 2000, read: 3000 } })], { env: simEnv })),
      track(Child.start('load', LOAD, [])),
      ...o.targets.map(async (t) => targets.set(t, await track(startTarget(t)))),
    ]);
    return { dir, sink, sim, load, wabridgePort, targets, meta, close };
  } catch (e) {
    await close();
    throw e;
  }
}

function specFor(stack: Stack, target: Target, connections: number, durationS: number): LoadSpec {
  const child = stack.targets.get(target)!;
  return target === 'passthrough'
    ? { url: child.info.url, path: '/pass', connections, duration: durationS, headers: { 'content-type': 'application/json' }, body: stack.meta.body, expect: 'meta' }
    : { url: child.info.url, path: CLEVERTAP_PATH, connections, duration: durationS, headers: AUTH, body: clevertapBody(), expect: 'clevertap' };
}

/** The few unlabelled (or summed) samples of wabridge's /metrics the bench reports. */
async function scrape(url: string): Promise<Record<string, number>> {
  const want = ['wabridge_bsp_late_success_total'];
  try {
    const res = await request(`${url}/metrics`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
    const text = await res.body.text();
    const out: Record<string, number> = {};
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z0-9_:]+)(?:\{[^}]*\})? ([0-9.eE+-]+|NaN)$/.exec(line);
      if (m && want.includes(m[1]!)) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
    }
    return out;
  } catch {
    return {};
  }
}

async function load(stack: Stack, spec: LoadSpec, timeoutMs: number): Promise<LoadResult> {
  const r = await stack.load.call('run', { spec }, timeoutMs);
  return r.result as LoadResult;
}

/**
 * One autocannon run of warmS + runS seconds on the same connections; only the last runS seconds count
 * (the first ones include opening every connection at once). `atWarm` runs when the warm-up ends.
 */
async function measure(stack: Stack, target: Target, connections: number, bspDelayMs: number, warmS: number, runS: number, o: { atWarm?: () => void | Promise<void>; sampleMs?: number } = {}): Promise<RunRow & { rssSeries: number[]; okTotal: number }> {
  const child = stack.targets.get(target)!;
  const s = sampler(child.pid, [child.pid, stack.sim.pid, stack.load.pid, process.pid], o.sampleMs);
  const wabridge = target !== 'passthrough';
  const before = wabridge ? await scrape(child.info.url) : {};
  const warm = setTimeout(() => {
    s.reset();
    // Starts the event-loop histogram afresh for the measured window.
    void child.call('loop').catch(() => undefined);
    void o.atWarm?.();
  }, warmS * 1000);
  let r: LoadResult;
  try {
    r = await load(stack, { ...specFor(stack, target, connections, runS), warmupS: warmS }, (warmS + runS + 60) * 1000);
  } finally {
    clearTimeout(warm);
  }
  const { peakMb, cpuPct, loopPct, machinePct } = s.stop();
  const loop = await child.call('loop');
  // Let the connections of this run close (and late BSP calls end) before the next run.
  await sleep(200);
  const after = wabridge ? await scrape(child.info.url) : {};
  const late = 'wabridge_bsp_late_success_total' in after ? (after.wabridge_bsp_late_success_total ?? 0) - (before.wabridge_bsp_late_success_total ?? 0) : undefined;
  return {
    target,
    connections,
    bspDelayMs,
    durationS: r.durationS,
    rps: Math.round(r.ok / r.durationS),
    p50: r.p50,
    p99: r.p99,
    max: r.max,
    errors: r.mismatches + r.socketErrors,
    late: r.late,
    failed: r.failed,
    loopP99Ms: Number(loop.p99Ms),
    loopMaxMs: Number(loop.maxMs),
    gcMsPerReq: r.answers > 0 ? r3(Number(loop.gcMs) / r.answers) : 0,
    scavengeMsPerReq: r.answers > 0 ? r3(Number(loop.gcMinorMs) / r.answers) : 0,
    ...(wabridge ? { lateBspSuccess: late ?? 0 } : {}),
    otherCpuPct: Math.max(0, Math.round((machinePct - cpuPct.reduce((a, b) => a + b, 0)) * 10) / 10),
    firstMax: r.firstMax,
    firstErrors: r.firstErrors,
    rssMb: peakMb,
    cpuPct: cpuPct[0]!,
    loopCpuPct: loopPct,
    machineCpuPct: machinePct,
    cpuMsPerReq: r.answers > 0 ? r3((cpuPct[0]! * 10 * r.durationS) / r.answers) : 0,
    simCpuPct: cpuPct[1]!,
    loadCpuPct: cpuPct[2]!,
    answers: r.answers,
    statusCodes: r.statusCodes,
    mismatchSamples: r.mismatchSamples,
    errorSamples: r.errorSamples,
    rssSeries: [...s.series],
    okTotal: r.okTotal,
  };
}

interface WebhookFigures {
  statuses: number;
  ingestedPerS: number;
  deliveredPerS: number;
  errors: number;
  undelivered: number;
  rssMb: number;
  cpuPct: number;
  ingestS: number;
  deliverS: number;
}

/** Sends `messages` through wabridge, then posts their sent/delivered/read statuses as signed Meta webhooks. */
async function webhookBench(stack: Stack, messages: number, connections: number, waitS: number, log: (l: string) => void): Promise<WebhookFigures> {
  const wab = stack.targets.get('wabridge')!;
  await stack.sim.call('delay', { ms: 0 });
  await stack.sim.call('record', { on: true });
  // These msgIds carry a marker: late sends of an earlier run may still reach the simulator meanwhile.
  // Short: with autocannon's ids the msgId must stay within CleverTap's 60 characters (else 2001).
  const marker = `w${(Date.now() % 46_656).toString(36)}`;
  const pre = specFor(stack, 'wabridge', 50, 0);
  const sent = await load(stack, { ...pre, body: pre.body!.replace('bench|', `bench|${marker}`), duration: undefined, amount: messages }, 60_000);
  const pairs = ((await stack.sim.call('sent')).sent as { id: string; msgId?: string; recipient: string }[]).filter((p) => p.msgId?.startsWith(`bench|${marker}`));
  await stack.sim.call('record', { on: false });
  log(`  webhooks: ${sent.ok}/${messages} messages sent first, ${pairs.length} BSP ids recorded`);
  const file = join(stack.dir, 'webhook-pairs.json');
  writeFileSync(file, JSON.stringify(pairs));
  await stack.sink.call('reset');
  // All 'sent', then all 'delivered', then all 'read', as a BSP reports them (bench/load.ts).
  const s = sampler(wab.pid, [wab.pid]);
  const r = await load(stack, { url: wab.info.url, path: '/v1/tenants/demo/webhook', connections, expect: 'webhook', webhooks: { file, statuses: ['sent', 'delivered', 'read'] } }, 180_000);
  const accepted = r.accepted ?? 0;
  const errors = r.mismatches + r.socketErrors;
  const ingestS = r.durationS;
  const firstAt = r.startedAt;
  const lastPostAt = r.finishedAt;
  const ingest = s.stop();
  let count: Record<string, number> = {};
  const until = Date.now() + waitS * 1000;
  for (;;) {
    count = (await stack.sink.call('count')) as Record<string, number>;
    if ((count.statuses ?? 0) >= accepted || Date.now() > until) break;
    await sleep(100);
  }
  const delivered = count.statuses ?? 0;
  const deliverS = ((count.lastAt || lastPostAt) - firstAt) / 1000;
  if ((count.refused ?? 0) > 0) log(`  webhooks: the sink refused ${count.refused} callbacks`);
  return {
    statuses: accepted,
    ingestedPerS: Math.round(accepted / ingestS),
    deliveredPerS: Math.round(delivered / Math.max(0.001, deliverS)),
    errors,
    undelivered: Math.max(0, accepted - delivered),
    rssMb: ingest.peakMb,
    cpuPct: ingest.cpuPct[0]!,
    ingestS: r2(ingestS),
    deliverS: r2(deliverS),
  };
}

// ---------------------------------------------------------------------------------------------
// guards

/** Runs `fn` with SIGINT/SIGTERM and an overall time limit both ending in every child killed. */
async function guarded<T>(limitMs: number, what: string, fn: () => Promise<T>): Promise<T> {
  const onSignal = (sig: NodeJS.Signals) => {
    killAll();
    process.stderr.write(`bench/service: ${sig}, children killed\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_res, rej) => {
    timer = setTimeout(() => {
      killAll();
      rej(new Error(`bench/service: ${what} not finished within ${limitMs / 1000} s; children killed`));
    }, limitMs);
  });
  try {
    return await Promise.race([fn(), limit]);
  } finally {
    clearTimeout(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    killAll();
  }
}

function checkFds(connections: number, log: (l: string) => void): number {
  const limit = hardNofile();
  // The simulator may hold a pool of `connections` per target still open, plus wabridge's own.
  const need = 3 * connections + 512;
  if (limit < need) log(`bench/service: WARNING the open-file limit is ${limit}; c${connections} needs ~${need} descriptors per process (raise it: ulimit -Hn / LimitNOFILE)`);
  return limit;
}

// ---------------------------------------------------------------------------------------------
// the bench

/**
 * Warm-up seconds (not measured) and measured seconds per run. 1500 connections opened at once
 * overflow a listener's accept queue (Node's default backlog is 511): the kernel drops the excess and
 * the clients retry after 1 s, 3 s, ..., so the first seconds of a c1500 run are its connect storm.
 */
function timing(quick: boolean, connections: number): { warmS: number; runS: number } {
  return quick ? { warmS: connections >= 1000 ? 2.5 : 1, runS: 3 } : { warmS: connections >= 1000 ? 5 : 3, runS: 12 };
}

async function sendRuns(stack: Stack, quick: boolean, log: (l: string) => void, only?: string[]): Promise<RunRow[]> {
  const runs: RunRow[] = [];
  for (const connections of CONNECTIONS) {
    for (const bspDelayMs of BSP_DELAYS_MS) {
      await stack.sim.call('delay', { ms: bspDelayMs });
      for (const target of TARGETS) {
        if (only && !only.includes(`${target}@${connections}/${bspDelayMs}`)) continue;
        const { warmS, runS } = timing(quick, connections);
        const { rssSeries: _series, okTotal: _ok, ...row } = await measure(stack, target, connections, bspDelayMs, warmS, runS);
        runs.push(row);
        log(`  ${formatRow(row)}`);
      }
    }
  }
  return runs;
}

/** Investigation: only the runs named target@connections/bspDelayMs (e.g. wabridge@1500/200), and the webhook bench if 'webhooks' is named. */
export async function runSelected(opts: { only: string[]; quick: boolean; storeDir?: string; keep?: boolean; nodeArgs?: string[]; log?: (l: string) => void }): Promise<RunRow[]> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}
`));
  const webhooks = opts.only.includes('webhooks');
  const targets = TARGETS.filter((t) => opts.only.some((o) => o.startsWith(`${t}@`)) || (webhooks && t === 'wabridge'));
  return guarded(300_000, 'the selected runs', async () => {
    const stack = await startStack({ targets, statuses: false, storeDir: opts.storeDir, keep: opts.keep, log, targetNodeArgs: opts.nodeArgs });
    try {
      const runs = await sendRuns(stack, opts.quick, log, opts.only);
      if (webhooks) {
        const wh = await webhookBench(stack, opts.quick ? 1000 : 5000, 100, opts.quick ? 20 : 60, log);
        log(`  webhooks: ${JSON.stringify(wh)}`);
      }
      return runs;
    } finally {
      await stack.close();
    }
  });
}

export async function runServiceBench(opts: ServiceOptions): Promise<ServiceFigures> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const t0 = performance.now();
  const messages = opts.quick ? 1000 : 5000;
  const limitMs = (opts.quick ? 150 : 600) * 1000;
  const nofile = checkFds(Math.max(...CONNECTIONS), log);
  const figures = await guarded(limitMs, 'the service bench', async () => {
    const stack = await startStack({ targets: TARGETS, statuses: false, storeDir: opts.storeDir, keep: opts.keep, log });
    try {
      const [a, b] = CONNECTIONS.map((c) => timing(opts.quick, c));
      log(`bench/service: ${opts.quick ? 'quick' : 'full'}: per run ${a!.warmS}/${b!.warmS} s warm-up (c${CONNECTIONS[0]}/c${CONNECTIONS[1]}) + ${a!.runS} s measured; children up after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const runs = await sendRuns(stack, opts.quick, log);
      const wh = await webhookBench(stack, messages, 100, opts.quick ? 20 : 60, log);
      log(`  webhooks: ${wh.statuses} statuses, ingested ${wh.ingestedPerS}/s (${wh.ingestS} s), delivered ${wh.deliveredPerS}/s (${wh.deliverS} s), errors ${wh.errors}, undelivered ${wh.undelivered}, wabridge rss ${wh.rssMb} MB, cpu ${wh.cpuPct}%`);
      return { runs, wh };
    } finally {
      await stack.close();
    }
  });
  const pick = (t: Target, c: number, d = 200) => figures.runs.find((r) => r.target === t && r.connections === c && r.bspDelayMs === d)!;
  const ratio = (a: number, b: number) => (b > 0 ? r2(a / b) : 0);
  const head = (c: number) => {
    const w = pick('wabridge', c);
    const p = pick('passthrough', c);
    const j = pick('wabridge-jsonata', c);
    return { rps: w.rps, p99: w.p99, errors: w.errors, failed: w.failed, passFailed: p.failed, passP99: p.p99, vs: ratio(w.rps, p.rps), jvs: ratio(j.rps, p.rps) };
  };
  const c100 = head(100);
  const c1500 = head(1500);
  const budget = cpuBudget(pick('wabridge', 1500), pick('passthrough', 1500));
  log(
    `  c1500 CPU budget: 0.9 of the pass-through is ${budget.rate} answers/s; with ${budget.cores} cores and the load generator and simulator at ${budget.othersMs} ms per answer, ` +
      `one wabridge process may spend ${budget.ms} ms per answer; it spends ${pick('wabridge', 1500).cpuMsPerReq} ms`,
  );
  const out: ServiceFigures = {
    mode: opts.quick ? 'quick' : 'full',
    c1500_rps: c1500.rps,
    c1500_p99_ms: c1500.p99,
    c1500_errors: c1500.errors,
    c1500_failed: c1500.failed,
    c1500_passthrough_failed: c1500.passFailed,
    c1500_passthrough_p99_ms: c1500.passP99,
    c1500_vs_passthrough: c1500.vs,
    c1500_jsonata_vs_passthrough: c1500.jvs,
    c1500_cpu_ms_per_answer: pick('wabridge', 1500).cpuMsPerReq,
    c1500_cpu_budget_ms: budget.ms,
    c100_rps: c100.rps,
    c100_p99_ms: c100.p99,
    c100_errors: c100.errors,
    c100_failed: c100.failed,
    c100_passthrough_failed: c100.passFailed,
    c100_vs_passthrough: c100.vs,
    c100_jsonata_vs_passthrough: c100.jvs,
    wabridge_peak_rss_mb: Math.max(...figures.runs.filter((r) => r.target === 'wabridge').map((r) => r.rssMb)),
    webhook_statuses: figures.wh.statuses,
    webhook_ingested_per_s: figures.wh.ingestedPerS,
    webhook_delivered_per_s: figures.wh.deliveredPerS,
    webhook_errors: figures.wh.errors,
    webhook_undelivered: figures.wh.undelivered,
    webhook_rss_mb: figures.wh.rssMb,
    runs: figures.runs,
    max_other_cpu_pct: Math.max(...figures.runs.map((r) => r.otherCpuPct)),
    ulimit_nofile: nofile,
    wall_s: 0,
  };
  if (opts.soak && opts.soak > 0) Object.assign(out, await runSoak({ seconds: opts.soak, statuses: opts.soakStatuses ?? false, storeDir: opts.storeDir, keep: opts.keep, log }));
  out.wall_s = r2((performance.now() - t0) / 1000);
  return out;
}

/**
 * What the c1500 throughput target leaves one wabridge process on this machine: at 0.9 of the
 * pass-through's rate, the cores not taken by the load generator and the simulator (their CPU per
 * answer, as measured beside wabridge), per answer, and never more than one core's worth.
 */
function cpuBudget(w: RunRow, pass: RunRow): { rate: number; cores: number; othersMs: number; ms: number } {
  const rate = Math.round(0.9 * pass.rps);
  const cores = cpus().length;
  const others = (w.simCpuPct + w.loadCpuPct) / 100 / Math.max(1, w.rps);
  const perAnswer = Math.min(cores / Math.max(1, rate) - others, 1 / Math.max(1, rate));
  return { rate, cores, othersMs: r3(others * 1000), ms: r3(Math.max(0, perAnswer) * 1000) };
}

export async function runSoak(o: { seconds: number; statuses?: boolean; connections?: number; storeDir?: string; keep?: boolean; log?: (l: string) => void }): Promise<SoakFigures> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const connections = o.connections ?? 500;
  const statuses = o.statuses ?? false;
  // The heap takes a while to reach its working size: the starting RSS is taken after this.
  const warmS = Math.min(30, Math.max(5, Math.round(o.seconds / 10)));
  checkFds(connections, log);
  return guarded((o.seconds + warmS + 120) * 1000, 'the soak', async () => {
    // --expose-gc: the live heap is measured after a full collection at the start and at the end.
    const stack = await startStack({ targets: ['wabridge'], statuses, storeDir: o.storeDir, keep: o.keep, log, targetNodeArgs: [...TARGET_NODE_ARGS, '--expose-gc'] });
    try {
      const wab = stack.targets.get('wabridge')!;
      await stack.sim.call('delay', { ms: 200 });
      const heap = async () => Number((await wab.call('mem', { gc: true })).heapUsed) / 1024;
      log(`bench/service: soak: wabridge at c${connections}, BSP 200 ms, statuses ${statuses ? 'flowing (1/2/3 s)' : 'off'}: ${warmS} s warm-up, then ${o.seconds} s`);
      let start = 0;
      let heapStart = 0;
      const r = await measure(stack, 'wabridge', connections, 200, warmS, o.seconds, {
        sampleMs: 1000,
        atWarm: async () => {
          start = rssKb(wab.pid);
          heapStart = await heap();
        },
      });
      const end = r.rssSeries[r.rssSeries.length - 1] ?? rssKb(wab.pid);
      const heapEnd = await heap();
      const peakMb = r.rssMb;
      const series = Array.from({ length: 10 }, (_, i) => mb(r.rssSeries[Math.min(r.rssSeries.length - 1, Math.round(((i + 1) * r.rssSeries.length) / 10) - 1)] ?? 0));
      const fig: SoakFigures = {
        soak_seconds: o.seconds,
        soak_connections: connections,
        soak_statuses: statuses,
        soak_rps: r.rps,
        soak_p99_ms: r.p99,
        soak_errors: r.errors,
        soak_rss_start_mb: mb(start),
        soak_rss_end_mb: mb(end),
        soak_rss_peak_mb: peakMb,
        soak_rss_growth_pct: r2(((end - start) / start) * 100),
        soak_rss_series_mb: series,
        soak_rss_growth_2nd_half_pct: r2(((series[9]! - series[4]!) / series[4]!) * 100),
        soak_heap_start_mb: mb(heapStart),
        soak_heap_end_mb: mb(heapEnd),
      };
      if (statuses) {
        // Statuses of the last sends are still on their way: wait for them (bounded), then count.
        await sleep(4000);
        const until = Date.now() + 30_000;
        let count: Record<string, number> = {};
        for (;;) {
          count = (await stack.sink.call('count')) as Record<string, number>;
          if ((count.statuses ?? 0) >= r.okTotal * 3 || Date.now() > until) break;
          await sleep(500);
        }
        // Every accepted send of the run, warm-up included, gets sent, delivered and read.
        fig.soak_callbacks_expected = r.okTotal * 3;
        fig.soak_callbacks_delivered = count.statuses ?? 0;
      }
      log(`  soak: ${fig.soak_rps} req/s, p99 ${fig.soak_p99_ms} ms, errors ${fig.soak_errors}; RSS ${fig.soak_rss_start_mb} → ${fig.soak_rss_end_mb} MB (${fig.soak_rss_growth_pct}%), peak ${fig.soak_rss_peak_mb} MB; series ${series.join(' ')}; heap after GC ${fig.soak_heap_start_mb} → ${fig.soak_heap_end_mb} MB`);
      return fig;
    } finally {
      await stack.close();
    }
  });
}

/** One CPU profile of wabridge at c1500, BSP 200 ms (warm-up excluded); the top self-time functions. */
export async function runProfile(o: { seconds: number; connections?: number; kind?: 'cpu' | 'heap'; target?: Target; log?: (l: string) => void; keep?: boolean }): Promise<{ file: string; row: RunRow; top: ProfileEntry[]; modules: ProfileEntry[]; kbPerAnswer?: number }> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const connections = o.connections ?? 1500;
  const kind = o.kind ?? 'cpu';
  const target = o.target ?? 'wabridge';
  checkFds(connections, log);
  return guarded((o.seconds + 120) * 1000, 'the profile', async () => {
    const stack = await startStack({ targets: [target], statuses: false, keep: o.keep, log });
    try {
      const child = stack.targets.get(target)!;
      await stack.sim.call('delay', { ms: 200 });
      const file = join(mkdtempSync(join(tmpdir(), 'wabridge-prof-')), `${target}-c${connections}-bsp200.${kind === 'heap' ? 'heapprofile' : 'cpuprofile'}`);
      const { rssSeries: _series, okTotal: _ok, ...row } = await measure(stack, target, connections, 200, 5, o.seconds, { atWarm: () => child.call('profile-start', { kind }).then(() => undefined) });
      await child.call('profile-stop', { file, kind }, 60_000);
      // CPU samples weigh µs (shown as ms), allocation samples bytes (shown as KB)
      const w = kind === 'cpu' ? cpuSamples(file) : heapSamples(file);
      const unit = kind === 'cpu' ? 1000 : 1024;
      const out = { file, row, top: byFunction(w, unit, 15), modules: byModule(w, unit, 15) };
      // The sampling window is the measured one (from the warm-up's end), so its answers are row.answers.
      return kind === 'cpu' ? out : { ...out, kbPerAnswer: r2(w.total / 1024 / Math.max(1, row.answers)) };
    } finally {
      await stack.close();
    }
  });
}


// ---------------------------------------------------------------------------------------------
// printing

const pad = (s: string | number, n: number) => String(s).padStart(n);

export function formatRow(r: RunRow): string {
  return `${r.target.padEnd(17)} c${pad(r.connections, 4)} bsp ${pad(r.bspDelayMs, 3)} ms: ${pad(r.rps, 6)} req/s  p50 ${pad(r.p50, 6)}  p99 ${pad(r.p99, 6)}  max ${pad(r.max, 6)} ms  errors ${pad(r.errors, 5)}  late ${pad(r.late, 5)}  failed ${pad(r.failed, 5)}  1st ${pad(r.firstMax, 6)} ms/${r.firstErrors}  rss ${pad(r.rssMb, 6)} MB  cpu ${pad(r.cpuPct, 3)}% (loop ${pad(r.loopCpuPct, 3)}%) = ${r.cpuMsPerReq} ms/req (sim ${pad(r.simCpuPct, 3)}%, load ${pad(r.loadCpuPct, 3)}%, other ${pad(r.otherCpuPct, 3)}%; machine ${r.machineCpuPct}/${cpus().length * 100}%)  gc ${r.gcMsPerReq} ms/req (scavenge ${r.scavengeMsPerReq})  loop p99/max ${r.loopP99Ms}/${r.loopMaxMs} ms${r.lateBspSuccess !== undefined ? `  late BSP ${r.lateBspSuccess}` : ''}`;
}

export function formatTable(f: ServiceFigures): string {
  const lines = [
    '| target | c | BSP ms | req/s | p50 ms | p99 ms | max ms | errors | >1 s | error or >1 s | 1st answer max ms / errors | RSS MB | cpu % | cpu ms/req | sim cpu % | load cpu % | other cpu % | loop delay p99 / max ms | late BSP |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...f.runs.map(
      (r) =>
        `| ${r.target} | ${r.connections} | ${r.bspDelayMs} | ${r.rps} | ${r.p50} | ${r.p99} | ${r.max} | ${r.errors} | ${r.late} | ${r.failed} | ${r.firstMax} / ${r.firstErrors} | ${r.rssMb} | ${r.cpuPct} | ${r.cpuMsPerReq} | ${r.simCpuPct} | ${r.loadCpuPct} | ${r.otherCpuPct} | ${r.loopP99Ms} / ${r.loopMaxMs} | ${r.lateBspSuccess ?? '-'} |`,
    ),
    '',
    ...(f.max_other_cpu_pct > 50 ? [`WARNING: other processes took up to ${f.max_other_cpu_pct}% CPU (of ${cpus().length * 100}%) during the runs: these figures are not representative`] : []),
    `wabridge ÷ pass-through (req/s, BSP 200 ms): c100 ${f.c100_vs_passthrough}, c1500 ${f.c1500_vs_passthrough}; jsonata-only: c100 ${f.c100_jsonata_vs_passthrough}, c1500 ${f.c1500_jsonata_vs_passthrough}`,
    `webhooks: ${f.webhook_statuses} statuses ingested at ${f.webhook_ingested_per_s}/s, delivered to the sink at ${f.webhook_delivered_per_s}/s (errors ${f.webhook_errors}, undelivered ${f.webhook_undelivered}, wabridge RSS ${f.webhook_rss_mb} MB)`,
  ];
  for (const r of f.runs) {
    if (r.errors === 0) continue;
    lines.push(`errors of ${r.target} c${r.connections} bsp ${r.bspDelayMs}: codes ${JSON.stringify(r.statusCodes)} bodies ${JSON.stringify(r.mismatchSamples)} socket ${JSON.stringify(r.errorSamples)}`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// direct run

const direct = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (direct) {
  const argv = process.argv.slice(2);
  const has = (f: string) => argv.includes(f);
  const val = (f: string) => {
    const i = argv.indexOf(f);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const quick = has('--quick');
  const storeDir = val('--store-dir');
  const keep = has('--keep');
  try {
    if (has('--cpu-prof') || has('--heap-prof')) {
      const kind = has('--heap-prof') ? 'heap' : 'cpu';
      const target = (val('--target') ?? 'wabridge') as Target;
      if (!TARGETS.includes(target)) throw new Error(`--target: one of ${TARGETS.join(', ')}`);
      const p = await runProfile({ seconds: quick ? 5 : 12, kind, target, keep });
      const unit = kind === 'heap' ? 'KB allocated' : 'self ms';
      const share = kind === 'heap' ? '% of bytes' : '% of busy';
      console.log(formatRow(p.row));
      if (p.kbPerAnswer !== undefined) console.log(`allocated per answer: ${p.kbPerAnswer} KB`);
      console.log(`profile: ${p.file}\n| ${unit} | ${share} | function | where |\n| ---: | ---: | --- | --- |`);
      for (const e of p.top) console.log(`| ${e.self} | ${e.pct} | ${e.fn} | ${e.where} |`);
      console.log(`\n| ${unit} | ${share} | module |\n| ---: | ---: | --- |`);
      for (const e of p.modules) console.log(`| ${e.self} | ${e.pct} | ${e.fn} |`);
      console.log(JSON.stringify({ profile: p.file, run: p.row, kbPerAnswer: p.kbPerAnswer, top: p.top, modules: p.modules }));
    } else if (val('--only')) {
      const rows = await runSelected({ only: val('--only')!.split(','), quick, storeDir, keep, nodeArgs: val('--node-args')?.split(' ').filter(Boolean) });
      for (const r of rows) console.log(`${formatRow(r)}\n  codes ${JSON.stringify(r.statusCodes)} bodies ${JSON.stringify(r.mismatchSamples)} socket ${JSON.stringify(r.errorSamples)}`);
      console.log(JSON.stringify(rows));
    } else if (has('--soak')) {
      const seconds = Number(val('--soak-seconds') ?? 300);
      const soak = await runSoak({ seconds, statuses: has('--soak-statuses'), storeDir, keep });
      console.log(JSON.stringify(soak));
    } else {
      const f = await runServiceBench({ quick, storeDir, keep });
      console.log(formatTable(f));
      console.log(JSON.stringify({ ...f, runs: f.runs.map(({ statusCodes: _s, mismatchSamples: _m, errorSamples: _e, ...rest }) => rest) }));
    }
  } catch (e) {
    console.error((e as Error).stack ?? String(e));
    process.exitCode = 1;
  }
}
