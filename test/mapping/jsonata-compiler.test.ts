// The JSONata fast path (engine/mapping/jsonata-compiler.ts) must be indistinguishable from jsonata:
// (a) differentially, on every expression of every mapping, fed the inputs the engine builds from the
//     golden fixtures plus generated variations; (b) on the official JSONata test suite.
import t from 'tap';
import { existsSync } from 'node:fs';
import jsonata from 'jsonata';
import { fileURLToPath } from 'node:url';
import { runJsonataSuite, suiteDir } from '../support/jsonata-suite.js';
import { loadMapping, mappingDirs, type Mapping } from '../../engine/mapping/loader.js';
import { runMappingFixtures } from '../../engine/mapping/golden.js';
import { compileText } from '../../engine/mapping/jsonata-compiler.js';
import { Rejection, type Compiled } from '../../engine/mapping/expression.js';

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));

/** A serialization that tells undefined from absent, sequences' items apart from nesting, and keeps key order. */
function ser(v: unknown, seen = new Set<unknown>()): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'function' || (v && typeof v === 'object' && ((v as Record<string, unknown>)._jsonata_lambda || (v as Record<string, unknown>)._jsonata_function))) return '<function>';
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (seen.has(v)) return '<cycle>';
  seen.add(v);
  const out = Array.isArray(v) ? `[${v.map((x) => ser(x, seen)).join(',')}]` : `{${Object.keys(v).map((k) => `${JSON.stringify(k)}:${ser((v as Record<string, unknown>)[k], seen)}`).join(',')}}`;
  seen.delete(v);
  return out;
}

type Outcome = { ok: true; value: string } | { ok: false; code: string };
const codeOf = (e: unknown): string => {
  if (e instanceof Rejection) return `Rejection:${e.answerCode}:${e.reason}`;
  if (e && typeof e === 'object' && 'code' in e) return String((e as { code: unknown }).code);
  return e instanceof Error ? `${e.name}` : String(e);
};

// ------------------------------------------------------------------------------------------------
// (a) differential: every mapping expression, golden fixture inputs + variations.

function variations(input: unknown): unknown[] {
  const out: unknown[] = [];
  const clone = (x: unknown) => structuredClone(x);
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, path: (string | number)[]) => {
    if (paths.length > 200) return;
    if (path.length > 0) paths.push(path);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
    else if (v && typeof v === 'object') for (const k of Object.keys(v)) walk((v as Record<string, unknown>)[k], [...path, k]);
  };
  walk(input, []);
  const set = (doc: unknown, path: (string | number)[], f: (old: unknown) => unknown, del = false) => {
    let cur = doc as Record<string | number, unknown>;
    for (const p of path.slice(0, -1)) cur = cur[p] as Record<string | number, unknown>;
    const last = path.at(-1)!;
    if (del) {
      if (Array.isArray(cur)) cur.splice(Number(last), 1);
      else delete cur[last];
    } else cur[last] = f(cur[last]);
  };
  const mutations: [(old: unknown) => unknown, boolean][] = [
    [() => undefined, true],
    [() => null, false],
    [(o) => [o], false],
    [(o) => (typeof o === 'string' ? `${o}é😀\u0000"\\` : o), false],
    [(o) => (typeof o === 'number' ? 1e21 : typeof o === 'string' ? '1e21' : o), false],
    [(o) => (typeof o === 'number' ? 0.1 + 0.2 : typeof o === 'string' ? '' : o), false],
    [(o) => (typeof o === 'number' ? -0 : typeof o === 'string' ? '-0' : o), false],
    [(o) => (typeof o === 'string' ? 123456789012345680000 : o), false],
    [(o) => (o && typeof o === 'object' && !Array.isArray(o) ? [o, o] : o), false],
  ];
  // eight variations per input (paths spread over the document, mutations rotating): enough to
  // reach every expression's branches over all fixtures, while keeping the run fast
  const picked = paths.filter((_, i) => i % Math.max(1, Math.ceil(paths.length / 4)) === 0);
  picked.forEach((path, i) => {
    for (let m = 0; m < 2; m++) {
      const [f, del] = mutations[(i * 2 + m + paths.length) % mutations.length]!;
      const doc = clone(input);
      set(doc, path, f, del);
      out.push(doc);
    }
  });
  return out;
}

async function outcome(c: Compiled, input: unknown, bindings: Record<string, unknown> | undefined): Promise<Outcome> {
  try {
    return { ok: true, value: ser(await c.evaluate(input, bindings)) };
  } catch (e) {
    return { ok: false, code: codeOf(e) };
  }
}

t.test('differential: mapping expressions on golden inputs and variations', async (t) => {
  const dirs = [...mappingDirs(root('mappings')), ...(existsSync(root('test/mapping')) ? mappingDirs(root('test/mapping')) : [])];
  let compared = 0;
  let expressions = 0;
  let fast = 0;
  const mismatches: string[] = [];
  for (const dir of dirs) {
    const a = loadMapping(dir);
    process.env.WAB_JSONATA_FASTPATH = '0';
    let b: ReturnType<typeof loadMapping>;
    try {
      b = loadMapping(dir);
    } finally {
      delete process.env.WAB_JSONATA_FASTPATH;
    }
    if (!a.ok || !b.ok) continue;
    const fastMapping: Mapping = a.mapping;
    const ref = b.mapping.expressions;
    expressions += fastMapping.expressions.length;
    fast += fastMapping.expressions.filter((c) => c.fastPath).length;
    t.equal(ref.length, fastMapping.expressions.length, `${fastMapping.name}: same expressions`);
    t.ok(ref.every((c) => !c.fastPath), `${fastMapping.name}: WAB_JSONATA_FASTPATH=0 keeps jsonata`);
    const seen = new Set<string>();
    fastMapping.expressions.forEach((c, i) => {
      const r = ref[i]!;
      if (!c.fastPath) return;
      const original = c.evaluate.bind(c);
      const check = async (input: unknown, bindings: Record<string, unknown> | undefined) => {
        const [x, y] = [await outcome({ ...c, evaluate: original }, input, bindings), await outcome(r, input, bindings)];
        compared++;
        if (ser(x) !== ser(y)) mismatches.push(`${fastMapping.name} ${c.name} on ${JSON.stringify(input)?.slice(0, 300)}\n  fast:    ${JSON.stringify(x).slice(0, 400)}\n  jsonata: ${JSON.stringify(y).slice(0, 400)}`);
      };
      // the engine's hot paths call `now` when there is one: route them through the checking evaluate
      (c as { now?: Compiled['now'] }).now = undefined;
      (c as { evaluate: Compiled['evaluate'] }).evaluate = async (input, bindings) => {
        const key = `${c.name}\u0000${JSON.stringify(input)}`;
        if (!seen.has(key)) {
          seen.add(key);
          await check(input, bindings);
          for (const v of variations(input)) await check(v, bindings);
        }
        return original(input, bindings);
      };
    });
    const results = await runMappingFixtures(fastMapping);
    t.ok(results.length > 0, `${fastMapping.name}: fixtures ran`);
  }
  t.same(mismatches.slice(0, 20), [], 'fast path and jsonata agree on every input');
  t.ok(compared > 1000, `compared ${compared} evaluations`);
  const line = `mapping expressions on the fast path: ${fast}/${expressions} (${compared} evaluations compared)`;
  t.comment(line);
  console.log(line);
});

// ------------------------------------------------------------------------------------------------
// (b) the official JSONata test suite.

if (!suiteDir) {
  t.comment('jsonata-suite: skipped, ../shared/jsonata-test-suite not found');
  console.log('jsonata-suite: skipped, ../shared/jsonata-test-suite not found');
} else {
  const dir = suiteDir;
  t.test('official JSONata test suite', async (t) => {
    const { total, identical, failures } = await runJsonataSuite(dir);
    t.same(failures, [], 'every case compiled and identical, or declined and passed by jsonata');
    const line = `jsonata-suite: ${identical}/${total} cases compiled and identical`;
    t.comment(line);
    console.log(line);
  });
}

t.test('$string of numbers and booleans, as jsonata gives it', async (t) => {
  // the fast path answers these without jsonata's JSON.stringify replacer (engine/mapping/jsonata-compiler.ts)
  const values = [0, -0, 1, -5, 131026, 0.1 + 0.2, 1.005, -5.5, 1e-7, 1e21, 123456789012345680000, 2 ** 53 + 2, 1 / 3, Number.MAX_VALUE, Number.MIN_VALUE, true, false, null, 'x'];
  for (const prettify of ['', ', true']) {
    const text = `[v.$string($${prettify})]`;
    const compiled = compileText(text);
    if (!compiled.ok) throw new Error(compiled.reason);
    const input = { v: values };
    t.same(ser(compiled.run(input, undefined, { maxSteps: 1e6, maxDepth: 500, timeoutMs: 5000 })), ser(await jsonata(text).evaluate(input)), text);
  }
});

/** `text` on the compiled path and on jsonata, each as a value (ser) or `error <code>`. */
async function bothWays(text: string, input: () => unknown): Promise<{ fast: string; slow: string }> {
  const compiled = compileText(text);
  if (!compiled.ok) throw new Error(`${text}: ${compiled.reason}`);
  let fast: string;
  try {
    fast = ser(compiled.run(input(), undefined, { maxSteps: 1e6, maxDepth: 500, timeoutMs: 5000 }));
  } catch (e) {
    fast = `error ${codeOf(e)}`;
  }
  const slow = await jsonata(text).evaluate(input()).then(ser, (e: unknown) => `error ${codeOf(e)}`);
  return { fast, slow };
}

t.test('$merge, as jsonata gives it', async (t) => {
  // the fast path merges into a plain object (engine/mapping/jsonata-compiler.ts); keys, order and values must match
  const input = { a: { x: 1, y: { z: 2 } }, b: { y: 3, '10': 'ten', '2': 'two', w: null }, c: JSON.parse('{"__proto__": {"polluted": true}, "k": 1}'), none: [] };
  for (const text of ['$merge([a, b])', '$merge([b, a, c])', '$merge(a)', '$merge(none)', '$merge(missing)', '$merge([a, missing, b])', '$keys($merge([c, a]))', '$merge([c]).k', '$merge([b, a]).y']) {
    const { fast, slow } = await bothWays(text, () => input);
    t.equal(fast, slow, text);
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was touched');
});

t.test('one-argument built-ins, comparisons with a number literal and & give what jsonata gives, for every kind of value', async (t) => {
  // the fast path shortcuts $exists/$count/$string/$type of one argument, `x > 0`-style comparisons
  // and & of two strings (engine/mapping/jsonata-compiler.ts); every other kind of value takes jsonata's road
  const input = { s: 'text', e: '', n: 0, neg: -0, f: 1.5, big: 1e21, t: true, no: false, z: null, arr: [1, 2], one: [7], empty: [], o: { a: 1 }, nested: [{ x: 1 }, { x: 2 }], words: ['a', 'b'] };
  const values = ['s', 'e', 'n', 'neg', 'f', 'big', 't', 'no', 'z', 'arr', 'one', 'empty', 'o', 'missing', 'nested.x', 'nested[0].x', 'words', '$string', 'function($v) { $v }', '[s]', '[]', '$number("1e400")', '$sqrt(-1)'];
  const templates = ['$exists(V)', '$count(V)', '$string(V)', '$type(V)', 'V > 0', 'V <= 1.5', 'V >= -2', 'V < "m"', 'V & "x"', '"x" & V', 'V & V', '$exists(V) and $count(V) > 0'];
  let compared = 0;
  for (const tpl of templates) {
    for (const v of values) {
      const text = tpl.replaceAll('V', `(${v})`);
      const { fast, slow } = await bothWays(text, () => input);
      if (fast !== slow) t.equal(fast, slow, text);
      compared++;
    }
  }
  t.equal(compared, templates.length * values.length, `${compared} expressions, each the same on both`);
  // a binding named like the built-in still wins over the shortcut
  const c = compileText('$count(s)');
  if (!c.ok) throw new Error(c.reason);
  t.equal(c.run(input, { count: () => 'mine' }, { maxSteps: 1e6, maxDepth: 500, timeoutMs: 5000 }), 'mine');
});

t.test('object constructors mixing literal and computed keys give what jsonata gives', async (t) => {
  // a literal key's checks (duplicate, reserved name, array index, __proto__) are decided at compile
  // time when a computed key sits beside it (engine/mapping/jsonata-compiler.ts, singleItemObject)
  const input = { k: 'a', n: 5, idx: '7', items: [{ k: 'x' }, { k: 'y' }], one: [{ k: 'a' }] };
  const objects = [
    '{"a": 1, k: 2}', '{k: 1, "a": 2}', '{"a": 1, "a": 2, k: 3}', '{"b": 1, k: 2, "b": 3}', '{"__proto__": 1, k: 2}',
    '{"0": 1, k: 2}', '{"4294967295": 1, k: 2}', '{"_jsonata_lambda": 1, k: 2}', '{"_jsonata_function": 1, k: 2}',
    '{"a": 1, n: 2}', '{"a": 1, missing: 2}', '{"a": 1, idx: 2}', '{"b": 1, k: 2, "c": k}', '{"x": 1, $string(n): 2}',
  ];
  let compared = 0;
  for (const o of objects) {
    for (const text of [o, `items.${o}`, `one.${o}`, `items.${o}.b`]) {
      const { fast, slow } = await bothWays(text, () => structuredClone(input));
      if (fast !== slow) t.equal(fast, slow, text);
      compared++;
    }
  }
  t.equal(compared, objects.length * 4, `${compared} constructors, each the same on both`);
});

t.test('$contains and $replace with a regex literal give what jsonata gives', async (t) => {
  // with a regex literal (and, for $replace, a replacement without `$`) the fast path runs the RegExp
  // itself rather than jsonata's match objects (engine/mapping/jsonata-compiler.ts, replaceLiteral)
  const strings = ['', 'a', '+1 (650) 555-1234', 'aaa', 'abcabc', 'xAx', '  padded  ', 'naïve café ☕', '\n\t'];
  const regexes = ['/[^0-9]/', '/a/', '/a+/', '/^/', '/$/', '/x*/', '/(a)(b)?/', '/A/i', '/^[ \\t\\n\\r]*[-+]?[0-9]+$/', '/b|$/'];
  const calls = ['$contains(S, R)', '$replace(S, R, "")', '$replace(S, R, "-")', '$replace(S, R, "<$0>")', '$replace(S, R, "#", 1)', '$replace(S, R, "#", 0)', '$replace(S, R, "#", 2)'];
  let compared = 0;
  for (const call of calls) {
    for (const r of regexes) {
      for (const str of strings) {
        const text = call.replace('S', JSON.stringify(str)).replace('R', r);
        const { fast, slow } = await bothWays(text, () => ({}));
        if (fast !== slow) t.equal(fast, slow, text);
        compared++;
      }
    }
  }
  t.equal(compared, calls.length * regexes.length * strings.length, `${compared} calls, each the same on both`);
  const { fast } = await bothWays('$replace("abc", /x*/, "-")', () => ({}));
  t.equal(fast, 'error D1004', 'an empty match after the first is an error, as in jsonata');
});

t.test('block scopes give what jsonata gives: names read before their binding, shadowed, bound in branches', async (t) => {
  // a block's scope is made with every name its `:=` can bind (engine/mapping/jsonata-compiler.ts, blockBinds);
  // one not bound yet in this evaluation must still be looked up in the enclosing scopes
  const input = { a: 1, items: [{ k: 'x' }, { k: 'y' }], flag: true };
  const blocks = [
    '($x := "outer"; ($v := $x; $x := "inner"; [$v, $x]))',
    '($x := "outer"; (flag ? ($x := "then") : ($x := "else"); $x))',
    '($x := "outer"; ($not(flag) ? ($x := "then"); $x))',
    '($x := "outer"; ($f := function() { $x }; ($x := "inner"; $f())))',
    '($x := "outer"; ($f := function() { $x }; $a := $f(); $x := "inner"; [$a, $f()]))',
    '($x := "outer"; (items[($x := k; true)]; $x))',
    '($x := "outer"; ($y := ($x := "nested-block"; $x); [$x, $y]))',
    '($x := "outer"; ($m := $map(items, function($i) { $x := $i.k }); [$m, $x]))',
    '($x := "outer"; ({"k": ($x := "in-object")}; $x))',
    '($x := "outer"; ($x := undefined; $x))',
    '($x := "outer"; ($x := $x & "+"; $x := $x & "+"; $x))',
    '(($x := 1; $x) ; $x)',
    '($f := function($n) { $n > 0 ? ($r := $f($n - 1); $n & "," & $r) : "0" }; $f(3))',
    '($x := "outer"; ($g := function($x) { ($y := $x; $x := "p"; $y & $x) }; [$g("arg"), $g(), $x]))',
  ];
  for (const text of blocks) {
    const { fast, slow } = await bothWays(text, () => structuredClone(input));
    t.equal(fast, slow, text);
  }
});

t.test('bindings and evaluations started from inside another', async (t) => {
  // the root scope's names are kept per bindings object (checked on each call) and one budget record
  // serves every outermost evaluation (engine/mapping/jsonata-compiler.ts, bindingNames and runFn)
  const limits = { maxSteps: 1e6, maxDepth: 500, timeoutMs: 5000 };
  const c = compileText('[$a, $b, $exists($c) ? $c : "no c"]');
  if (!c.ok) throw new Error(c.reason);
  const bindings: Record<string, unknown> = { a: 1, b: 2 };
  t.same(c.run({}, bindings, limits), [1, 2, 'no c']);
  bindings.b = 20;
  t.same(c.run({}, bindings, limits), [1, 20, 'no c'], 'a changed value is read');
  bindings.c = 3;
  t.same(c.run({}, bindings, limits), [1, 20, 3], 'an added name is seen');
  delete bindings.a;
  t.same(c.run({}, bindings, limits), [20, 3], 'a removed one is gone');
  t.same(c.run({}, { b: 'other', a: 'object' }, limits), ['object', 'other', 'no c'], 'another object, in another key order');

  const inner = compileText('$sum(values) & "/" & $string($count(values))');
  if (!inner.ok) throw new Error(inner.reason);
  const outer = compileText('[$inner([1, 2]), $count(items), $inner([3]), $map(items, function($i) { $inner([$i, $i]) })]');
  if (!outer.ok) throw new Error(outer.reason);
  const nested = { inner: (values: number[]) => inner.run({ values }, undefined, limits) };
  const expected = await jsonata('[$inner([1, 2]), $count(items), $inner([3]), $map(items, function($i) { $inner([$i, $i]) })]').evaluate({ items: [5, 6] }, nested);
  t.same(outer.run({ items: [5, 6] }, nested, limits), expected, 'nested evaluations keep their own scope and budget, as jsonata gives it');
  t.same(expected, ['3/2', 2, '3/1', '10/2', '12/2']);
  // the outer budget still counts after a nested evaluation returned
  const tight = compileText('($inner([1]); $map([1..50], function($x) { $x * 2 }))');
  if (!tight.ok) throw new Error(tight.reason);
  t.throws(() => tight.run({}, nested, { maxSteps: 60, maxDepth: 500, timeoutMs: 5000 }), 'the step limit still holds for the outer evaluation');
  t.same((tight.run({}, nested, limits) as number[]).length, 50);
});
