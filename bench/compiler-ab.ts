// The JSONata compiler of the working tree against the one of a git revision, side by side in one
// process: both builds' engine/mapping/jsonata-compiler.ts and engine/mapping/jsonata-signature.ts are copied into a
// scratch folder and loaded as separate modules (so neither shares V8's feedback with the other), every
// mapping's send request slots and webhook events are compiled by both, checked to give the same
// results on every golden fixture, and timed in interleaved rounds over all fixtures in turn.
//
// Whichever module is loaded second reads a few per cent slower for the same code, so the comparison
// runs twice, in a child process per load order, and reports the geometric mean of the two ratios.
// Service runs cannot resolve a change of a few per cent in the compiler; this can (±1-2 %).
//   node --import tsx bench/compiler-ab.ts [<rev>, default HEAD] [--only <mapping>] [--rounds N]
// Last line: one JSON object, { base, send, webhook, mappings } with work ÷ base per kind (below 1: faster).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Compiled } from '../engine/mapping/expression.js';
import { DEFAULT_LIMITS } from '../engine/mapping/expression.js';
import type { CompileResult } from '../engine/mapping/jsonata-compiler.js';
import { loadMapping, mappingDirs, type Mapping } from '../engine/mapping/loader.js';
import { toCanonical } from '../engine/mapping/pipeline.js';
import { requestSlots, sendBindings } from '../engine/mapping/send.js';
import { webhookInput } from '../engine/mapping/webhook.js';
import { fixtures, webhookRequest } from './mapping.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FILES = ['jsonata-compiler.ts', 'jsonata-signature.ts'];

type Run = (input: unknown, bindings: Record<string, unknown> | undefined, limits: typeof DEFAULT_LIMITS) => unknown;
interface Job {
  mapping: string;
  kind: 'send' | 'webhook';
  input: unknown;
  /** Per build: the slots' compiled functions. */
  runs: [Run[], Run[]];
}

function slotsOf(m: Mapping, kind: 'send' | 'webhook'): Compiled[] {
  if (kind === 'webhook') return m.webhook ? [m.webhook.events] : [];
  return requestSlots(m.send.request);
}

/** Each fixture as the engine's expressions see it (planSend's and mapWebhook's input). */
function inputsOf(dir: string, m: Mapping): { kind: 'send' | 'webhook'; input: unknown }[] {
  const out: { kind: 'send' | 'webhook'; input: unknown }[] = [];
  for (const fx of fixtures(dir, m)) {
    if (fx.kind === 'webhook') {
      out.push({ kind: 'webhook', input: webhookInput(webhookRequest(fx), fx.settings) });
      continue;
    }
    const canonical = toCanonical(fx.text);
    if (canonical.ok && !canonical.message.isValidation) out.push({ kind: 'send', input: { message: canonical.message, settings: fx.settings } });
  }
  return out;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

// as the engine evaluates them: send slots with $reject, webhook events without bindings
const bindingsFor = (kind: 'send' | 'webhook') => (kind === 'send' ? sendBindings : undefined);

function outcome(runs: Run[], input: unknown, kind: 'send' | 'webhook'): unknown {
  try {
    return runs.map((r) => r(input, bindingsFor(kind), DEFAULT_LIMITS));
  } catch (e) {
    return { error: (e as { code?: string }).code ?? String(e) };
  }
}

/** The child: load both builds (`first` before `second`), time them, print work ÷ base per mapping and kind. */
async function child(first: string, second: string, only: string | undefined, rounds: number): Promise<void> {
  const loaded = new Map<string, { compileText(text: string): CompileResult }>();
  for (const dir of [first, second]) loaded.set(dir, (await import(pathToFileURL(join(dir, 'jsonata-compiler.ts')).href)) as { compileText(text: string): CompileResult });
  const base = first.endsWith('base') ? first : second;
  const work = base === first ? second : first;
  const jobs: Job[] = [];
  for (const dir of mappingDirs(join(ROOT, 'mappings'))) {
    if (only !== undefined && !dir.endsWith(only)) continue;
    const r = loadMapping(dir);
    if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
    const m = r.mapping;
    const compiled = (kind: 'send' | 'webhook', build: string): Run[] =>
      slotsOf(m, kind).map((c) => {
        const res = loaded.get(build)!.compileText(c.source ?? c.text);
        // a slot the compiler declines runs on jsonata in both builds: not what is compared here
        return res.ok ? res.run : () => undefined;
      });
    const runs = { send: [compiled('send', base), compiled('send', work)], webhook: [compiled('webhook', base), compiled('webhook', work)] } as const;
    for (const { kind, input } of inputsOf(dir, m)) {
      const pair = runs[kind] as [Run[], Run[]];
      const a = outcome(pair[0], input, kind);
      if (typeof a === 'object' && a !== null && 'error' in a) continue;
      if (!same(a, outcome(pair[1], input, kind))) throw new Error(`${m.name}: the two builds give different results on a ${kind} fixture`);
      jobs.push({ mapping: m.name, kind, input, runs: pair });
    }
  }
  const time = (k: 0 | 1, list: Job[], n: number): number => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) for (const j of list) for (const r of j.runs[k]) r(j.input, bindingsFor(j.kind), DEFAULT_LIMITS);
    return performance.now() - t0;
  };
  // warm-up of both over everything, then rounds alternating which build goes first
  for (let i = 0; i < 200; i++) {
    time(0, jobs, 1);
    time(1, jobs, 1);
  }
  const groups = new Map<string, Job[]>();
  for (const j of jobs) groups.set(`${j.mapping} ${j.kind}`, [...(groups.get(`${j.mapping} ${j.kind}`) ?? []), j]);
  // calls per timing: about 10 ms of the base build for each group
  const reps = new Map<string, number>();
  for (const [key, list] of groups) reps.set(key, Math.max(1, Math.round(10 / Math.max(0.001, time(0, list, 1)))));
  const totals = new Map<string, [number, number]>();
  for (let round = 0; round < rounds; round++) {
    for (const [key, list] of groups) {
      const t = totals.get(key) ?? [0, 0];
      const order: (0 | 1)[] = round % 2 === 0 ? [0, 1] : [1, 0];
      for (const k of order) t[k] += time(k, list, reps.get(key)!) / reps.get(key)!;
      totals.set(key, t);
    }
  }
  // every mapping's fixtures together: the sum of their times
  for (const kind of ['send', 'webhook']) {
    const parts = [...totals].filter(([key]) => key.endsWith(` ${kind}`));
    if (parts.length > 1) totals.set(`* ${kind}`, parts.reduce<[number, number]>((acc, [, [b, w]]) => [acc[0] + b, acc[1] + w], [0, 0]));
  }
  const ratios: Record<string, number> = {};
  for (const [key, [b, w]] of totals) ratios[key] = w / b;
  console.log(JSON.stringify({ order: [first, second].map((d) => (d === base ? 'base' : 'work')), fixtures: jobs.length, ratios }));
}

/** A compiler file as of a revision: under engine/mapping/ since the engine was split into folders, engine/ before. */
function showAt(rev: string, f: string): Buffer {
  try {
    return execFileSync('git', ['show', `${rev}:engine/mapping/${f}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return execFileSync('git', ['show', `${rev}:engine/${f}`], { cwd: ROOT });
  }
}

function parent(): void {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args.splice(i, 2)[1] : undefined;
  };
  const only = flag('--only');
  const rounds = Number(flag('--rounds') ?? 12);
  const rev = args[0] ?? 'HEAD';
  const scratch = join(ROOT, 'engine', 'mapping', `.compiler-ab-${process.pid}`);
  const base = join(scratch, 'base');
  const work = join(scratch, 'work');
  mkdirSync(base, { recursive: true });
  mkdirSync(work, { recursive: true });
  try {
    for (const f of FILES) {
      writeFileSync(join(base, f), showAt(rev, f));
      writeFileSync(join(work, f), readFileSync(join(ROOT, 'engine', 'mapping', f)));
    }
    const results: { order: string[]; ratios: Record<string, number> }[] = [];
    for (const [first, second] of [
      [base, work],
      [work, base],
    ] as const) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', first, second, String(rounds), ...(only ? [only] : [])], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 24 });
      if (r.status !== 0) throw new Error(`compiler-ab child failed:\n${r.stderr}`);
      const last = r.stdout.trim().split('\n').at(-1)!;
      results.push(JSON.parse(last) as { order: string[]; ratios: Record<string, number> });
    }
    const keys = Object.keys(results[0]!.ratios).sort();
    const mean: Record<string, number> = {};
    console.log(`compiler of the working tree ÷ compiler of ${rev} (below 1: faster), ${rounds} rounds, both load orders:`);
    for (const key of keys) {
      const [a, b] = results.map((r) => r.ratios[key]!);
      mean[key] = Math.round(Math.sqrt(a! * b!) * 1000) / 1000;
      console.log(`  ${key.padEnd(24)} ${mean[key]!.toFixed(3)}  (base loaded first ${a!.toFixed(3)}, work loaded first ${b!.toFixed(3)})`);
    }
    const mappings: Record<string, Record<string, number>> = {};
    for (const key of keys) {
      const [name, kind] = key.split(' ') as [string, string];
      if (name !== '*') (mappings[name] ??= {})[kind] = mean[key]!;
    }
    const overall = (kind: string) => mean[`* ${kind}`] ?? Object.values(mappings)[0]?.[kind];
    console.log(JSON.stringify({ base: rev, send: overall('send'), webhook: overall('webhook'), mappings }));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') {
  const [, , , first, second, rounds, only] = process.argv;
  await child(first!, second!, only, Number(rounds));
} else {
  parent();
}
