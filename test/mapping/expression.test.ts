// Expressions: compile errors point at the offending token (file:line:col), runtime errors and
// limits are reported per evaluation with stable codes, and evaluations never leak into each other.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WabError } from '../../engine/mapping/errors.js';
import { checkSyntax, compile, isPromise, Rejection, type Compiled, type FunctionSource, type SourceRef } from '../../engine/mapping/expression.js';
import { loadMapping, type Mapping } from '../../engine/mapping/loader.js';
import { toCanonical } from '../../engine/mapping/pipeline.js';
import { planSend } from '../../engine/mapping/send.js';
import { offsetToPosition, parseYamlSource } from '../../engine/mapping/yaml-source.js';
import type { CanonicalMessage } from '../../engine/clevertap/model.js';
import { rejectedWith } from '../support/rejected.js';

const HEADER = '# yaml-language-server: $schema=../../schemas/mapping.schema.json\n';
const root = mkdtempSync(join(tmpdir(), 'wab-expr-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let seq = 0;

/** Writes `<tmp>/<n>/m/mapping.yaml` and loads it. */
function load(text: string) {
  const dir = join(root, String(seq++), 'm');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'mapping.yaml'), text);
  return loadMapping(dir);
}

function loadOk(text: string): Mapping {
  const r = load(text);
  if (!r.ok) throw new Error(`expected the mapping to load:\n${r.errors.map((e) => e.message).join('\n')}`);
  return r.mapping;
}

function loadErrors(text: string): WabError[] {
  const r = load(text);
  if (r.ok) throw new Error('expected the mapping not to load');
  return r.errors;
}

/** "line:col" (1-based) of the `nth` occurrence of `needle` in `text`. */
function posOf(text: string, needle: string, nth = 0): string {
  let at = -1;
  for (let i = 0; i <= nth; i++) {
    at = text.indexOf(needle, at + 1);
    if (at < 0) throw new Error(`${JSON.stringify(needle)} not found`);
  }
  const before = text.slice(0, at);
  const line = before.split('\n').length;
  const col = at - (before.lastIndexOf('\n') + 1) + 1;
  return `${line}:${col}`;
}

/** The "line:col" tail of a WabError's where. */
function lineCol(e: WabError | undefined): string | undefined {
  const m = /:(\d+:\d+)$/.exec(e?.where ?? '');
  return m?.[1];
}

/** A mapping whose send.request.body, url and functions are given; everything else is valid. */
function mapping(parts: { functions?: string; url?: string; body?: string; success?: string; error?: string }): string {
  let text = `${HEADER}name: m\ntitle: T\nsettings:\n  base: { type: string, default: "https://x.test" }\n`;
  if (parts.functions) text += `functions:\n${parts.functions}`;
  text += 'send:\n  request:\n    method: POST\n';
  text += `    url: ${parts.url ?? 'settings.base'}\n`;
  if (parts.body) text += `    body: |\n${parts.body.replace(/^/gm, '      ')}\n`;
  text += `  response:\n    success: ${parts.success ?? '"true"'}\n    error: ${parts.error ?? '\'{"code": 2004}\''}\n`;
  return text;
}

const rejection = (p: Promise<unknown>) => rejectedWith(p, WabError);

const plainRef = (name: string): SourceRef => ({ name, locate: (o) => `expr:1:${o + 1}` });
const fn = (name: string, text: string): FunctionSource => ({ name, text, ref: plainRef(`functions.${name}`) });

t.test('compile errors point at the offending token', async (t) => {
  t.test('in a block scalar (|)', async (t) => {
    const text = mapping({ body: '{\n  "a": 1,\n  "b": 2 +\n}' });
    const [e, ...rest] = loadErrors(text);
    t.same(rest, [], 'one problem');
    t.equal(e?.code, 'WAB_MAPPING_COMPILE');
    t.match(e?.message, /send\.request\.body/, 'names the slot');
    t.equal(lineCol(e), posOf(text, '}\n  response'), 'the dangling "}" after "2 +"');
    t.match(e?.where, /mapping\.yaml:\d+:\d+$/, 'where is file:line:col');
  });

  t.test('in a block scalar, when the mapping declares functions (expression is compiled behind a prelude)', async (t) => {
    const text = mapping({ functions: '  id: |\n    function($x) { $x }\n', body: '{\n  "a": $id(1),\n  "b": oops bar\n}' });
    const [e] = loadErrors(text);
    t.equal(e?.code, 'WAB_MAPPING_COMPILE');
    t.equal(lineCol(e), posOf(text, 'bar'), 'the unexpected "bar"');
  });

  t.test('in a plain scalar', async (t) => {
    const text = mapping({ url: 'settings.base oops' });
    const [e] = loadErrors(text);
    t.equal(e?.code, 'WAB_MAPPING_COMPILE');
    t.match(e?.message, /send\.request\.url/);
    t.equal(lineCol(e), posOf(text, 'oops'));
  });

  t.test('in a double-quoted scalar', async (t) => {
    const text = mapping({ success: '"status = )"' });
    const [e] = loadErrors(text);
    t.equal(e?.code, 'WAB_MAPPING_COMPILE');
    t.match(e?.message, /send\.response\.success/);
    t.equal(lineCol(e), posOf(text, ')"'));
  });

  t.test('in a single-quoted scalar', async (t) => {
    const text = mapping({ error: '\'{"code": 2004, ]\'' });
    const [e] = loadErrors(text);
    t.equal(e?.code, 'WAB_MAPPING_COMPILE');
    t.equal(lineCol(e), posOf(text, ']'));
  });

  t.test('inside a functions: entry, pointing into that function', async (t) => {
    const text =
      `${HEADER}name: m\ntitle: T\nfunctions:\n` +
      '  a: |\n    function($x) {\n      $x +\n    }\n' +
      '  b: "function($y) { $y ) }"\n' +
      '  c: "function($z) { $z }"\n' +
      'send:\n  request:\n    method: POST\n    url: "$c(1) oops"\n  response:\n    success: "true"\n    error: "{}"\n';
    const errors = loadErrors(text);
    t.same(errors.map((e) => e.code), ['WAB_MAPPING_COMPILE', 'WAB_MAPPING_COMPILE', 'WAB_MAPPING_COMPILE'], 'all three problems at once');
    const byName = (n: string) => errors.find((e) => e.message.includes(`${n}:`));
    t.equal(lineCol(byName('functions.a')), posOf(text, '}\n  b:'), 'functions.a: the "}" after "$x +"');
    t.equal(lineCol(byName('functions.b')), posOf(text, ') }"'), 'functions.b: the stray ")"');
    t.equal(lineCol(byName('send.request.url')), posOf(text, 'oops'), 'the expression that uses a valid function is still located right');
  });
});

t.test('positions inside YAML scalars (parseYamlSource + offsetToPosition)', async (t) => {
  /** Compiles the value at key `x` and returns the error position, or undefined. */
  const errorAt = (yaml: string): string | undefined => {
    const src = parseYamlSource('f.yaml', yaml);
    const value = (src.value as { x: string }).x;
    const e = checkSyntax(value, {
      name: 'x',
      locate: (o) => {
        const p = offsetToPosition(src, ['x'], o);
        return `f.yaml:${p.line}:${p.col}`;
      },
    });
    return lineCol(e);
  };
  const cases: [string, string][] = [
    ['literal block', 'x: |\n  1 +\n  foo bar\n'],
    ['literal block, strip chomping', 'x: |-\n  1 +\n  foo bar\n'],
    ['literal block, comment on the header line', 'x: |  # note\n  1 +\n  foo bar\n'],
    ['literal block starting with an empty line', 'x: |\n\n  1 +\n  foo bar\n'],
    ['literal block with nested indentation', 'x: |\n    (\n      1 +\n    foo bar)\n'],
    ['literal block, CRLF line ends', 'x: |\r\n  1 +\r\n  foo bar\r\n'],
    ['literal block with non-ASCII text before the error', 'x: |\n  "é" &\n  foo bar\n'],
    ['block scalar on its own line', 'x:\n  |\n    1 +\n    foo bar\n'],
    ['plain scalar', 'x: 1 + foo bar\n'],
    ['double-quoted scalar', 'x: "1 + foo bar"\n'],
    ['single-quoted scalar', "x: '1 + foo bar'\n"],
  ];
  for (const [name, yaml] of cases) t.equal(errorAt(yaml), posOf(yaml, 'bar'), name);

  // Scalars whose source text is not the value character for character: escapes and line folding.
  const shifted: [string, string][] = [
    ['double-quoted scalar with \\" escapes', 'x: "\\"a\\" & foo bar"\n'],
    ["single-quoted scalar with '' escapes", "x: '''a'' & foo bar'\n"],
    ['plain scalar over several lines', 'x: 1 +\n  2 +\n  foo bar\n'],
    ['double-quoted scalar over several lines', 'x: "1 +\n  2 +\n  foo bar"\n'],
    ['folded block scalar (>)', 'x: >\n  1 +\n  foo bar\n'],
  ];
  for (const [name, yaml] of shifted) t.equal(errorAt(yaml), posOf(yaml, 'bar'), name);

  t.test('an error at the end of a block scalar stays on the block\'s last line', async (t) => {
    const text = mapping({ body: '"a" &' });
    const [e] = loadErrors(text);
    t.equal(e?.code, 'WAB_MAPPING_COMPILE');
    const line = Number(lineCol(e)?.split(':')[0]);
    t.equal(line, Number(posOf(text, '"a" &').split(':')[0]), 'not the following "response:" line');
  });
});

t.test('runtime errors', async (t) => {
  t.test('calling a non-function is WAB_MAPPING_EVAL at the call', async (t) => {
    const text = mapping({ functions: '  id: |\n    function($x) { $x }\n', url: '|\n      (\n        $n := $id(1);\n        $n(2)\n      )' });
    const m = loadOk(text);
    const e = await rejection(m.send.request.url.evaluate({ settings: {} }));
    t.equal(e.code, 'WAB_MAPPING_EVAL');
    t.match(e.message, /send\.request\.url/);
    t.match(e.message, /T1006/, 'keeps the JSONata error code');
    const [line, col] = (lineCol(e) ?? '0:0').split(':').map(Number);
    const [callLine, callCol] = posOf(text, '$n(2)').split(':').map(Number);
    t.equal(line, callLine, 'on the line of the call');
    t.ok(col! >= callCol! && col! <= callCol! + 2, `within "$n(" (col ${col}, call at ${callCol})`);
  });

  t.test('a failing built-in inside a function points into that function', async (t) => {
    // Not in tail position: jsonata runs a tail call from a trampoline in the caller, where no
    // evaluation hook sees it, so such an error points at the call site instead.
    const text = mapping({ functions: '  num: |\n    function($s) {\n      $number($s) + 0\n    }\n', url: `'"https://x.test/" & $string($num("zz"))'` });
    const m = loadOk(text);
    const e = await rejection(m.send.request.url.evaluate({}));
    t.equal(e.code, 'WAB_MAPPING_EVAL');
    t.match(e.message, /D3030/);
    t.equal(lineCol(e)?.split(':')[0], posOf(text, '$number($s) + 0').split(':')[0], 'on the $number line of functions.num');
  });

  t.test('a failing operator inside a function points into that function', async (t) => {
    const text = mapping({ functions: '  add: |\n    function($s) {\n      $s + 1\n    }\n', url: `'"https://x.test/" & $string($add("zz"))'` });
    const m = loadOk(text);
    const e = await rejection(m.send.request.url.evaluate({}));
    t.equal(e.code, 'WAB_MAPPING_EVAL');
    t.match(e.message, /T2001/);
    t.equal(lineCol(e)?.split(':')[0], posOf(text, '$s + 1').split(':')[0], 'on the "$s + 1" line, not at the call site in url');
  });

  t.test('calling a non-function in the last (tail) position of a function is WAB_MAPPING_EVAL', async (t) => {
    // Also covers a misspelt function name in tail position ($nope is undefined).
    for (const body of ['$n(2)', '$nope($n)']) {
      const c = compile('$f(1)', plainRef('send.request.url'), [fn('f', `function($n) { ${body} }`)]);
      let caught: unknown;
      try {
        await c.evaluate({});
      } catch (e) {
        caught = e;
      }
      t.ok(caught instanceof WabError, `${body}: a WabError, not ${caught instanceof Error ? `${caught.constructor.name}: ${caught.message}` : String(caught)}`);
      t.equal((caught as WabError | undefined)?.code, 'WAB_MAPPING_EVAL', `${body}: code`);
    }
  });
});

t.test('limits', async (t) => {
  const limits = { maxSteps: 1e12, timeoutMs: 50, maxDepth: 500 };

  t.test('an infinite tail recursion stops with WAB_MAPPING_TIMEOUT at about the time limit', async (t) => {
    const c = compile('$loop(0)', plainRef('send.request.body'), [fn('loop', 'function($n) { $loop($n + 1) }')], limits);
    const started = Date.now();
    const e = await rejection(c.evaluate({}));
    const took = Date.now() - started;
    t.equal(e.code, 'WAB_MAPPING_TIMEOUT');
    t.match(e.message, /send\.request\.body/);
    t.ok(e.where, 'has a position');
    t.ok(took >= limits.timeoutMs - 5, `not before the limit (${took} ms)`);
    t.ok(took < limits.timeoutMs + 450, `soon after the limit (${took} ms)`);
  });

  t.test('a deep non-tail recursion stops with WAB_MAPPING_DEPTH, quickly', async (t) => {
    const count = fn('f', 'function($n){ $n = 0 ? 0 : 1 + $f($n-1) }');
    // 500 frames take 20-50 ms here, so with timeoutMs 50 DEPTH and TIMEOUT race; with a roomy time
    // limit the depth limit is what stops it, long before the time limit.
    const c = compile('$f(n)', plainRef('send.request.body'), [count], { maxSteps: 200_000, timeoutMs: 2000, maxDepth: 500 });
    const started = Date.now();
    const e = await rejection(c.evaluate({ n: 100000 }));
    t.equal(e.code, 'WAB_MAPPING_DEPTH', `${e.message} after ${Date.now() - started} ms`);
    t.ok(e.where, 'has a position');
    t.ok(Date.now() - started < 1000, 'stopped by depth, not by the 2 s time limit');
    t.equal(await c.evaluate({ n: 20 }), 20, 'a shallow recursion of the same function is fine');
    const tight = compile('$f(n)', plainRef('x'), [count], { maxSteps: 200_000, timeoutMs: 1000, maxDepth: 50 });
    t.equal((await rejection(tight.evaluate({ n: 20 }))).code, 'WAB_MAPPING_DEPTH', 'maxDepth comes from the limits given');
  });

  t.test('an infinite loop stops at the step budget, whatever the clock says', async (t) => {
    const c = compile('$loop(0)', plainRef('send.request.body'), [fn('loop', 'function($n) { $loop($n + 1) }')], { maxSteps: 10_000, timeoutMs: 60_000, maxDepth: 500 });
    const e = await rejection(c.evaluate({}));
    t.equal(e.code, 'WAB_MAPPING_TIMEOUT');
    t.match(e.message, /10000 steps/);
  });

  t.test('the expression still works after hitting a limit', async (t) => {
    const c = compile('runaway ? $loop(0) : $sq(x)', plainRef('x'), [fn('sq', 'function($n){ $n * $n }'), fn('loop', 'function($n) { $loop($n + 1) }')], limits);
    t.equal((await rejection(c.evaluate({ runaway: true }))).code, 'WAB_MAPPING_TIMEOUT');
    t.equal(await c.evaluate({ x: 7 }), 49);
  });
});

t.test('concurrent evaluations of one compiled expression', async (t) => {
  const fns = [fn('f', 'function($n){ $n = 0 ? 0 : 1 + $f($n-1) }'), fn('loop', 'function($n) { $loop($n + 1) }')];
  const text = 'runaway ? $loop(0) : {"n": n, "sum": n * 2 + $f(depth)}';

  t.test('each gets its own result, and one runaway fails alone', async (t) => {
    // The runaway is stopped by its step budget, which does not depend on what else runs: even a
    // tight wall-clock limit does not fail the 49 small evaluations sharing the event loop with it.
    const c: Compiled = compile(text, plainRef('x'), fns, { maxSteps: 20_000, timeoutMs: 5_000, maxDepth: 500 });
    t.same(await c.evaluate({ n: 1, depth: 4 }), { n: 1, sum: 6 }, 'warm-up');
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => c.evaluate({ n: i, depth: i % 5, runaway: i === 17 })));
    results.forEach((r, i) => {
      if (i === 17) {
        t.equal(r.status === 'rejected' && (r.reason as WabError).code, 'WAB_MAPPING_TIMEOUT', 'the runaway one times out');
      } else {
        t.same(r.status === 'fulfilled' ? r.value : (r.reason as Error).message, { n: i, sum: i * 2 + (i % 5) }, `evaluation ${i} gets its own result`);
      }
    });
  });

  t.test('depth is counted per evaluation, not summed over concurrent ones', async (t) => {
    const c: Compiled = compile(text, plainRef('x'), fns, { maxSteps: 200_000, timeoutMs: 5000, maxDepth: 500 });
    const fits = (depth: number) =>
      c.evaluate({ n: 0, depth }).then(
        () => true,
        () => false,
      );
    // The deepest recursion one evaluation can do alone (binary search); ten of them at once must not add up.
    let lo = 1;
    let hi = 500;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (await fits(mid)) lo = mid;
      else hi = mid - 1;
    }
    const deepest = lo;
    t.ok(deepest > 10 && deepest < 500, `depth ${deepest} fits under maxDepth alone`);
    t.notOk(await fits(deepest + 1), 'one more level does not');
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => c.evaluate({ n: i, depth: deepest })));
    const wrong = results.flatMap((r, i) => (r.status === 'fulfilled' && (r.value as { sum: number }).sum === i * 2 + deepest ? [] : [i]));
    t.same(wrong, [], 'all ten deep evaluations succeed with their own result');
  });
});

t.test('functions can call each other, in any declaration order', async (t) => {
  const c = compile('[$even(10), $even(7), $a(3)]', plainRef('x'), [
    fn('a', 'function($n){ $b($n) * 2 }'),
    fn('even', 'function($n){ $n = 0 ? true : $odd($n-1) }'),
    fn('odd', 'function($n){ $n = 0 ? false : $even($n-1) }'),
    fn('b', 'function($n){ $n + 1 }'),
  ]);
  t.same(await c.evaluate({}), [true, false, 8]);

  const m = loadOk(mapping({ functions: '  twice: "function($s) { $s & $s }"\n  shout: |\n    function($s) { $uppercase($twice($s)) }\n', url: `'"https://x.test/" & $shout("ab")'` }));
  t.equal(await m.send.request.url.evaluate({}), 'https://x.test/ABAB', 'in a loaded mapping too');
});

t.test('a failure among concurrently evaluated siblings', async (t) => {
  // jsonata runs array items and object values through Promise.all: every sibling runs to its end,
  // and with one failure that failure is the answer whatever the scheduling.
  const bind = {
    reject: (code: unknown, msg: unknown) => {
      throw new Rejection(Number(code), String(msg));
    },
  };
  for (const text of ['{"a": $reject(2001, "first"), "b": x, "c": [1, 2]}', '[$reject(2001, "first"), x, {"y": x}]', '{k: $reject(2001, "first"), "b": x}', 'items.{"v": $reject(2001, "first"), "w": x}']) {
    const c = compile(text, plainRef('x'), []);
    let thrown: unknown;
    try {
      const r = c.now!({ x: 1, k: 'a', items: [1] }, bind);
      t.notOk(isPromise(r), `${text}: not handed to jsonata`);
    } catch (e) {
      thrown = e;
    }
    t.ok(thrown instanceof Rejection && thrown.reason === 'first', `${text}: the one failure, decided on the fast path`);
    process.env.WAB_JSONATA_FASTPATH = '0';
    const slow = compile(text, plainRef('x'), []);
    delete process.env.WAB_JSONATA_FASTPATH;
    const viaJsonata = await slow.evaluate({ x: 1, k: 'a', items: [1] }, bind).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.equal((viaJsonata as Rejection | undefined)?.reason, 'first', `${text}: jsonata gives the same`);
  }
  // two failures: which comes first in time is jsonata's scheduling, so jsonata decides, for this message only
  const two = compile('{"a": $reject(2001, "first"), "b": $reject(2002, "second")}', plainRef('x'), []);
  const r = two.now!({}, bind);
  t.ok(isPromise(r), 'two failing siblings are handed to jsonata');
  await t.rejects(r as Promise<unknown>, Rejection);
  t.ok(two.fastPath, 'the expression stays on the fast path');
  t.same(two.now!({}, { reject: () => 1 }), { a: 1, b: 1 });
});

t.test('$reject inside a send expression answers failure without a request', async (t) => {
  const text = (url: string) => mapping({ url });
  const c = toCanonical(JSON.stringify({ payloadVersion: 0.1, to: '919999999999', msgId: '1|2|3|4', type: 'text', isTemplate: false, text: { body: 'hi' } }));
  if (!c.ok) throw new Error('fixture message does not normalize');
  const message: CanonicalMessage = c.message;

  const m = loadOk(text(`'message.type = "text" ? $reject(2002, "no text here") : settings.base'`));
  t.same(await planSend(m, message, { base: 'https://x.test' }), { kind: 'answer', answer: { status: 'failure', error: { code: 2002, message: 'no text here' } } });

  const inBody = loadOk(mapping({ body: '{"to": message.to, "x": $reject("2003", "refused in body")}' }));
  t.same(await planSend(inBody, message, { base: 'https://x.test' }), { kind: 'answer', answer: { status: 'failure', error: { code: 2003, message: 'refused in body' } } }, 'from the body, with a string code');

  const outOfRange = loadOk(text("'$reject(1999, \"no\")'"));
  const e = await rejection(planSend(outOfRange, message, { base: 'https://x.test' }));
  t.equal(e.code, 'WAB_MAPPING_OUTPUT', 'a code outside 2000-2004 is a mapping error');
});
