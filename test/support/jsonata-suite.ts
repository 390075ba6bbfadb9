// The official JSONata test suite (../shared/jsonata-test-suite, the upstream jsonata-js suite) run
// against the compiled fast path: each case compiled and compared with the suite's expectation, or,
// when the compiler declines (or falls back at run time), run by jsonata, which must pass it. Used by
// test/mapping/jsonata-compiler.test.ts (which requires no failures) and by the benchmark (which reports the
// fraction compiled).
import jsonata from 'jsonata';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileAst, Fallback, StepLimitExceeded } from '../../engine/mapping/jsonata-compiler.js';

/** Key-order-insensitive form, for comparing with the suite's JSON expectations (as its runner does). */
export function canon(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canon);
  if (typeof v === 'function') return '<function>';
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (o._jsonata_lambda || o._jsonata_function) return '<function>';
    return Object.fromEntries(Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => [k, canon(o[k])]));
  }
  return v;
}

const codeOf = (e: unknown): string => {
  if (e && typeof e === 'object' && 'code' in e) return String((e as { code: unknown }).code);
  return e instanceof Error ? `${e.name}` : String(e);
};

interface Case {
  expr?: string;
  'expr-file'?: string;
  data?: unknown;
  dataset?: string | null;
  bindings?: Record<string, unknown>;
  result?: unknown;
  undefinedResult?: boolean;
  code?: string;
  error?: { code: string };
  timelimit?: number;
  depth?: number;
}

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Where the suite is: beside the repository (../shared), or undefined when this machine has none. */
export const suiteDir: string | undefined = [join(repoRoot, '../shared/jsonata-test-suite'), '/work/shared/jsonata-test-suite'].find((d) => existsSync(join(d, 'groups')));

/** The official runner's guard for cases with a time limit or depth. */
function timebox(expr: jsonata.Expression, timeout: number, maxDepth: number): void {
  let depth = 0;
  const start = Date.now();
  const check = () => {
    if (depth > maxDepth) throw { code: 'U1001', message: 'Stack overflow error' };
    if (Date.now() - start > timeout) throw { code: 'U1001', message: 'Expression evaluation timeout' };
  };
  expr.assign(Symbol.for('jsonata.__evaluate_entry') as unknown as string, (_e: unknown, _i: unknown, env: { isParallelCall?: boolean }) => {
    if (env.isParallelCall) return;
    depth++;
    check();
  });
  expr.assign(Symbol.for('jsonata.__evaluate_exit') as unknown as string, (_e: unknown, _i: unknown, env: { isParallelCall?: boolean }) => {
    if (env.isParallelCall) return;
    depth--;
    check();
  });
}

function expectation(c: Case): { code: string } | { value: unknown } {
  if (c.code !== undefined) return { code: c.code };
  if (c.error?.code !== undefined) return { code: c.error.code };
  if (c.undefinedResult) return { value: undefined };
  return { value: c.result };
}

const matches = (exp: ReturnType<typeof expectation>, got: { value: unknown } | { code: string }): boolean =>
  'code' in exp ? 'code' in got && got.code === exp.code : 'value' in got && JSON.stringify(canon(got.value)) === JSON.stringify(canon(exp.value));

export interface SuiteResult {
  total: number;
  /** Cases the compiler ran itself, with the expected result. */
  identical: number;
  /** Cases that neither the compiled form nor (for declined ones) jsonata got right. */
  failures: string[];
}

export async function runJsonataSuite(dir: string): Promise<SuiteResult> {
  const datasets = new Map<string, unknown>();
  const dataset = (name: string) => {
    if (!datasets.has(name)) datasets.set(name, JSON.parse(readFileSync(join(dir, 'datasets', `${name}.json`), 'utf8')));
    return structuredClone(datasets.get(name));
  };
  let total = 0;
  let identical = 0;
  const failures: string[] = [];
  const groups = readdirSync(join(dir, 'groups')).sort();
  for (const group of groups) {
    const gdir = join(dir, 'groups', group);
    for (const file of readdirSync(gdir).filter((f) => f.endsWith('.json')).sort()) {
      const raw = JSON.parse(readFileSync(join(gdir, file), 'utf8')) as Case | Case[];
      const cases = Array.isArray(raw) ? raw : [raw];
      for (const [k, c] of cases.entries()) {
        total++;
        const name = `${group}/${file}${cases.length > 1 ? `#${k}` : ''}`;
        const text = c.expr ?? (c['expr-file'] ? readFileSync(join(gdir, c['expr-file']), 'utf8') : '');
        const input = () => (c.data !== undefined ? structuredClone(c.data) : c.dataset ? dataset(c.dataset) : undefined);
        const exp = expectation(c);
        let expr: jsonata.Expression | undefined;
        try {
          expr = jsonata(text);
        } catch (e) {
          // syntax errors: nothing to compile; jsonata reports them
          if (!matches(exp, { code: codeOf(e) })) failures.push(`${name}: jsonata compile error ${codeOf(e)} but expected ${JSON.stringify(exp)}`);
          continue;
        }
        const compiled = compileAst(expr.ast());
        if (compiled.ok) {
          let got: { value: unknown } | { code: string } | undefined;
          try {
            got = { value: compiled.run(input(), c.bindings ?? {}, { maxSteps: 5_000_000, maxDepth: c.depth ?? 500, timeoutMs: c.timelimit ?? 5000 }) };
          } catch (e) {
            if (!(e instanceof Fallback) && !(e instanceof StepLimitExceeded)) got = { code: codeOf(e) };
          }
          if (got !== undefined) {
            if (matches(exp, got)) identical++;
            else failures.push(`${name}: ${text}\n  compiled: ${JSON.stringify('code' in got ? got : canon(got.value))?.slice(0, 300)}\n  expected: ${JSON.stringify(exp).slice(0, 300)}`);
            continue;
          }
        }
        // declined (or fell back at run time): jsonata must pass the case
        if (c.timelimit !== undefined || c.depth !== undefined) timebox(expr, c.timelimit ?? 5000, c.depth ?? 1000);
        let got: { value: unknown } | { code: string };
        try {
          got = { value: await expr.evaluate(input(), c.bindings ?? {}) };
        } catch (e) {
          got = { code: codeOf(e) };
        }
        if (!matches(exp, got)) failures.push(`${name} (jsonata fallback): ${text}\n  got: ${JSON.stringify(got).slice(0, 300)}`);
      }
    }
  }
  return { total, identical, failures };
}
