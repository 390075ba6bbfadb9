// wabridge as a child process (`node bin/wabridge.js serve --config ...`), for tests that must see the
// real process: SIGKILL, SIGTERM, exit codes, stdout. The sink and the simulator stay in the test
// process; everything binds 127.0.0.1.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startBspSimulator, type BspSimulator, type StatusDelays } from '../../engine/standins/bsp-simulator.js';
import { startCleverTapSink, type CleverTapSink } from '../../engine/standins/clevertap-sink.js';
import { DEMO, ROOT, SETTINGS, freePort, writeConfig, type StackOptions } from './stack.js';

export const BIN = join(ROOT, 'bin', 'wabridge.js');
export const ADMIN_TOKEN = 'e2e-admin-token-0123456789';
export const BASIC = 'demo:s3cret';

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when the exit was seen. */
  at: number;
}

export interface WabridgeChild {
  proc: ChildProcess;
  pid: number;
  url: string;
  /** stdout lines of this process, as printed. */
  stdout: string[];
  stderr: string[];
  exited: Promise<ChildExit>;
  /** undefined while running. */
  exit(): ChildExit | undefined;
  kill(signal: NodeJS.Signals): void;
}

/** Every line any child of this test process printed (stdout and stderr), for log audits. */
export const allChildOutput: string[] = [];

const running = new Set<ChildProcess>();

/** SIGKILLs every child still running (teardown safety net; only processes started here). */
export function killAllChildren(): void {
  for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  running.clear();
}

function lines(into: string[], also: string[]) {
  let partial = '';
  return (chunk: Buffer) => {
    const text = partial + chunk.toString('utf8');
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) {
      if (!l) continue;
      into.push(l);
      also.push(l);
    }
  };
}

/** Spawns `wabridge serve` and resolves once it logs "wabridge listening". */
export async function startChild(configFile: string, port: number, timeoutMs = 40_000, workers?: number): Promise<WabridgeChild> {
  const proc = spawn(process.execPath, [BIN, 'serve', '--config', configFile, ...(workers !== undefined ? ['--workers', String(workers)] : [])], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: '', PORT: '' },
  });
  running.add(proc);
  const stdout: string[] = [];
  const stderr: string[] = [];
  proc.stdout!.on('data', lines(stdout, allChildOutput));
  proc.stderr!.on('data', lines(stderr, allChildOutput));
  let exitInfo: ChildExit | undefined;
  const exited = new Promise<ChildExit>((res) =>
    proc.once('exit', (code, signal) => {
      running.delete(proc);
      exitInfo = { code, signal, at: Date.now() };
      res(exitInfo);
    }),
  );
  const until = Date.now() + timeoutMs;
  // Under --workers every worker logs its own line.
  while (stdout.filter((l) => l.includes('"wabridge listening"')).length < (workers ?? 1)) {
    if (exitInfo) throw new Error(`wabridge exited (${exitInfo.code ?? exitInfo.signal}) before listening:\n${stderr.join('\n')}\n${stdout.join('\n')}`);
    if (Date.now() > until) {
      proc.kill('SIGKILL');
      // (its last log lines say where a start that never finished was)
      throw new Error(`wabridge did not start within ${timeoutMs} ms:\n${stderr.join('\n')}\n${stdout.slice(-20).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    proc,
    pid: proc.pid!,
    url: `http://127.0.0.1:${port}`,
    stdout,
    stderr,
    exited,
    exit: () => exitInfo,
    kill: (signal) => {
      if (!exitInfo) proc.kill(signal);
    },
  };
}

/** Runs the CLI to completion (e.g. `dlq list --json`); bounded. */
export function runCli(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const proc = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(proc);
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      rej(new Error(`wabridge ${args.join(' ')} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      running.delete(proc);
      res({ code, stdout, stderr });
    });
  });
}

export interface ChildStackOptions extends StackOptions {
  statusDelaysMs?: Partial<StatusDelays>;
  /** Simulator's first webhook retry delay (doubles, 3 retries). */
  retryDelayMs?: number;
  /** server.drain in wabridge.yaml. */
  drain?: string;
  /** `wabridge serve --workers n`. */
  workers?: number;
}

export interface ChildStack {
  dir: string;
  port: number;
  url: string;
  configFile: string;
  sqlite: string;
  sim: BspSimulator;
  sink: CleverTapSink;
  /** The current child, if started. */
  child?: WabridgeChild;
  start(): Promise<WabridgeChild>;
  close(): Promise<void>;
}

/** Sink and simulator in this process, a wabridge.yaml for a child on a free port; the child is not started. */
export async function childStack(opts: ChildStackOptions = {}): Promise<ChildStack> {
  const dir = mkdtempSync(join(tmpdir(), 'wabridge-child-'));
  const sink = await startCleverTapSink({ port: 0, print: () => undefined });
  const port = await freePort();
  const mappings = opts.mappingsDir ?? join(ROOT, 'mappings');
  const sim = await startBspSimulator({
    mappingDir: join(mappings, opts.provider ?? DEMO.provider),
    settings: opts.settings ?? SETTINGS,
    webhookUrl: `http://127.0.0.1:${port}/v1/tenants/demo/webhook`,
    port: 0,
    statusDelaysMs: opts.statusDelaysMs ?? { sent: 20, delivered: 40, read: 60 },
    ...(opts.retryDelayMs !== undefined ? { retryDelayMs: opts.retryDelayMs } : {}),
  });
  const configFile = join(dir, 'wabridge.yaml');
  const sqlite = join(dir, 'wabridge.db');
  writeConfig(configFile, { ...opts, port, bspPort: sim.port, sinkUrl: sink.url, mappings, sqlite });
  if (opts.drain) writeFileSync(configFile, readFileSync(configFile, 'utf8').replace(/^server:\n/m, `server:\n  drain: ${opts.drain}\n`));
  const stack: ChildStack = {
    dir,
    port,
    url: `http://127.0.0.1:${port}`,
    configFile,
    sqlite,
    sim,
    sink,
    async start() {
      stack.child = await startChild(configFile, port, 40_000, opts.workers);
      return stack.child;
    },
    async close() {
      const c = stack.child;
      if (c && !c.exit()) {
        c.kill('SIGKILL');
        await Promise.race([c.exited, new Promise((r) => setTimeout(r, 5000))]);
      }
      await sim.close();
      await sink.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return stack;
}

/** POSTs a CleverTap payload to the demo tenant; a connection error is returned, not thrown. */
export async function sendTo(url: string, body: string | object): Promise<{ status: number; text: string; body: unknown } | { error: string }> {
  try {
    const res = await request(`${url}/v1/tenants/demo/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(BASIC).toString('base64')}` },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
    const text = await res.body.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* keep the text */
    }
    return { status: res.statusCode, text, body: parsed };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** GET /v1/admin/status of a running child. */
export async function adminStatus(url: string): Promise<{ store: { outboxPending: number; outboxDead: number; pendingLookups: number; unmatched: number; delivered: number } }> {
  const res = await request(`${url}/v1/admin/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  if (res.statusCode !== 200) throw new Error(`admin status: HTTP ${res.statusCode}`);
  return (await res.body.json()) as Awaited<ReturnType<typeof adminStatus>>;
}

/** Runs `fn` over `items` with at most `concurrency` at once. */
export async function pool<T, R>(items: readonly T[], concurrency: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return out;
}
