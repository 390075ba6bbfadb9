// Profiles as the benches read them: a CPU or sampling-heap profile as weighted call frames, then the
// heaviest functions and modules (bench/service.ts --cpu-prof/--heap-prof, bench/send-flow.ts --top).
import { readFileSync } from 'node:fs';
import { ROOT } from '../test/support/stack.js';

export interface ProfileEntry {
  fn: string;
  where: string;
  /** ms of self time, or KB allocated in a heap profile. */
  self: number;
  pct: number;
}

type CallFrame = { functionName: string; url: string; lineNumber: number; columnNumber: number };

/** A profile's samples, each a call frame (its url relative to the repository) and a weight. */
export interface Weighted {
  samples: { cf: CallFrame; url: string; w: number }[];
  total: number;
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const relative = (url: string) => url.replace(/^file:\/\//, '').replace(ROOT, '');

/** The busy samples of a .cpuprofile (idle left out), weighing their duration in µs. */
export function cpuSamples(file: string): Weighted {
  const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: { id: number; callFrame: CallFrame }[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(p.nodes.map((x) => [x.id, x.callFrame]));
  const out: Weighted = { samples: [], total: 0 };
  for (let i = 0; i < p.samples.length; i++) {
    const cf = byId.get(p.samples[i]!);
    const dt = p.timeDeltas[i + 1] ?? 0;
    if (!cf || cf.functionName === '(idle)') continue;
    out.total += dt;
    out.samples.push({ cf, url: relative(cf.url), w: dt });
  }
  return out;
}

export interface HeapNode {
  callFrame: CallFrame;
  selfSize: number;
  children: HeapNode[];
}

/** The frames of a sampling .heapprofile that allocated, weighing their bytes. */
export function heapSamples(file: string): Weighted {
  return heapWeighted((JSON.parse(readFileSync(file, 'utf8')) as { head: HeapNode }).head);
}

/** The same for a profile still in memory (HeapProfiler.stopSampling's head). */
export function heapWeighted(head: HeapNode): Weighted {
  const out: Weighted = { samples: [], total: 0 };
  const walk = (n: HeapNode) => {
    if (n.selfSize > 0) {
      out.total += n.selfSize;
      out.samples.push({ cf: n.callFrame, url: relative(n.callFrame.url), w: n.selfSize });
    }
    for (const c of n.children) walk(c);
  };
  walk(head);
  return out;
}

/** The heaviest keys, each weight divided by `unit` (µs → ms, bytes → KB) and as a share of the total. */
function heaviest(by: Map<string, { fn: string; where: string; w: number }>, total: number, unit: number, n: number): ProfileEntry[] {
  return [...by.values()]
    .sort((a, b) => b.w - a.w)
    .slice(0, n)
    .map((e) => ({ fn: e.fn, where: e.where, self: Math.round(e.w / unit), pct: r2((e.w / Math.max(1, total)) * 100) }));
}

/** Weight per module: engine file, npm package, node: module, native or GC. */
export function byModule(p: Weighted, unit: number, n: number): ProfileEntry[] {
  const by = new Map<string, { fn: string; where: string; w: number }>();
  for (const { cf, url, w } of p.samples) {
    const npm = /node_modules\/(@[^/]+\/[^/]+|[^/]+)/.exec(url);
    const key = !url ? (cf.functionName.startsWith('(') ? cf.functionName : `native ${cf.functionName}`) : npm ? `npm ${npm[1]}` : url.startsWith('node:') ? url.split('/')[0]! : url;
    const e = by.get(key) ?? { fn: key, where: '', w: 0 };
    e.w += w;
    by.set(key, e);
  }
  return heaviest(by, p.total, unit, n);
}

/** Weight per function (name + file:line:col; positions are in tsx's transpiled code for .ts files). */
export function byFunction(p: Weighted, unit: number, n: number): ProfileEntry[] {
  const by = new Map<string, { fn: string; where: string; w: number }>();
  for (const { cf, url, w } of p.samples) {
    const where = url ? `${url}:${cf.lineNumber + 1}:${cf.columnNumber + 1}` : '';
    const key = `${cf.functionName}\n${where}`;
    const e = by.get(key) ?? { fn: cf.functionName || '(anonymous)', where, w: 0 };
    e.w += w;
    by.set(key, e);
  }
  return heaviest(by, p.total, unit, n);
}
