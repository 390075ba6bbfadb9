// The JSONata fast path: compiles a jsonata 2.2.2 AST (`jsonata(text).ast()`) into a tree of
// synchronous JavaScript closures that evaluate it with the same semantics, or declines.
//
// Exactness first. The closures mirror jsonata's own evaluator function by function (evaluate,
// evaluatePath, evaluateStep, evaluateFilter, evaluateGroupExpression, apply/trampoline, ...), keep its
// value model (sequences are arrays flagged `sequence`, constructed arrays `cons`, `keepSingleton`,
// `outerWrapper`), and call jsonata's *own* implementations of the synchronous built-ins ($string,
// $number, $round, $substring, $formatNumber, $toMillis, ...) with their own signature validators, taken
// from a jsonata environment once at load (FAST_IMPLEMENTATIONS answers the usual arguments of $string
// and $merge itself, tested against jsonata's results). The asynchronous built-ins (the higher-order ones and the
// regex-taking string functions) are ported here line for line in synchronous form.
//
// Anything not implemented (transforms, order-by, parent `%`, tuple binding `@`/`#`, partial
// application, $eval, ...) makes `compileAst` decline with a reason; the caller then keeps jsonata for
// that expression. A few rare situations are only known while evaluating (a binding returning a
// promise, function chaining `$f ~> $g`, recursion deeper than the limit): the closure then throws
// `Fallback`, and the caller evaluates that message through jsonata instead (expressions are pure, so
// re-running is safe).
/* eslint-disable @typescript-eslint/no-explicit-any */
import jsonata from 'jsonata';
import { fastValidator, type Signature } from './jsonata-signature.js';

export interface CompileLimits {
  maxSteps: number;
  maxDepth: number;
  timeoutMs: number;
}

/** Thrown while evaluating when the compiled form cannot finish this message exactly: use jsonata. */
export class Fallback extends Error {
  constructor(readonly reason: string) {
    super(`fast path fallback: ${reason}`);
    this.name = 'Fallback';
  }
}

/** Thrown when the step budget (or the last-resort clock) is exhausted. */
export class StepLimitExceeded extends Error {
  constructor(
    readonly kind: 'steps' | 'time',
    readonly position: number,
  ) {
    super(kind === 'steps' ? 'step limit exceeded' : 'time limit exceeded');
    this.name = 'StepLimitExceeded';
  }
}

export type CompiledFn = (input: unknown, bindings: Record<string, unknown> | undefined, limits: CompileLimits) => unknown;

export type CompileResult = { ok: true; run: CompiledFn } | { ok: false; reason: string };

class Decline extends Error {}
const decline = (reason: string): never => {
  throw new Decline(reason);
};

// ---------------------------------------------------------------------------------------------
// jsonata's built-in function definitions ({_jsonata_function, implementation, signature}), read
// synchronously from an evaluation environment: the entry hook runs before jsonata's first await.

const BUILTIN_NAMES = [
  'sum', 'count', 'max', 'min', 'average', 'string', 'substring', 'substringBefore', 'substringAfter',
  'lowercase', 'uppercase', 'length', 'trim', 'pad', 'match', 'contains', 'replace', 'split', 'join',
  'formatNumber', 'formatBase', 'formatInteger', 'parseInteger', 'number', 'floor', 'ceil', 'round', 'abs',
  'sqrt', 'power', 'random', 'boolean', 'not', 'map', 'zip', 'filter', 'single', 'reduce', 'sift', 'keys',
  'lookup', 'append', 'exists', 'spread', 'merge', 'reverse', 'each', 'error', 'assert', 'type', 'sort',
  'shuffle', 'distinct', 'base64encode', 'base64decode', 'encodeUrlComponent', 'encodeUrl',
  'decodeUrlComponent', 'decodeUrl', 'eval', 'toMillis', 'fromMillis', 'clone', 'now', 'millis',
] as const;

interface NativeDef {
  _jsonata_function: true;
  implementation: (...args: any[]) => any;
  signature?: { validate(args: unknown[], context: unknown): unknown[] };
}

const jsonataDefs: Record<string, NativeDef> = Object.create(null);
let builtinsReady = false;
{
  const probe = jsonata('0');
  probe.assign(Symbol.for('jsonata.__evaluate_entry') as unknown as string, (_n: unknown, _i: unknown, env: { lookup(n: string): unknown }) => {
    if (builtinsReady) return;
    for (const n of BUILTIN_NAMES) jsonataDefs[n] = env.lookup(n) as NativeDef;
    builtinsReady = BUILTIN_NAMES.every((n) => {
      const d = jsonataDefs[n];
      return d && d._jsonata_function === true && typeof d.implementation === 'function' && (!d.signature || typeof d.signature.validate === 'function');
    });
  });
  probe.evaluate(null).catch(() => undefined);
}

// ---------------------------------------------------------------------------------------------
// jsonata's value model and utilities (ported from jsonata 2.2.2 utils.js / functions.js).

function createSequence(...items: unknown[]): any[] {
  const s: any = [];
  s.sequence = true;
  if (items.length === 1) s.push(items[0]);
  return s;
}

/** createSequence() and createSequence(item) without the rest-parameter array (hot). */
function emptySequence(): any[] {
  const s: any = [];
  s.sequence = true;
  return s;
}
function sequenceOf(item: unknown): any[] {
  const s: any = [item];
  s.sequence = true;
  return s;
}

const isSequence = (v: any): boolean => Array.isArray(v) && (v as any).sequence === true;

function isNumeric(n: unknown): boolean {
  let isNum = false;
  if (typeof n === 'number') {
    isNum = !isNaN(n);
    if (isNum && !isFinite(n)) throw { code: 'D1001', value: n, stack: new Error().stack };
  }
  return isNum;
}

const isFunction = (arg: any): boolean => typeof arg === 'function' || (typeof arg === 'object' && arg !== null && (arg._jsonata_function === true || arg._jsonata_lambda === true));

function isArrayOfNumbers(arg: unknown): boolean {
  return Array.isArray(arg) && arg.filter((item) => !isNumeric(item)).length === 0;
}
function isArrayOfStrings(arg: unknown): boolean {
  return Array.isArray(arg) && arg.filter((item) => typeof item !== 'string').length === 0;
}

function getFunctionArity(func: any): number {
  return typeof func.arity === 'number' ? func.arity : typeof func.implementation === 'function' ? func.implementation.length : typeof func.length === 'number' ? func.length : func.arguments.length;
}

const isPromise = (arg: any): boolean => typeof arg === 'object' && arg !== null && 'then' in arg && typeof arg.then === 'function';
const isIterable = (arg: any): boolean => typeof arg === 'object' && arg !== null && Symbol.iterator in arg && 'next' in arg && typeof arg.next === 'function';
const okeys = (arg: any): string[] => (typeof arg === 'object' && arg !== null ? Object.keys(arg) : []);

const fnBoolean = (v: unknown): any => (typeof v === 'boolean' ? v : jsonataDefs.boolean!.implementation(v));
const fnString = (v: unknown): any => jsonataDefs.string!.implementation(v);
// `this` for jsonata's native implementations; only $now/$millis read the timestamp, so it is made on demand.
const FOCUS = {
  createSequence,
  options: undefined as unknown,
  input: undefined as unknown,
  environment: {
    get timestamp(): Date {
      return timestamp();
    },
  },
};

function lookup(input: any, key: string): any {
  let result: any;
  if (Array.isArray(input)) {
    result = emptySequence();
    for (let ii = 0; ii < input.length; ii++) {
      const res = lookup(input[ii], key);
      if (typeof res !== 'undefined') {
        if (Array.isArray(res)) for (const v of res) result.push(v);
        else result.push(res);
      }
    }
  } else if (input !== null && typeof input === 'object' && Object.prototype.hasOwnProperty.call(input, key) && !isFunction(input)) {
    result = input[key];
  }
  return result;
}

function append(arg1: any, arg2: any): any {
  if (typeof arg1 === 'undefined') return arg2;
  if (typeof arg2 === 'undefined') return arg1;
  // jsonata's `arg1.concat(arg2)`, by hand: concat on a flagged array takes V8's slow path, and the
  // result is a plain array (no flags) either way
  const out: any[] = [];
  if (Array.isArray(arg1)) for (let i = 0; i < arg1.length; i++) out.push(arg1[i]);
  else out.push(arg1);
  if (Array.isArray(arg2)) for (let i = 0; i < arg2.length; i++) out.push(arg2[i]);
  else out.push(arg2);
  return out;
}

function isDeepEqual(lhs: any, rhs: any): boolean {
  if (lhs === rhs) return true;
  if (typeof lhs === 'object' && typeof rhs === 'object' && lhs !== null && rhs !== null) {
    // jsonata compares its lambda objects field by field, scopes included; not worth imitating
    if (lhs instanceof Lambda || rhs instanceof Lambda) throw new Fallback('comparing functions');
    if (Array.isArray(lhs) && Array.isArray(rhs)) {
      if (lhs.length !== rhs.length) return false;
      for (let ii = 0; ii < lhs.length; ii++) if (!isDeepEqual(lhs[ii], rhs[ii])) return false;
      return true;
    }
    let lkeys = Object.getOwnPropertyNames(lhs);
    let rkeys = Object.getOwnPropertyNames(rhs);
    if (lkeys.length !== rkeys.length) return false;
    lkeys = lkeys.sort();
    rkeys = rkeys.sort();
    for (let ii = 0; ii < lkeys.length; ii++) if (lkeys[ii] !== rkeys[ii]) return false;
    for (let ii = 0; ii < lkeys.length; ii++) if (!isDeepEqual(lhs[lkeys[ii]!], rhs[lkeys[ii]!])) return false;
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Evaluation state. Evaluation is synchronous, so the current message's budget lives in a module
// variable (saved and restored around nested evaluations).

interface Run {
  steps: number;
  depth: number;
  maxSteps: number;
  maxDepth: number;
  /** The step count at which to look at the budget and the clock next (every 1024 steps at most). */
  checkAt: number;
  /** When the clock was first read for this evaluation (0: not yet), and the deadline it gives. */
  started: number;
  timeoutMs: number;
  deadline: number;
  /** jsonata fixes $now() once per evaluation (at its start); here at the first clock read. */
  timestamp: Date | undefined;
  /** The outermost scope: the caller's bindings and `$`. */
  root: Frame | null;
}
const newRun = (): Run => ({ steps: 0, depth: 0, maxSteps: Infinity, maxDepth: Infinity, checkAt: Infinity, started: 0, timeoutMs: Infinity, deadline: Infinity, timestamp: undefined, root: null });
/** `run` between evaluations. */
const IDLE = newRun();
/** The record of every evaluation not started from inside another. */
const OUTERMOST = newRun();
let run: Run = IDLE;

/** The evaluation's start on the clock, read once. */
function started(): number {
  const r = run;
  if (r.started === 0) {
    r.started = Date.now();
    r.deadline = r.started + r.timeoutMs;
  }
  return r.started;
}

function timestamp(): Date {
  return (run.timestamp ??= new Date(started()));
}

/** A name a block binds somewhere, not bound (yet) in this evaluation: looked up further out. */
const UNBOUND = Symbol('unbound');

/**
 * A scope. Scopes hold a handful of names, so two parallel arrays scanned linearly beat a Map (and
 * cost one allocation less per block and per function call).
 */
class Frame {
  names: string[];
  values: unknown[];
  /** `names` is a lambda's parameter list, shared by its calls: copied before a name is added. */
  private shared: boolean;
  /** The input of the block that made this scope: what its not-yet-made lambdas will close over. */
  input: unknown;
  constructor(
    readonly parent: Frame | null,
    names?: string[],
    values?: unknown[],
  ) {
    this.names = names ?? [];
    this.values = values ?? [];
    this.shared = names !== undefined;
    this.input = undefined;
  }
  bind(name: string, value: unknown): void {
    const i = indexIn(this.names, name);
    if (i >= 0) this.values[i] = value;
    else {
      if (this.shared) {
        this.names = this.names.slice();
        this.shared = false;
      }
      this.names.push(name);
      this.values.push(value);
    }
  }
}

/** A variable no scope of the expression can bind: only the caller's bindings or a built-in. */
function lookupGlobal(name: string): unknown {
  const root = run.root!;
  const i = indexIn(root.names, name);
  return i >= 0 ? root.values[i] : builtins[name];
}

/**
 * The one copy V8 keeps of a string used as a property name. Scope lookups compare names with `===`;
 * jsonata's parser cuts names out of the expression text (not interned), and comparing two such
 * strings means comparing characters, where two interned strings compare by identity.
 */
function intern(name: string): string {
  return Object.keys({ [name]: 0 })[0] ?? name;
}

/** names.indexOf(name) for the handful of names a scope holds, without the built-in's call overhead. */
function indexIn(names: string[], name: string): number {
  for (let i = 0; i < names.length; i++) if (names[i] === name) return i;
  return -1;
}

function lookupVar(f: Frame | null, name: string): unknown {
  for (let fr = f; fr !== null; fr = fr.parent) {
    const i = indexIn(fr.names, name);
    if (i >= 0) {
      const v = fr.values[i];
      if (v === UNBOUND) continue;
      return v instanceof LambdaParts ? made(fr, i, v) : v;
    }
  }
  return builtins[name];
}

/** A block's function definition, made into a lambda the first time its name is looked up. */
function made(fr: Frame, i: number, p: LambdaParts): Lambda {
  const l = new Lambda(p.params, p.distinct, p.body, fr, fr.input, p.signature);
  fr.values[i] = l;
  return l;
}

/** What a lambda node compiles to; a lambda is these plus the scope and input it is made in. */
class LambdaParts {
  constructor(
    readonly params: string[],
    readonly distinct: boolean,
    readonly body: Fn,
    readonly signature: Signature | undefined,
  ) {}
}

/**
 * A lambda value. A plain object rather than a JavaScript closure: creating one per evaluation (every
 * mapping function is defined afresh for each message) then costs one small allocation. Where a
 * lambda is handed to JavaScript (a binding, a native), `wrapArg` makes it callable, as jsonata does.
 */
class Lambda {
  declare readonly _jsonata_lambda: true;
  // Private fields: invisible to JSON.stringify and to `$keys`/`$string`'s walk, so a lambda in a
  // result serializes as jsonata's replacer decides, and its (possibly circular) scope never shows.
  readonly #params: string[];
  /** Distinct parameter names (the usual case): a call's scope can adopt them and the argument array. */
  readonly #distinct: boolean;
  readonly #body: Fn;
  readonly #frame: Frame;
  readonly #input: unknown;
  readonly #signature: Signature | undefined;
  constructor(params: string[], distinct: boolean, body: Fn, frame: Frame, input: unknown, signature: Signature | undefined) {
    this.#params = params;
    this.#distinct = distinct;
    this.#body = body;
    this.#frame = frame;
    this.#input = input;
    this.#signature = signature;
  }
  get arity(): number {
    return this.#params.length;
  }
  get input(): unknown {
    return this.#input;
  }
  get signature(): Signature | undefined {
    return this.#signature;
  }
  #wrapper: unknown;
  /** This lambda as jsonata hands a function argument to a native (see wrapArg). */
  wrapper(): unknown {
    return (this.#wrapper ??= makeWrapper(this));
  }
  /** `validated` is always an array made for this call (by the caller or the signature check). */
  invoke(validated: unknown[]): any {
    const params = this.#params;
    let env: Frame;
    if (this.#distinct) {
      if (validated.length !== params.length) validated = params.map((_, i) => validated[i]);
      env = new Frame(this.#frame, params, validated);
    } else {
      env = new Frame(this.#frame);
      for (let i = 0; i < params.length; i++) env.bind(params[i]!, validated[i]);
    }
    return this.#body(this.#input, env);
  }
}
Object.defineProperty(Lambda.prototype, '_jsonata_lambda', { value: true });

/** A pending tail call (jsonata's thunk lambda): resolved by the nearest `applyFn` loop. */
class Thunk {
  constructor(
    readonly proc: any,
    readonly args: unknown[],
  ) {}
}

type Fn = (input: any, f: Frame) => any;

function enter(pos: number): void {
  const r = run;
  if (++r.steps >= r.checkAt) checkBudget(pos);
  // jsonata trampolines tail calls and so supports deeper recursion than this closure tree: let it run
  // the message (it applies the same depth limit, its own way).
  if (++r.depth > r.maxDepth) throw new Fallback('depth');
}

/** Steps are counted in several places and by more than one at a time: every count ends up here. */
function checkBudget(pos: number): void {
  const r = run;
  if (r.steps > r.maxSteps) throw new StepLimitExceeded('steps', pos);
  started();
  if (Date.now() > r.deadline) throw new StepLimitExceeded('time', pos);
  r.checkAt = Math.min(r.steps + 1024, r.maxSteps + 1);
}

/**
 * Instantiates a closure template from its own source text, once per node. Closures made at one site
 * of this module share V8's feedback: a call to a child node there sees every node's children
 * (megamorphic) and nothing gets inlined. A template compiled per node has feedback of its own, so
 * its calls have one target each. Templates run outside this module's scope: everything they use
 * comes in as a parameter. Lists (items, pairs, arguments, steps) are unrolled in the source text
 * (`fns[0](input, f)`, `fns[1](input, f)`, ...) so that each call is a site of its own.
 */
function perNode(params: string[], body: string, ...deps: unknown[]): any {
  return new Function(...params, body)(...deps);
}

/** Grouping over a tuple stream is jsonata's alone (generated code throws what this makes). */
const tupleStream = (): Fallback => new Fallback('tuple stream');

/**
 * Built-ins whose usual arguments have a short way to jsonata's result; any other argument goes to
 * jsonata's implementation. $string of a finite number is JSON.stringify through jsonata's replacer,
 * which for a lone number comes down to its shortest form, after rounding to 15 significant digits
 * when it is not an integer; of a boolean, its name.
 */
const FAST_IMPLEMENTATIONS: Record<string, (...args: any[]) => unknown> = {
  string(this: unknown, arg: unknown, prettify?: unknown) {
    if (typeof arg === 'string') return arg;
    if (typeof arg === 'number' && Number.isFinite(arg)) return Number.isInteger(arg) ? String(arg) : String(Number(arg.toPrecision(15)));
    if (typeof arg === 'boolean') return arg ? 'true' : 'false';
    return jsonataDefs.string!.implementation.call(this, arg, prettify);
  },
  // jsonata merges into an object without a prototype, which V8 keeps in dictionary mode (slow to fill,
  // copy, check and serialize); a plain object holds the same own keys, in the same order, and
  // nothing in JSONata can see a prototype (property reads are own-property reads).
  merge(arg: unknown) {
    if (typeof arg === 'undefined') return undefined;
    const list = arg as unknown[];
    const result: Record<string, unknown> = {};
    for (let i = 0; i < list.length; i++) {
      if (!(i in list)) continue; // as forEach
      const obj = list[i] as Record<string, unknown>;
      if (typeof obj !== 'object' || obj === null) continue;
      for (const k of Object.keys(obj)) {
        if (k === '__proto__') Object.defineProperty(result, k, { value: obj[k], enumerable: true, writable: true, configurable: true });
        else result[k] = obj[k];
      }
    }
    return result;
  },
};

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/**
 * Built-ins called with one argument whose result, for the argument types mappings pass them, needs
 * neither the signature check nor the call: source text that returns that result from the evaluated
 * argument `a`, or falls through to the full call (which then validates and calls as always). Each
 * line is jsonata 2.2.2's implementation read for those types: $exists (`<x:b>`) is
 * `typeof arg !== 'undefined'`; $count (`<a:n>`) wraps a lone non-array value into an array, so an
 * array counts its items, nothing counts 0 and any other value but a function 1; $string of a string
 * is the string; $type names these types as written, a non-finite number being the exception left to
 * jsonata ('object' for NaN, an error for Infinity).
 */
const ONE_ARGUMENT_SHORTCUTS: Record<string, string> = {
  exists: 'return a !== undefined;',
  count: 'if (a === undefined) return 0; if (Array.isArray(a)) return a.length; if (!isFunction(a)) return 1;',
  string: "if (typeof a === 'string') return a;",
  type:
    "if (typeof a === 'string') return 'string'; if (typeof a === 'boolean') return 'boolean'; if (a === null) return 'null';" +
    " if (typeof a === 'number' && Number.isFinite(a)) return 'number'; if (typeof a === 'object' && !Array.isArray(a) && !isFunction(a)) return 'object';",
};

/** A leaf's step, and jsonata's depth limit (a leaf counts as one more level there). */
function leaf(pos: number): void {
  const r = run;
  if (++r.steps >= r.checkAt) checkBudget(pos);
  if (r.depth >= r.maxDepth) throw new Fallback('depth');
}

/** One step of the budget, counted where a node does not enter (leaves, direct built-in calls). */
function step(pos: number): void {
  if (++run.steps >= run.checkAt) checkBudget(pos);
}

/** A JSONata error from a call gets the call's position and the function's name, as jsonata does. */
function located(err: any, pos: number | undefined, procName: unknown): unknown {
  if (err && typeof err === 'object' && !(err instanceof Fallback) && !(err instanceof StepLimitExceeded)) {
    if (!err.position) err.position = pos;
    if (!err.token) err.token = procName;
  }
  return err;
}

function forgotDollarError(pos: number | undefined, token: string): unknown {
  return { code: 'T1005', stack: new Error().stack, position: pos, token };
}

function exit(): void {
  run.depth--;
}

function depthNow(): number {
  return run.depth;
}

function normalize(result: any, keepArray: boolean): any {
  if (Array.isArray(result)) {
    const seq: any = result;
    if (seq.sequence === true && !seq.tupleStream) {
      if (keepArray) seq.keepSingleton = true;
      if (seq.length === 0) return undefined;
      if (seq.length === 1) return seq.keepSingleton ? seq : seq[0];
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Applying functions (jsonata's apply / applyInner, synchronous).

function applyFn(proc: any, args: unknown[], input: unknown): any {
  let result = applyInner(proc, args, input);
  while (result instanceof Thunk) result = applyInner(result.proc, result.args, input);
  return result;
}

function applyInner(proc: any, args: unknown[], input: unknown): any {
  try {
    if (typeof proc === 'function' && proc[WRAPPED] !== undefined) return applyFn(proc[WRAPPED], args, null);
    let validated = args;
    if (proc && typeof proc.signature !== 'undefined') validated = proc.signature.validate(args, input);
    if (proc instanceof Lambda) return proc.invoke(validated);
    if (proc && proc._jsonata_function === true) {
      FOCUS.input = input;
      let result = proc.implementation.apply(FOCUS, validated);
      if (isIterable(result)) result = result.next().value;
      if (isPromise(result)) throw new Fallback('a built-in returned a promise');
      return result;
    }
    if (typeof proc === 'function') {
      const result = proc.apply(input, validated);
      if (isPromise(result)) {
        result.then(undefined, () => undefined);
        throw new Fallback('a bound function returned a promise');
      }
      return result;
    }
    throw { code: 'T1006', stack: new Error().stack };
  } catch (err: any) {
    if (proc && err && typeof err === 'object' && !(err instanceof Fallback) && !(err instanceof StepLimitExceeded)) {
      if (typeof err.token == 'undefined' && typeof proc.token !== 'undefined') err.token = proc.token;
      err.position = proc.position || err.position;
    }
    throw err;
  }
}

const WRAPPED = Symbol('wab.wrapped');

/**
 * jsonata's evaluateFunction wraps function arguments: `async (...params) => apply(arg, params, null)`.
 * The wrapper remembers what it wraps, so calling it from compiled code skips the extra layer.
 */
function wrapArg(arg: any): any {
  // A lambda or a regex literal's matcher is wrapped once: the wrapper holds no state of its own, and
  // making a function with extra properties per call is a visible cost.
  if (arg instanceof Lambda) return arg.wrapper();
  return arg[WRAPPER] ?? makeWrapper(arg);
}
const WRAPPER = Symbol('wab.wrapper');

function makeWrapper(arg: any): any {
  return callable(function (...params: unknown[]) {
    return applyFn(arg, params, null);
  }, arg);
}
// (a separate function so the wrapper stays an anonymous expression: no per-call name definition)
function callable(w: any, arg: any): any {
  w.arity = getFunctionArity(arg);
  w[WRAPPED] = arg;
  return w;
}

/**
 * A native calling back a function argument. Usually that argument was wrapped by the call (jsonata's
 * `apply(arg, params, null)`); a tail call hands natives the lambda itself, which jsonata then runs
 * with the input it was defined in (`procedure.apply`), as here.
 */
const callValue = (func: any, args: unknown[]): any => applyFn(func, args, func instanceof Lambda ? func.input : null);

// ---------------------------------------------------------------------------------------------
// Built-ins that jsonata implements asynchronously, ported to synchronous form.

function hofFuncArgs(func: any, arg1: unknown, arg2: unknown, arg3: unknown): unknown[] {
  const a = [arg1];
  const length = getFunctionArity(func);
  if (length >= 2) a.push(arg2);
  if (length >= 3) a.push(arg3);
  return a;
}

/** $replace's replacement string for one regex match ($0, $1.., $$), as jsonata expands it. */
function substitute(replacement: string, regexMatch: any): string {
  let out = '';
  let position = 0;
  let index = replacement.indexOf('$', position);
  while (index !== -1 && position < replacement.length) {
    out += replacement.substring(position, index);
    position = index + 1;
    const dollarVal = replacement.charAt(position);
    if (dollarVal === '$') {
      out += '$';
      position++;
    } else if (dollarVal === '0') {
      out += regexMatch.match;
      position++;
    } else {
      let maxDigits: number;
      if (regexMatch.groups.length === 0) maxDigits = 1;
      else maxDigits = Math.floor(Math.log(regexMatch.groups.length) * Math.LOG10E) + 1;
      index = parseInt(replacement.substring(position, position + maxDigits), 10);
      if (maxDigits > 1 && index > regexMatch.groups.length) index = parseInt(replacement.substring(position, position + maxDigits - 1), 10);
      if (!isNaN(index)) {
        if (regexMatch.groups.length > 0) {
          const submatch = regexMatch.groups[index - 1];
          if (typeof submatch !== 'undefined') out += submatch;
        }
        position += index.toString().length;
      } else {
        out += '$';
      }
    }
    index = replacement.indexOf('$', position);
  }
  out += replacement.substring(position);
  return out;
}

const REGEX = Symbol('wab.regex');
interface RegexLiteral {
  re: RegExp;
  pos: number | undefined;
  source: string;
}

/** The regex literal behind a matcher (or its wrapper), when it is one; a user's matcher function has none. */
function regexOf(token: any): RegexLiteral | undefined {
  return typeof token === 'function' ? token[REGEX] : undefined;
}

/**
 * `$replace(str, /re/, replacement)` for a replacement without `$` (it is then inserted as it is),
 * reading the RegExp as the literal's matcher does: from lastIndex 0, each next match from where the
 * last ended, none past the end of the string, and an empty match after the first an error (D1004).
 */
function replaceLiteral(str: string, literal: RegexLiteral, replacement: string, limit: number | undefined): string {
  const re = literal.re;
  re.lastIndex = 0;
  let m = re.exec(str);
  if (m === null) return str;
  let result = '';
  let position = 0;
  let count = 0;
  while (m !== null && (typeof limit === 'undefined' || count < limit)) {
    const after = re.lastIndex;
    result += str.substring(position, m.index) + replacement;
    position = m.index + m[0].length;
    count++;
    if (after >= str.length) m = null;
    else {
      re.lastIndex = after;
      m = re.exec(str);
      if (m !== null && m[0] === '') throw { code: 'D1004', stack: new Error().stack, position: literal.pos, value: literal.source };
    }
  }
  return result + str.substring(position);
}

function evaluateMatcher(matcher: any, str?: string): any {
  const result = callValue(matcher, str === undefined ? [] : [str]);
  if (result && !(typeof result.start === 'number' || result.end === 'number' || Array.isArray(result.groups) || isFunction(result.next))) {
    throw { code: 'T1010', stack: new Error().stack };
  }
  return result;
}

const ported: Record<string, (...args: any[]) => any> = {
  contains(str: any, token: any) {
    if (typeof str === 'undefined' || typeof token === 'undefined') return undefined;
    if (typeof token === 'string') return str.indexOf(token) !== -1;
    const literal = regexOf(token);
    if (literal !== undefined) {
      literal.re.lastIndex = 0;
      return literal.re.exec(str) !== null;
    }
    return typeof evaluateMatcher(token, str) !== 'undefined';
  },
  match(str: any, regex: any, limit: any) {
    if (typeof str === 'undefined') return undefined;
    if (limit < 0) throw { stack: new Error().stack, value: limit, code: 'D3040', index: 3 };
    const result = emptySequence();
    if (typeof limit === 'undefined' || limit > 0) {
      let count = 0;
      let matches = evaluateMatcher(regex, str);
      while (typeof matches !== 'undefined' && (typeof limit === 'undefined' || count < limit)) {
        result.push({ match: matches.match, index: matches.start, groups: matches.groups });
        matches = evaluateMatcher(matches.next);
        count++;
      }
    }
    return result;
  },
  replace(str: any, pattern: any, replacement: any, limit: any) {
    if (typeof str === 'undefined') return undefined;
    if (pattern === '') throw { code: 'D3010', stack: new Error().stack, value: pattern, index: 2 };
    if (limit < 0) throw { code: 'D3011', stack: new Error().stack, value: limit, index: 4 };
    let result = '';
    let position = 0;
    if (typeof limit === 'undefined' || limit > 0) {
      let count = 0;
      const literal = typeof replacement === 'string' && replacement.indexOf('$') === -1 ? regexOf(pattern) : undefined;
      if (typeof pattern === 'string') {
        let index = str.indexOf(pattern, position);
        while (index !== -1 && (typeof limit === 'undefined' || count < limit)) {
          result += str.substring(position, index);
          result += replacement;
          position = index + pattern.length;
          count++;
          index = str.indexOf(pattern, position);
        }
        result += str.substring(position);
      } else if (literal !== undefined) {
        result = replaceLiteral(str, literal, replacement, limit);
      } else {
        let matches = evaluateMatcher(pattern, str);
        if (typeof matches !== 'undefined') {
          while (typeof matches !== 'undefined' && (typeof limit === 'undefined' || count < limit)) {
            result += str.substring(position, matches.start);
            const replacedWith = typeof replacement === 'string' ? substitute(replacement, matches) : callValue(replacement, [matches]);
            if (typeof replacedWith === 'string') result += replacedWith;
            else throw { code: 'D3012', stack: new Error().stack, value: replacedWith };
            position = matches.start + matches.match.length;
            count++;
            matches = evaluateMatcher(matches.next);
          }
          result += str.substring(position);
        } else {
          result = str;
        }
      }
    } else {
      result = str;
    }
    return result;
  },
  split(str: any, separator: any, limit: any) {
    if (typeof str === 'undefined') return undefined;
    if (limit < 0) throw { code: 'D3020', stack: new Error().stack, value: limit, index: 3 };
    let result: any[] = [];
    if (typeof limit === 'undefined' || limit > 0) {
      if (typeof separator === 'string') {
        result = str.split(separator, limit);
      } else {
        let count = 0;
        let matches = evaluateMatcher(separator, str);
        if (typeof matches !== 'undefined') {
          let start = 0;
          while (typeof matches !== 'undefined' && (typeof limit === 'undefined' || count < limit)) {
            result.push(str.substring(start, matches.start));
            start = matches.end;
            matches = evaluateMatcher(matches.next);
            count++;
          }
          if (typeof limit === 'undefined' || count < limit) result.push(str.substring(start));
        } else {
          result.push(str);
        }
      }
    }
    return result;
  },
  map(arr: any, func: any) {
    if (typeof arr === 'undefined') return undefined;
    const result = emptySequence();
    for (let i = 0; i < arr.length; i++) {
      const res = callValue(func, hofFuncArgs(func, arr[i], i, arr));
      if (typeof res !== 'undefined') result.push(res);
    }
    return result;
  },
  filter(arr: any, func: any) {
    if (typeof arr === 'undefined') return undefined;
    const result = emptySequence();
    for (let i = 0; i < arr.length; i++) {
      const entry = arr[i];
      if (fnBoolean(callValue(func, hofFuncArgs(func, entry, i, arr)))) result.push(entry);
    }
    return result;
  },
  single(arr: any, func: any) {
    if (typeof arr === 'undefined') return undefined;
    let hasFoundMatch = false;
    let result: any;
    for (let i = 0; i < arr.length; i++) {
      const entry = arr[i];
      let positiveResult = true;
      if (typeof func !== 'undefined') positiveResult = fnBoolean(callValue(func, hofFuncArgs(func, entry, i, arr)));
      if (positiveResult) {
        if (!hasFoundMatch) {
          result = entry;
          hasFoundMatch = true;
        } else {
          throw { stack: new Error().stack, code: 'D3138', index: i };
        }
      }
    }
    if (!hasFoundMatch) throw { stack: new Error().stack, code: 'D3139' };
    return result;
  },
  reduce(sequence: any, func: any, init: any) {
    if (typeof sequence === 'undefined') return undefined;
    let result: any;
    const arity = getFunctionArity(func);
    if (arity < 2) throw { stack: new Error().stack, code: 'D3050', index: 1 };
    let index: number;
    if (typeof init === 'undefined' && sequence.length > 0) {
      result = sequence[0];
      index = 1;
    } else {
      result = init;
      index = 0;
    }
    while (index < sequence.length) {
      const args = [result, sequence[index]];
      if (arity >= 3) args.push(index);
      if (arity >= 4) args.push(sequence);
      result = callValue(func, args);
      index++;
    }
    return result;
  },
  sift(arg: any, func: any) {
    let result: any = Object.create(null);
    for (const item of okeys(arg)) {
      const entry = arg[item];
      if (fnBoolean(callValue(func, hofFuncArgs(func, entry, item, arg)))) result[item] = entry;
    }
    if (okeys(result).length === 0) result = undefined;
    return result;
  },
  each(obj: any, func: any) {
    const result = emptySequence();
    for (const key of okeys(obj)) {
      const val = callValue(func, hofFuncArgs(func, obj[key], key, obj));
      if (typeof val !== 'undefined') result.push(val);
    }
    return result;
  },
  sort(arr: any, comparator: any) {
    if (typeof arr === 'undefined') return undefined;
    if (arr.length <= 1) return arr;
    let comp: (a: any, b: any) => any;
    if (typeof comparator === 'undefined') {
      if (!isArrayOfNumbers(arr) && !isArrayOfStrings(arr)) throw { stack: new Error().stack, code: 'D3070', index: 1 };
      comp = (a, b) => a > b;
    } else {
      comp = (a, b) => callValue(comparator, [a, b]);
    }
    const merge = (l: any[], r: any[]): any[] => {
      // jsonata's merge_iter, iteratively: the comparator is called on the same pairs in the same order.
      const result: any[] = [];
      let i = 0;
      let j = 0;
      for (;;) {
        if (i >= l.length) {
          for (; j < r.length; j++) result.push(r[j]);
          return result;
        }
        if (j >= r.length) {
          for (; i < l.length; i++) result.push(l[i]);
          return result;
        }
        if (comp(l[i], r[j])) result.push(r[j++]);
        else result.push(l[i++]);
      }
    };
    const msort = (array: any): any => {
      if (!Array.isArray(array) || array.length <= 1) return array;
      const middle = Math.floor(array.length / 2);
      return merge(msort(array.slice(0, middle)), msort(array.slice(middle)));
    };
    return msort(arr);
  },
  now(picture: any, timezone: any) {
    return jsonataDefs.fromMillis!.implementation.call(FOCUS, timestamp().getTime(), picture, timezone);
  },
  millis() {
    return timestamp().getTime();
  },
};

/** Built-ins as values: jsonata's own definitions, with the async ones swapped for the ports above. */
const builtins: Record<string, unknown> = Object.create(null);
if (builtinsReady) {
  for (const n of BUILTIN_NAMES) {
    const def = jsonataDefs[n]!;
    const impl = ported[n];
    const signature = def.signature ? { definition: (def.signature as unknown as Signature).definition, validate: fastValidator(def.signature as unknown as Signature) } : undefined;
    builtins[n] = { _jsonata_function: true, implementation: impl ?? def.implementation, signature };
  }
  // same parameter counts as jsonata's implementations, for getFunctionArity when passed as values
  for (const n of Object.keys(ported)) {
    const def = jsonataDefs[n];
    if (def && def.implementation.length !== ported[n]!.length) builtinsReady = false;
  }
}
const UNSUPPORTED_BUILTINS = new Set(['eval']);
/** The ported built-ins that call function arguments back (through callValue). */
const HIGHER_ORDER = new Set(['map', 'filter', 'single', 'reduce', 'sift', 'each', 'sort', 'replace', 'match', 'split', 'contains'].map((n) => builtins[n]));

// ---------------------------------------------------------------------------------------------
// The compiler: one closure per AST node, mirroring jsonata's evaluate().

interface Node {
  type: string;
  value?: any;
  position?: number;
  [k: string]: any;
}

/** Every variable name the expression binds somewhere (`$x :=`, lambda parameters). */
function boundNames(ast: unknown): Set<string> {
  const names = new Set<string>();
  const seen = new Set<object>();
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || v instanceof RegExp || seen.has(v)) return;
    seen.add(v);
    if (Array.isArray(v)) {
      for (const item of v) walk(item);
      return;
    }
    const n = v as Node;
    if (n.type === 'bind' && n.lhs && typeof n.lhs.value === 'string') names.add(n.lhs.value);
    if (n.type === 'lambda' && Array.isArray(n.arguments)) for (const a of n.arguments) if (typeof a?.value === 'string') names.add(a.value);
    for (const k of Object.keys(n)) walk(n[k]);
  };
  walk(ast);
  return names;
}

class Compiler {
  constructor(private readonly bound: Set<string>) {}

  /** How a variable is read: names the expression never binds skip the scope chain. */
  reader(text: string): (f: Frame) => unknown {
    const name = intern(text);
    return this.bound.has(name) ? (f) => lookupVar(f, name) : () => lookupGlobal(name);
  }

  /** Compiles a node as jsonata's evaluate(): counts, evaluates, applies predicates/group, normalizes. */
  node(n: Node): Fn {
    if (n.tuple || n.focus !== undefined || n.index !== undefined || n.seekingParent || n.ancestor) decline(`tuple/parent binding at ${n.position}`);
    const inner = this.inner(n);
    const preds = n.predicate ? (n.predicate as { type: string; expr: Node }[]).map((p) => this.filter(p)) : undefined;
    const group = n.type !== 'path' && n.group ? this.group(n.group) : undefined;
    const keepArray = n.keepArray === true;
    const pos = n.position ?? 0;
    if ((n.type === 'string' || n.type === 'number' || n.type === 'value') && !preds && !group && !keepArray) {
      const v = n.value;
      return () => v;
    }
    // Leaves that cannot nest (a variable, a chain of names) skip the depth bookkeeping; they still
    // count as steps, and are normalized only when a sequence can come out.
    if (!preds && !group && !keepArray && n.type === 'variable' && n.value !== '' && !UNSUPPORTED_BUILTINS.has(n.value)) {
      const read = this.reader(n.value as string);
      // (leaf: a step and the depth limit; a leaf adds no nesting of its own, but jsonata counts it
      // as one more level)
      return perNode(['leaf', 'pos', 'read', 'normalize'], 'return (_input, f) => { leaf(pos); const v = read(f); return Array.isArray(v) ? normalize(v, false) : v; };', leaf, pos, read, normalize);
    }
    if (!preds && !group && !keepArray && n.type === 'path' && isPlainChain(n)) {
      return inner;
    }
    // Operators other than `..` give a single value and an object constructor an object: nothing to
    // normalize. They still count as steps and as depth (recursion nests through them).
    if (!preds && !group && !keepArray && ((n.type === 'binary' && n.value !== '..') || (n.type === 'unary' && n.value === '{'))) {
      return perNode(['enter', 'exit', 'inner', 'pos'], 'return (input, f) => { enter(pos); const v = inner(input, f); exit(); return v; };', enter, exit, inner, pos);
    }
    if (!preds && !group) {
      return perNode(
        ['enter', 'exit', 'inner', 'pos', 'normalize', 'keepArray'],
        'return (input, f) => { enter(pos); const r = inner(input, f); exit(); return normalize(r, keepArray); };',
        enter, exit, inner, pos, normalize, keepArray,
      );
    }
    return (input, f) => {
      enter(pos);
      let r = inner(input, f);
      if (preds) for (const p of preds) r = p(r, f);
      if (group) r = group(r, f);
      run.depth--;
      return normalize(r, keepArray);
    };
  }

  inner(n: Node): Fn {
    switch (n.type) {
      case 'path':
        return this.path(n);
      case 'binary':
        return this.binary(n);
      case 'unary':
        return this.unary(n);
      case 'name': {
        // jsonata's lookup; a single object (the usual input) is read at this node's own property site
        const name = n.value as string;
        const key = JSON.stringify(name);
        const read = name in Object.prototype ? `(hasOwn(input, ${key}) ? input[${key}] : undefined)` : `((p = protoOf(input)) === OP || p === null || hasOwn(input, ${key}) ? input[${key}] : undefined)`;
        return perNode(
          ['lookup', 'hasOwn', 'protoOf', 'OP'],
          `return (input) => {
            if (typeof input !== 'object' || input === null) return undefined;
            if (Array.isArray(input)) return lookup(input, ${key});
            if (input._jsonata_function === true || input._jsonata_lambda === true) return undefined;
            let p;
            return ${read};
          };`,
          lookup, hasOwn, Object.getPrototypeOf, Object.prototype,
        );
      }
      case 'string':
      case 'number':
      case 'value': {
        const v = n.value;
        return () => v;
      }
      case 'wildcard':
        return (input) => wildcard(input);
      case 'descendant':
        return (input) => descendants(input);
      case 'condition':
        return this.condition(n);
      case 'block':
        return this.block(n);
      case 'bind': {
        const name = intern(n.lhs.value as string);
        const rhs = this.node(n.rhs);
        return (input, f) => {
          const v = rhs(input, f);
          f.bind(name, v);
          return v;
        };
      }
      case 'regex':
        return this.regex(n);
      case 'function':
        return this.call(n, false);
      case 'variable':
        return this.variable(n);
      case 'lambda':
        return this.lambda(n);
      case 'apply':
        return this.apply(n);
      default:
        return decline(`${n.type} expressions are not compiled`);
    }
  }

  variable(n: Node): Fn {
    const name = n.value as string;
    if (name === '') return (input) => (input && input.outerWrapper ? input[0] : input);
    if (UNSUPPORTED_BUILTINS.has(name)) decline(`$${name} is not compiled`);
    const read = this.reader(name);
    return (_input, f) => read(f);
  }

  path(n: Node): Fn {
    const steps = n.steps as Node[];
    const firstIsVariable = steps[0]!.type === 'variable';
    const compiled = steps.map((step, ii) => {
      if (step.type === 'sort') decline('order-by is not compiled');
      if (step.tuple || step.focus !== undefined || step.index !== undefined) decline('tuple binding (@, #) is not compiled');
      if (ii === 0 && step.consarray && step.stages) decline('stages on a constructed first step');
      if (ii === 0 && step.consarray) return { cons: true, fn: this.node(step), stages: undefined as undefined | ((r: any, f: Frame) => any)[] };
      const stages = step.stages ? (step.stages as { type: string; expr: Node }[]).map((s) => (s.type === 'filter' ? this.filter(s) : decline('index stage is not compiled'))) : undefined;
      return { cons: false, fn: this.node(step), stages };
    });
    const last = compiled.length - 1;
    const keepSingletonArray = n.keepSingletonArray === true;
    const group = n.group ? this.group(n.group) : undefined;
    // jsonata's evaluatePath and evaluateStep, unrolled over this path's steps: each step's calls are
    // their own sites. A step maps over the input sequence and flattens the results into a sequence;
    // the last step's one result that is an array (not a sequence) comes out as it is.
    let body = `return (input, f) => {\nlet inputSequence = ${firstIsVariable ? 'sequenceOf(input)' : 'Array.isArray(input) ? input : sequenceOf(input)'};\nlet resultSequence;\nwalk: {\n`;
    compiled.forEach((step, ii) => {
      if (step.cons) {
        body += `resultSequence = fns[${ii}](inputSequence, f);\n`;
      } else {
        // (the sequence is made with its first item: a one-item array, where an empty one would grow
        // to 17 slots at its first push, and most steps give one item)
        body += `{\nlet seq;\nlet count = 0;\nlet first;\nfor (let k = 0; k < inputSequence.length; k++) {\nlet res = fns[${ii}](inputSequence[k], f);\n`;
        (step.stages ?? []).forEach((_, j) => (body += `res = stages[${ii}][${j}](res, f);\n`));
        body += 'if (res === undefined) continue;\nif (count++ === 0) first = res;\n';
        body += 'if (!Array.isArray(res) || res.cons) { if (seq === undefined) seq = sequenceOf(res); else seq.push(res); }\n';
        body += 'else { if (seq === undefined) seq = emptySequence(); for (let j = 0; j < res.length; j++) seq.push(res[j]); }\n}\nif (seq === undefined) seq = emptySequence();\n';
        body += ii === last ? 'resultSequence = count === 1 && Array.isArray(first) && !isSequence(first) ? first : seq;\n}\n' : 'resultSequence = seq;\n}\n';
      }
      if (ii < last) body += 'if (resultSequence === undefined || resultSequence.length === 0) break walk;\ninputSequence = resultSequence;\n';
    });
    body += '}\n';
    if (keepSingletonArray) body += 'if (Array.isArray(resultSequence) && resultSequence.cons && !resultSequence.sequence) resultSequence = sequenceOf(resultSequence);\nresultSequence.keepSingleton = true;\n';
    if (group) body += 'resultSequence = group(resultSequence, f);\n';
    body += 'return resultSequence;\n};';
    const general: Fn = perNode(
      ['fns', 'stages', 'group', 'sequenceOf', 'emptySequence', 'isSequence'],
      body,
      compiled.map((st) => st.fn),
      compiled.map((st) => st.stages ?? []),
      group,
      sequenceOf,
      emptySequence,
      isSequence,
    );
    if (!isPlainChain(n)) return general;
    // the chain is returned by node() as is, so its fallback does the node's counting and normalizing
    const wrapped: Fn = (input, f) => {
      enter(0);
      const r = general(input, f);
      run.depth--;
      return normalize(r, false);
    };
    return plainChain(steps, wrapped, firstIsVariable ? this.reader(steps[0]!.value as string) : undefined);
  }

  filter(p: { type: string; expr: Node }): (input: any, f: Frame) => any {
    const predicate = p.expr;
    if (predicate.type === 'number') {
      const literal = predicate.value as number;
      return (input) => {
        let results: any = emptySequence();
        if (!Array.isArray(input)) input = sequenceOf(input);
        let index = Math.floor(literal);
        if (index < 0) index = input.length + index;
        const item = input[index];
        if (typeof item !== 'undefined') {
          if (Array.isArray(item)) results = item;
          else results.push(item);
        }
        return results;
      };
    }
    const pred = this.node(predicate);
    return perNode(
      ['pred', 'emptySequence', 'sequenceOf', 'tupleStream', 'isNumeric', 'isArrayOfNumbers', 'fnBoolean'],
      // a boolean or nothing (the usual predicate) decides at once; numbers select by index
      `return (input, f) => {
        let results = emptySequence();
        if (Array.isArray(input) && input.tupleStream) throw tupleStream();
        if (!Array.isArray(input)) input = sequenceOf(input);
        for (let index = 0; index < input.length; index++) {
          const item = input[index];
          let res = pred(item, f);
          if (res === true) {
            if (results.length === 0) results = sequenceOf(item);
            else results.push(item);
            continue;
          }
          if (res === false || res === undefined) continue;
          if (isNumeric(res)) res = [res];
          if (isArrayOfNumbers(res)) {
            for (const ires of res) {
              let ii = Math.floor(ires);
              if (ii < 0) ii = input.length + ii;
              if (ii === index) results.push(item);
            }
          } else if (fnBoolean(res)) {
            results.push(item);
          }
        }
        return results;
      };`,
      pred, emptySequence, sequenceOf, tupleStream, isNumeric, isArrayOfNumbers, fnBoolean,
    );
  }

  binary(n: Node): Fn {
    const op = n.value as string;
    const lhs = this.node(n.lhs);
    const rhs = this.node(n.rhs);
    const pos = n.position;
    const fail = (err: any): never => {
      if (err && typeof err === 'object' && !(err instanceof Fallback) && !(err instanceof StepLimitExceeded) && !(err instanceof Error)) {
        err.position = pos;
        err.token = op;
      }
      throw err;
    };
    /** `g(l, r)` with jsonata's error position; `shortcut` is source text that may return first. */
    const guarded = (g: (l: any, r: any) => any, shortcut = ''): Fn =>
      perNode(
        ['lhs', 'rhs', 'g', 'fail'],
        `return (input, f) => { const l = lhs(input, f); const r = rhs(input, f); ${shortcut} try { return g(l, r); } catch (err) { return fail(err); } };`,
        lhs, rhs, g, fail,
      );
    switch (op) {
      case 'and':
      case 'or':
        return perNode(
          ['lhs', 'rhs', 'boolize', 'fail'],
          `return (input, f) => { const l = lhs(input, f); try { return boolize(l) ${op === 'and' ? '&&' : '||'} boolize(rhs(input, f)); } catch (err) { return fail(err); } };`,
          lhs, rhs, boolize, fail,
        );
      case '+':
      case '-':
      case '*':
      case '/':
      case '%':
        return guarded((l, r) => numeric(l, r, op));
      case '=':
      case '!=': {
        // against a literal (`$h.type = "text"`), deep equality is `===` and nothing can throw
        const literal = isLiteral(n.rhs) ? n.rhs.value : isLiteral(n.lhs) ? n.lhs.value : NO_LITERAL;
        if (literal !== NO_LITERAL) {
          const other = isLiteral(n.rhs) ? lhs : rhs;
          return perNode(
            ['other', 'literal'],
            op === '=' ? 'return (input, f) => other(input, f) === literal;' : 'return (input, f) => { const v = other(input, f); return v !== undefined && v !== literal; };',
            other, literal,
          );
        }
        return op === '='
          ? guarded((l, r) => (typeof l === 'undefined' || typeof r === 'undefined' ? false : isDeepEqual(l, r)))
          : guarded((l, r) => (typeof l === 'undefined' || typeof r === 'undefined' ? false : !isDeepEqual(l, r)));
      }
      case '<':
      case '<=':
      case '>':
      case '>=':
        // two numbers (`$count(x) > 0`, `status >= 200`) compare as JavaScript does; anything else goes
        // through jsonata's checks
        return guarded((l, r) => comparison(l, r, op), `if (typeof l === 'number' && typeof r === 'number') return l ${op} r;`);
      case '&':
        // two strings (nearly always) are simply joined: $string of a string is itself
        return guarded(
          (l, r) => {
            const ls = typeof l !== 'undefined' ? fnString(l) : '';
            const rs = typeof r !== 'undefined' ? fnString(r) : '';
            return ls.concat(rs);
          },
          "if (typeof l === 'string' && typeof r === 'string') return l + r;",
        );
      case '..':
        return guarded(range);
      case 'in': {
        // `$t in ["image", "video"]`: the list is made once (`in` only reads it)
        const items = n.rhs.type === 'unary' && n.rhs.value === '[' && !n.rhs.predicate && !n.rhs.group && !n.rhs.keepArray && !n.rhs.consarray && (n.rhs.expressions as Node[]).every(isLiteral) ? (n.rhs.expressions as Node[]).map((e) => e.value) : undefined;
        if (items && items.length > 0) {
          return perNode(['lhs', 'items'], 'return (input, f) => { const l = lhs(input, f); return l !== undefined && items.includes(l); };', lhs, items);
        }
        return guarded((l, r) => {
          if (typeof l === 'undefined' || typeof r === 'undefined') return false;
          if (!Array.isArray(r)) r = [r];
          for (let i = 0; i < r.length; i++) if (r[i] === l) return true;
          return false;
        });
      }
      default:
        return decline(`operator ${op} is not compiled`);
    }
  }

  unary(n: Node): Fn {
    switch (n.value) {
      case '-': {
        const e = this.node(n.expression);
        const pos = n.position;
        return (input, f) => {
          const result = e(input, f);
          if (typeof result === 'undefined') return undefined;
          if (isNumeric(result)) return -result;
          throw { code: 'D1002', stack: new Error().stack, position: pos, token: '-', value: result };
        };
      }
      case '[': {
        const items = (n.expressions as Node[]).map((item) => ({ nested: item.value === '[', fn: this.node(item) }));
        const cons = n.consarray === true;
        // Items as concurrent siblings (siblingError); an item that is itself an array constructor is
        // kept whole, any other array value is appended item by item (in place: `result` is fresh).
        // When every item gives one value that is kept as it is (the usual case), the array is made at
        // its final size: pushing into an empty one would grow it to 17 slots at the first push.
        let body = 'return (input, f) => {\nlet err = NO_ERROR;\nconst depth = depthNow();\n';
        items.forEach((_, i) => {
          body += `let v${i};\ntry { v${i} = fns[${i}](input, f); } catch (e) { err = siblingError(err, e, depth); v${i} = undefined; }\n`;
        });
        body += 'if (err !== NO_ERROR) throw err;\nlet result;\n';
        const whole = items.map((item, i) => (item.nested ? `v${i} !== undefined` : `v${i} !== undefined && !Array.isArray(v${i})`));
        if (items.length > 0) body += `if (${whole.join(' && ')}) result = [${items.map((_, i) => `v${i}`).join(', ')}];\nelse {\n`;
        body += 'result = [];\n';
        items.forEach((item, i) => {
          body += item.nested
            ? `if (v${i} !== undefined) result.push(v${i});\n`
            : `if (v${i} !== undefined) { if (Array.isArray(v${i})) { for (let k = 0; k < v${i}.length; k++) result.push(v${i}[k]); } else result.push(v${i}); }\n`;
        });
        if (items.length > 0) body += '}\n';
        if (cons) body += "Object.defineProperty(result, 'cons', { enumerable: false, configurable: false, value: true });\n";
        body += 'return result;\n};';
        return perNode(['fns', 'siblingError', 'NO_ERROR', 'depthNow'], body, items.map((item) => item.fn), siblingError, NO_ERROR, depthNow);
      }
      case '{': {
        const group = this.group(n);
        return (input, f) => group(input, f);
      }
      default:
        return decline(`unary ${n.value} is not compiled`);
    }
  }

  group(g: Node): (input: any, f: Frame) => any {
    const pairs = (g.lhs as [Node, Node][]).map(([k, v]) => {
      // a literal string key needs no evaluation (nor counting): the common case in mappings
      const literalKey = k.type === 'string' && !k.predicate && !k.group && !k.keepArray ? (k.value as string) : undefined;
      return { literalKey, key: literalKey === undefined ? this.node(k) : undefined, value: this.node(v) };
    });
    const pos = g.position;
    // Distinct literal keys (the usual constructor): every input item lands in every key, and a key's
    // value is evaluated once against the item (one item) or the appended items (several), in
    // jsonata's key order. jsonata builds objects without a prototype, which V8 keeps in dictionary
    // mode (slower to build and to serialize); without a `__proto__` key a plain object is the same
    // data. A `__proto__` key is left to the general grouping below.
    const literalKeys = pairs.map((p) => p.literalKey);
    if (
      literalKeys.every((k) => k !== undefined && k !== '_jsonata_lambda' && k !== '_jsonata_function' && k !== '__proto__') &&
      new Set(literalKeys).size === pairs.length
    ) {
      const order = orderKeys(pairs.map((p, i) => ({ key: p.literalKey!, i })));
      return literalObject(order.map((o) => ({ key: o.key, value: pairs[o.i]!.value })));
    }
    const single = singleItemObject(pairs, pos);
    const general = (input: any, f: Frame): any => {
      const result = Object.create(null);
      const groups: Record<string, { data: any; exprIndex: number }> = Object.create(null);
      for (let itemIndex = 0; itemIndex < input.length; itemIndex++) {
        const item = input[itemIndex];
        for (let pairIndex = 0; pairIndex < pairs.length; pairIndex++) {
          const pair = pairs[pairIndex]!;
          const key = pair.literalKey !== undefined ? pair.literalKey : pair.key!(item, f);
          if (typeof key !== 'string' && key !== undefined) throw { code: 'T1003', stack: new Error().stack, position: pos, value: key };
          if (key !== undefined) {
            if (key === '_jsonata_lambda' || key === '_jsonata_function') throw { code: 'D1013', stack: new Error().stack, position: pos, value: key };
            if (Object.prototype.hasOwnProperty.call(groups, key)) {
              if (groups[key]!.exprIndex !== pairIndex) throw { code: 'D1009', stack: new Error().stack, position: pos, value: key };
              groups[key]!.data = append(groups[key]!.data, item);
            } else {
              groups[key] = { data: item, exprIndex: pairIndex };
            }
          }
        }
      }
      const keys = Object.keys(groups);
      let err: unknown = NO_ERROR;
      const depth = run.depth;
      for (let k = 0; k < keys.length; k++) {
        const key = keys[k]!;
        const entry = groups[key]!;
        let value;
        try {
          value = pairs[entry.exprIndex]!.value(entry.data, f);
        } catch (e) {
          err = siblingError(err, e, depth);
          continue;
        }
        if (typeof value !== 'undefined') result[key] = value;
      }
      if (err !== NO_ERROR) throw err;
      return result;
    };
    return perNode(
      ['single', 'general', 'NOT_SINGLE', 'tupleStream', 'sequenceOf'],
      `return (input, f) => {
        let item = input;
        if (Array.isArray(input)) {
          if (input.tupleStream) throw tupleStream();
          if (input.length === 0) input.push(undefined);
          if (input.length !== 1) return general(input, f);
          item = input[0];
        }
        const r = single(item, f);
        return r !== NOT_SINGLE ? r : general(Array.isArray(input) ? input : sequenceOf(input), f);
      };`,
      single, general, NOT_SINGLE, tupleStream, sequenceOf,
    );
  }

  condition(n: Node): Fn {
    const cond = this.node(n.condition);
    const then = this.tailOrNode(n.then);
    const otherwise = n.else !== undefined ? this.tailOrNode(n.else) : undefined;
    return perNode(
      ['fnBoolean', 'cond', 'then', 'otherwise'],
      `return (input, f) => { if (fnBoolean(cond(input, f))) return then(input, f); return ${otherwise ? 'otherwise(input, f)' : 'undefined'}; };`,
      fnBoolean, cond, then, otherwise,
    );
  }

  block(n: Node): Fn {
    const all = n.expressions as Node[];
    // `$f := function(...) {...};` at the head of a block (how every mapping's functions arrive: the
    // prelude compile() puts in front of each expression): the scope is made with those lambdas in it
    // at once. Binding a lambda has no effect but the binding, so doing the leading ones together is
    // the same as one by one; they count the same steps (the bind and the lambda node each).
    let lead = 0;
    while (lead < all.length - 1 && isPlainLambdaBind(all[lead]!)) lead++;
    const names = all.slice(0, lead).map((e) => intern(e.lhs.value as string));
    if (lead >= 2 && new Set(names).size === names.length) {
      const makers = all.slice(0, lead).map((e) => this.lambdaParts(e.rhs));
      const rest = all.slice(lead).map((e) => this.tailOrNode(e));
      const pos = n.position ?? 0;
      // The lambdas themselves are made when first looked up (lookupVar): a message uses a few of
      // the mapping's functions, and making the others is allocation for nothing.
      let body = 'return (input, f) => {\nsteps(pos);\nconst frame = new Frame(f, names, makers.slice());\nframe.input = input;\n';
      body += `let result;\n${rest.map((_, i) => `result = rest[${i}](input, frame);\n`).join('')}return result;\n};`;
      const steps = (at: number) => {
        const r = run;
        r.steps += 2 * lead;
        if (r.steps >= r.checkAt) checkBudget(at);
      };
      return perNode(['steps', 'pos', 'Frame', 'names', 'makers', 'rest'], body, steps, pos, Frame, names, makers, rest);
    }
    const exprs = all.map((e) => this.tailOrNode(e));
    const bound = blockBinds(n);
    if (bound.length > 0) {
      const unbound = bound.map(() => UNBOUND);
      return perNode(
        ['Frame', 'exprs', 'bound', 'unbound'],
        `return (input, f) => {\nconst frame = new Frame(f, bound, unbound.slice());\nlet result;\n${exprs.map((_, i) => `result = exprs[${i}](input, frame);\n`).join('')}return result;\n};`,
        Frame,
        exprs,
        bound,
        unbound,
      );
    }
    return perNode(
      ['Frame', 'exprs'],
      `return (input, f) => {\nconst frame = new Frame(f);\nlet result;\n${exprs.map((_, i) => `result = exprs[${i}](input, frame);\n`).join('')}return result;\n};`,
      Frame,
      exprs,
    );
  }

  /** Thunk lambdas (tail calls marked by jsonata's parser) only appear in tail positions of lambda bodies. */
  tailOrNode(n: Node): Fn {
    if (n.type === 'lambda' && n.thunk === true) return this.thunk(n);
    return this.node(n);
  }

  /**
   * jsonata evaluates a thunk lambda to a procedure that its apply() loop then calls with the outer
   * call's input as context, skipping the normalization of the enclosing nodes; Thunk reproduces that.
   */
  thunk(n: Node): Fn {
    const call = n.body as Node;
    if (n.predicate || n.group || n.keepArray || call.keepArray || call.group) decline('tail call with predicate/grouping');
    const proc = this.node(call.procedure);
    const args = (call.arguments as Node[]).map((a) => this.node(a));
    const pos = n.position ?? 0;
    return (input, f) => {
      enter(pos);
      const p = proc(input, f);
      if (p === null || (typeof p !== 'object' && typeof p !== 'function')) throw new Fallback('tail call of a non-function');
      const evaluated = args.map((a) => a(input, f));
      // jsonata's trampoline passes function arguments unwrapped. Lambdas take them alike, and so do the
      // higher-order built-ins (ported here, they call back through callValue); what any other native
      // or a JavaScript binding would make of a raw lambda is left to jsonata.
      if (!(p instanceof Lambda) && !HIGHER_ORDER.has(p) && evaluated.some(isFunction)) throw new Fallback('tail call passing a function to a native');
      run.depth--;
      return new Thunk(p, evaluated);
    };
  }

  regex(n: Node): Fn {
    const source = n.value as RegExp;
    const pos = n.position;
    // jsonata makes a RegExp per evaluation; one per literal does the same work, because every use
    // sets lastIndex right before exec and reads it right after (synchronously), and `next` carries
    // its own position, so a nested evaluation of the same literal cannot disturb an outer one.
    const re = new RegExp(source);
    const matcher = (str: string, fromIndex?: number): any => {
      re.lastIndex = fromIndex || 0;
      const match = re.exec(str);
      if (match === null) return undefined;
      const after = re.lastIndex;
      const result: any = { match: match[0], start: match.index, end: match.index + match[0].length, groups: [] as unknown[] };
      if (match.length > 1) for (let i = 1; i < match.length; i++) result.groups.push(match[i]);
      result.next = () => {
        if (after >= str.length) return undefined;
        const next = matcher(str, after);
        if (next && next.match === '') throw { code: 'D1004', stack: new Error().stack, position: pos, value: source.source };
        return next;
      };
      return result;
    };
    // $contains, and $replace with a replacement free of `$`, read the RegExp itself (regexOf): the
    // same matches, without a match object and a closure per match
    const literal: RegexLiteral = { re, pos, source: source.source };
    const wrapper = makeWrapper(matcher);
    wrapper[REGEX] = literal;
    (matcher as any)[REGEX] = literal;
    (matcher as any)[WRAPPER] = wrapper;
    return () => matcher;
  }

  /** jsonata's evaluateFunction; `applyto` is the `~>` left side, passed as the first argument. */
  call(n: Node, applyto: boolean): (input: any, f: Frame, context?: any) => any {
    const procNode = n.procedure as Node;
    if (procNode.type === 'variable' && UNSUPPORTED_BUILTINS.has(procNode.value)) decline(`$${procNode.value} is not compiled`);
    const proc = this.node(procNode);
    const args = (n.arguments as Node[]).map((a) => {
      if (a.type === 'operator' && a.value === '?') decline('partial application is not compiled');
      return this.node(a);
    });
    const pos = n.position;
    const argCount = args.length + (applyto ? 1 : 0);
    const procName = procNode.type === 'path' ? procNode.steps[0].value : procNode.value;
    const forgotDollar = procNode.type === 'path' ? (procNode.steps[0].value as string) : undefined;
    // sized up front, and unrolled: each argument is its own call site
    let argsBody = `return (input, f, context) => {\nconst evaluated = new Array(${argCount});\nlet a;\n`;
    let k = 0;
    if (applyto) argsBody += `evaluated[${k++}] = context;\n`;
    for (let i = 0; i < args.length; i++) argsBody += `a = args[${i}](input, f);\nevaluated[${k++}] = isFunction(a) ? wrapArg(a) : a;\n`;
    argsBody += 'return evaluated;\n};';
    const evaluateArgs = perNode(['args', 'isFunction', 'wrapArg'], argsBody, args, isFunction, wrapArg);
    const general = perNode(
      ['proc', 'evaluateArgs', 'forgotDollar', 'lookupVar', 'forgotDollarError', 'Lambda', 'Thunk', 'applyInner', 'applyFn', 'located', 'pos', 'procName'],
      `return (input, f, context) => {
        const p = proc(input, f);
        if (typeof p === 'undefined' && forgotDollar !== undefined && lookupVar(f, forgotDollar)) throw forgotDollarError(pos, forgotDollar);
        const evaluated = evaluateArgs(input, f, context);
        try {
          // a mapping's own function without a signature: applyInner would only pass the arguments on
          if (p instanceof Lambda && p.signature === undefined) {
            let result = p.invoke(evaluated);
            while (result instanceof Thunk) result = applyInner(result.proc, result.args, input);
            return result;
          }
          return applyFn(p, evaluated, input);
        } catch (err) {
          throw located(err, pos, procName);
        }
      };`,
      proc, evaluateArgs, forgotDollar, lookupVar, forgotDollarError, Lambda, Thunk, applyInner, applyFn, located, pos, procName,
    ) as (input: any, f: Frame, context?: any) => any;
    // A built-in the expression never rebinds (the caller's bindings still may: checked per call) is
    // called directly: jsonata's own implementation, the memoized signature check, no trampoline.
    const name = procNode.type === 'variable' ? intern(procNode.value as string) : '';
    const def = name !== '' && !this.bound.has(name) && !procNode.predicate && !procNode.group && !procNode.keepArray ? (builtins[name] as NativeDef | undefined) : undefined;
    if (!def) return general;
    // One argument whose type may decide the result (ONE_ARGUMENT_SHORTCUTS): evaluated on its own,
    // and put in an argument array only when the built-in is really called.
    const shortcut = !applyto && args.length === 1 && def.signature ? ONE_ARGUMENT_SHORTCUTS[name] : undefined;
    const evaluate = shortcut !== undefined ? `const a = arg(input, f);\n${shortcut}\nconst evaluated = [isFunction(a) ? wrapArg(a) : a];` : 'const evaluated = evaluateArgs(input, f, context);';
    return perNode(
      ['lookupGlobal', 'name', 'def', 'general', 'step', 'procPos', 'evaluateArgs', 'arg', 'isFunction', 'wrapArg', 'signature', 'FOCUS', 'impl', 'isPromise', 'promiseFallback', 'located', 'pos', 'procName'],
      `return (input, f, context) => {
        if (lookupGlobal(name) !== def) return general(input, f, context);
        step(procPos);
        ${evaluate}
        try {
          const validated = ${def.signature ? 'signature.validate(evaluated, input)' : 'evaluated'};
          FOCUS.input = input;
          const result = impl.apply(FOCUS, validated);
          if (isPromise(result)) throw promiseFallback();
          return result;
        } catch (err) {
          throw located(err, pos, procName);
        }
      };`,
      lookupGlobal, name, def, general, step, procNode.position ?? 0, evaluateArgs, args[0], isFunction, wrapArg, def.signature, FOCUS, FAST_IMPLEMENTATIONS[name] ?? def.implementation, isPromise, () => new Fallback('a built-in returned a promise'), located, pos, procName,
    );
  }

  lambda(n: Node): Fn {
    const { params, distinct, body, signature } = this.lambdaParts(n);
    return (input, f) => new Lambda(params, distinct, body, f, input, signature);
  }

  lambdaParts(n: Node): LambdaParts {
    if (n.thunk) decline('thunk outside a tail position');
    const params = (n.arguments as Node[]).map((a) => intern(a.value as string));
    const signature: Signature | undefined = n.signature ? { definition: n.signature.definition, validate: fastValidator(n.signature) } : undefined;
    return new LambdaParts(params, new Set(params).size === params.length, this.tailOrNode(n.body), signature);
  }

  apply(n: Node): Fn {
    const lhs = this.node(n.lhs);
    const rhsNode = n.rhs as Node;
    const pos = n.position;
    if (rhsNode.type === 'function') {
      if (rhsNode.predicate || rhsNode.group) decline('~> into a call with predicate/grouping');
      const call = this.call(rhsNode, true);
      return (input, f) => call(input, f, lhs(input, f));
    }
    const rhs = this.node(rhsNode);
    return (input, f) => {
      const l = lhs(input, f);
      const func = rhs(input, f);
      if (!isFunction(func)) throw { code: 'T2006', stack: new Error().stack, position: pos, value: func };
      if (isFunction(l)) throw new Fallback('function chaining');
      return applyFn(func, [l], null);
    };
  }
}

const PLAIN_STEP_KEYS = new Set(['type', 'value', 'position']);

/** `a.b.c` or `$v.b.c`: names only, no predicates, grouping or array flags anywhere. */
function isPlainChain(n: Node): boolean {
  if (n.keepSingletonArray || n.group) return false;
  return (n.steps as Node[]).every(
    (st, i) => Object.keys(st).every((k) => PLAIN_STEP_KEYS.has(k)) && (st.type === 'name' || (i === 0 && st.type === 'variable' && st.value !== '')),
  );
}

/**
 * The common case of a path, walked directly: while every value on the way is a single object (no
 * arrays, which a path maps over and flattens), a chain of names is a chain of property reads, and
 * the result is what the sequence machinery would give after normalization. The moment an array (or
 * a sequence bound to a variable) turns up, the general evaluation runs instead, from the start.
 */
function plainChain(steps: Node[], general: Fn, variable: ((f: Frame) => unknown) | undefined): Fn {
  const count = steps.length;
  const from = variable === undefined ? 0 : 1;
  // Generated source rather than a loop over the keys, so that each chain has its own property-load
  // sites: V8 then sees one object shape per site instead of every shape of every mapping at one.
  // Keys enter the source only as JSON string literals. A key Object.prototype also has (`toString`)
  // must be an own property; any other key can be read directly from an object whose prototype is
  // Object.prototype or null (JSON data and everything the compiled code builds).
  let body = '';
  for (let i = from; i < count; i++) {
    const name = steps[i]!.value as string;
    const key = JSON.stringify(name);
    const read = name in Object.prototype ? `(hasOwn(v, ${key}) ? v[${key}] : undefined)` : `((p = protoOf(v)) === OP || p === null || hasOwn(v, ${key}) ? v[${key}] : undefined)`;
    body +=
      `if (v === undefined) return done(v);\n` +
      `if (typeof v !== 'object' || v === null) return done(undefined);\n` +
      `if (Array.isArray(v)) return general(input, f);\n` +
      `if (v._jsonata_function === true || v._jsonata_lambda === true) return done(undefined);\n` +
      `v = ${read};\n`;
  }
  const position = steps[0]!.position ?? 0;
  const done = (v: unknown): unknown => {
    const r = run;
    r.steps += count + 1;
    if (r.steps >= r.checkAt) checkBudget(position);
    if (r.depth + 1 >= r.maxDepth) throw new Fallback('depth');
    return v;
  };
  return perNode(
    ['general', 'variable', 'hasOwn', 'protoOf', 'OP', 'done'],
    `return function chain(input, f) {\nlet p;\nlet v = ${variable === undefined ? 'input' : 'variable(f)'};\n${body}if (Array.isArray(v)) return general(input, f);\nreturn done(v);\n};`,
    general, variable, hasOwn, Object.getPrototypeOf, Object.prototype, done,
  );
}

/**
 * An object constructor whose keys are distinct literals (`{"type": "text", "text": $x}`), as
 * generated code: each constructor stores its keys at its own sites, in jsonata's key order, so V8
 * keeps one hidden class per constructor and the stores stay monomorphic. Values are evaluated as
 * concurrent siblings (see siblingError).
 */
function literalObject(entries: { key: string; value: Fn }[]): Fn {
  let body = '';
  entries.forEach((e, i) => {
    body += `try { v = fns[${i}](data, f); } catch (e) { err = siblingError(err, e, depth); v = undefined; }\n`;
    body += `if (v !== undefined) r[${JSON.stringify(e.key)}] = v;\n`;
  });
  return perNode(
    ['fns', 'siblingError', 'NO_ERROR', 'depthNow', 'append', 'tupleStream'],
    `return function object(input, f) {\n` +
      `let data = input;\n` +
      `if (Array.isArray(input)) {\n` +
      `  if (input.tupleStream) throw tupleStream();\n` +
      `  if (input.length === 0) input.push(undefined);\n` +
      `  data = input[0];\n` +
      `  for (let i = 1; i < input.length; i++) data = append(data, input[i]);\n` +
      `}\n` +
      `const r = {};\nlet v;\nlet err = NO_ERROR;\nconst depth = depthNow();\n${body}if (err !== NO_ERROR) throw err;\nreturn r;\n};`,
    entries.map((e) => e.value),
    siblingError,
    NO_ERROR,
    depthNow,
    append,
    tupleStream,
  );
}

const NOT_SINGLE = Symbol('not single');
const ARRAY_INDEX = /^(?:0|[1-9][0-9]*)$/;

/**
 * An object constructor with computed keys over one input item (the usual case, e.g. `{$k: v}`):
 * every key names one pair, so jsonata's grouping reduces to evaluating the keys in order, then the
 * values in the object's key order. Keys that JavaScript orders specially (array indexes) or
 * `__proto__` take the general route (NOT_SINGLE), which then evaluates the keys again: they are pure.
 * Generated per constructor, unrolled over its pairs.
 */
function singleItemObject(pairs: { literalKey: string | undefined; key: Fn | undefined; value: Fn }[], pos: number | undefined): (item: any, f: Frame) => any {
  let body = 'return (item, f) => {\n';
  pairs.forEach((p, i) => {
    const k = `k${i}`;
    const literal = p.literalKey;
    if (literal === undefined) {
      body += `const ${k} = keys[${i}](item, f);\n`;
      body += `if (${k} !== undefined) {\n`;
      body += `if (typeof ${k} !== 'string') throw keyError('T1003', ${k});\n`;
      body += `if (${k} === '_jsonata_lambda' || ${k} === '_jsonata_function') throw keyError('D1013', ${k});\n`;
      for (let e = 0; e < i; e++) body += `if (${k} === k${e}) throw keyError('D1009', ${k});\n`;
      body += `if (${k} === '__proto__' || (ARRAY_INDEX.test(${k}) && Number(${k}) < 4294967295)) return NOT_SINGLE;\n}\n`;
      return;
    }
    // A literal key's checks are decided here, in the same order; only a comparison with an earlier
    // computed key is left to run time.
    body += `const ${k} = ${JSON.stringify(literal)};\n`;
    if (literal === '_jsonata_lambda' || literal === '_jsonata_function') body += `throw keyError('D1013', ${k});\n`;
    for (let e = 0; e < i; e++) {
      const other = pairs[e]!.literalKey;
      if (other === undefined) body += `if (${k} === k${e}) throw keyError('D1009', ${k});\n`;
      else if (other === literal) body += `throw keyError('D1009', ${k});\n`;
    }
    if (literal === '__proto__' || (ARRAY_INDEX.test(literal) && Number(literal) < 4294967295)) body += 'return NOT_SINGLE;\n';
  });
  body += 'const result = {};\nlet err = NO_ERROR;\nconst depth = depthNow();\nlet v;\n';
  pairs.forEach((_, i) => {
    body += `if (k${i} !== undefined) {\ntry { v = values[${i}](item, f); } catch (e) { err = siblingError(err, e, depth); v = undefined; }\nif (v !== undefined) result[k${i}] = v;\n}\n`;
  });
  body += 'if (err !== NO_ERROR) throw err;\nreturn result;\n};';
  return perNode(
    ['keys', 'values', 'keyError', 'ARRAY_INDEX', 'NOT_SINGLE', 'NO_ERROR', 'depthNow', 'siblingError'],
    body,
    pairs.map((p) => p.key),
    pairs.map((p) => p.value),
    (code: string, value: unknown) => ({ code, stack: new Error().stack, position: pos, value }),
    ARRAY_INDEX,
    NOT_SINGLE,
    NO_ERROR,
    depthNow,
    siblingError,
  );
}

const NO_ERROR = Symbol('no error');

/**
 * jsonata evaluates array items and object values concurrently (Promise.all), and every sibling runs
 * to its end even when another has failed. With one failing sibling the outcome is that sibling's
 * error whatever the scheduling, so the compiled code evaluates every sibling and throws the one
 * error at the end. With two, which fails first in time depends on jsonata's scheduling: left to
 * jsonata. Returns the error to keep; our own budget and fallback signals go straight through.
 */
function siblingError(kept: unknown, e: unknown, depth: number): unknown {
  if (e instanceof StepLimitExceeded || e instanceof Fallback) throw e;
  // the failed sibling left its nesting counted; the next one starts where it started
  run.depth = depth;
  if (kept !== NO_ERROR) throw new Fallback('errors in two concurrently evaluated siblings');
  return e;
}


/** The order in which an object's keys come out: integer-like keys first, ascending (JS objects). */
function orderKeys(entries: { key: string; i: number }[]): { key: string; i: number }[] {
  const probe: Record<string, number> = Object.create(null);
  for (const e of entries) probe[e.key] = e.i;
  return Object.keys(probe).map((key) => ({ key, i: probe[key]! }));
}

const NO_LITERAL = Symbol('no literal');

/** The names `:=` binds in a block's own scope: not inside a nested block or lambda (scopes of their own). */
function blockBinds(block: Node): string[] {
  const names: string[] = [];
  const walk = (v: unknown, top: boolean): void => {
    if (v === null || typeof v !== 'object' || v instanceof RegExp) return;
    if (Array.isArray(v)) {
      for (const item of v) walk(item, false);
      return;
    }
    const n = v as Node;
    if (!top && (n.type === 'block' || n.type === 'lambda')) return;
    if (n.type === 'bind' && n.lhs && typeof n.lhs.value === 'string') {
      const name = intern(n.lhs.value);
      if (!names.includes(name)) names.push(name);
    }
    for (const k of Object.keys(n)) walk(n[k], false);
  };
  walk(block, true);
  return names;
}

/** `$name := function(...) {...}` with nothing attached to the bind or the lambda node. */
function isPlainLambdaBind(e: Node): boolean {
  const plain = (x: Node) => !x.predicate && !x.group && !x.keepArray && !x.stages && !x.tuple && x.focus === undefined && x.index === undefined && !x.seekingParent && !x.ancestor;
  return e.type === 'bind' && plain(e) && e.lhs?.type === 'variable' && typeof e.lhs.value === 'string' && e.rhs?.type === 'lambda' && !e.rhs.thunk && plain(e.rhs);
}

/** A string, number, true/false/null literal, with nothing attached. */
function isLiteral(n: Node): boolean {
  return (n.type === 'string' || n.type === 'number' || n.type === 'value') && !n.predicate && !n.group && !n.keepArray && (n.value === null || typeof n.value !== 'object');
}

function boolize(value: unknown): boolean {
  const b = fnBoolean(value);
  return typeof b === 'undefined' ? false : b;
}

function numeric(lhs: any, rhs: any, op: string): any {
  if (typeof lhs !== 'undefined' && !isNumeric(lhs)) throw { code: 'T2001', stack: new Error().stack, value: lhs };
  if (typeof rhs !== 'undefined' && !isNumeric(rhs)) throw { code: 'T2002', stack: new Error().stack, value: rhs };
  if (typeof lhs === 'undefined' || typeof rhs === 'undefined') return undefined;
  switch (op) {
    case '+':
      return lhs + rhs;
    case '-':
      return lhs - rhs;
    case '*':
      return lhs * rhs;
    case '/':
      return lhs / rhs;
    default:
      return lhs % rhs;
  }
}

function comparison(lhs: any, rhs: any, op: string): any {
  const ltype = typeof lhs;
  const rtype = typeof rhs;
  const lcomparable = ltype === 'undefined' || ltype === 'string' || ltype === 'number';
  const rcomparable = rtype === 'undefined' || rtype === 'string' || rtype === 'number';
  if (!lcomparable || !rcomparable) {
    throw { code: 'T2010', stack: new Error().stack, value: !(ltype === 'string' || ltype === 'number') ? lhs : rhs };
  }
  if (ltype === 'undefined' || rtype === 'undefined') return undefined;
  if (ltype !== rtype) throw { code: 'T2009', stack: new Error().stack, value: lhs, value2: rhs };
  switch (op) {
    case '<':
      return lhs < rhs;
    case '<=':
      return lhs <= rhs;
    case '>':
      return lhs > rhs;
    default:
      return lhs >= rhs;
  }
}

function range(lhs: any, rhs: any): any {
  if (typeof lhs !== 'undefined' && !Number.isInteger(lhs)) throw { code: 'T2003', stack: new Error().stack, value: lhs };
  if (typeof rhs !== 'undefined' && !Number.isInteger(rhs)) throw { code: 'T2004', stack: new Error().stack, value: rhs };
  if (typeof lhs === 'undefined' || typeof rhs === 'undefined') return undefined;
  if (lhs > rhs) return undefined;
  const size = rhs - lhs + 1;
  if (size > 1e7) throw { code: 'D2014', stack: new Error().stack, value: size };
  const result: any = new Array(size);
  for (let item = lhs, index = 0; item <= rhs; item++, index++) result[index] = item;
  result.sequence = true;
  return result;
}

function flatten(arg: any, flattened: any[] = []): any[] {
  if (Array.isArray(arg)) for (const item of arg) flatten(item, flattened);
  else flattened.push(arg);
  return flattened;
}

function wildcard(input: any): any {
  let results: any = emptySequence();
  if (Array.isArray(input) && (input as any).outerWrapper && input.length > 0) input = input[0];
  if (input !== null && typeof input === 'object' && !isFunction(input)) {
    for (const key of okeys(input)) {
      let value = input[key];
      if (Array.isArray(value)) {
        value = flatten(value);
        results = append(results, value);
      } else {
        results.push(value);
      }
    }
  }
  return results;
}

function recurseDescendants(input: any, results: any[]): void {
  if (!Array.isArray(input)) results.push(input);
  if (Array.isArray(input)) {
    for (const member of input) recurseDescendants(member, results);
  } else if (input !== null && typeof input === 'object') {
    for (const key of Object.keys(input)) recurseDescendants(input[key], results);
  }
}

function descendants(input: any): any {
  let result: any;
  const resultSequence = emptySequence();
  if (typeof input !== 'undefined') {
    recurseDescendants(input, resultSequence);
    if (resultSequence.length === 1) result = resultSequence[0];
    else result = resultSequence;
  }
  return result;
}

/** The root scope's names when the caller has no bindings. */
const ROOT_NAMES = ['$'];

let lastBindings: Record<string, unknown> | undefined;
let lastBindingNames: string[] = ROOT_NAMES;

/**
 * The root scope's names for a bindings object, then `$`. Callers pass the same object again and
 * again: its names are kept and only checked (a for-in over an unchanged object allocates nothing).
 */
function bindingNames(bindings: Record<string, unknown>): string[] {
  if (bindings === lastBindings) {
    const known = lastBindingNames;
    let i = 0;
    let same = true;
    for (const k in bindings) {
      if (k === '$') continue;
      if (known[i++] !== k) {
        same = false;
        break;
      }
    }
    if (same && i === known.length - 1) return known;
  }
  const names: string[] = [];
  for (const k in bindings) if (k !== '$') names.push(k);
  names.push('$');
  lastBindings = bindings;
  lastBindingNames = names;
  return names;
}

/**
 * Compiles a jsonata AST into a synchronous closure `(input, bindings, limits) => result`, or declines
 * with the reason. `bindings` may hold values and JavaScript functions (called like jsonata calls
 * them: `this` is the context, arguments unvalidated unless the function carries a `signature`).
 */
export function compileAst(ast: unknown): CompileResult {
  if (!builtinsReady) return { ok: false, reason: 'jsonata built-ins are not reachable (jsonata version changed?)' };
  // A constant (a header such as `"application/json"`): one step, no scope or budget to set up.
  if (isLiteral(ast as Node)) {
    const value = (ast as Node).value;
    return { ok: true, run: () => value };
  }
  let fn: Fn;
  try {
    fn = new Compiler(boundNames(ast)).node(ast as Node);
  } catch (e) {
    if (e instanceof Decline) return { ok: false, reason: e.message };
    throw e;
  }
  const runFn: CompiledFn = (input, bindings, limits) => {
    let names = ROOT_NAMES;
    let values: unknown[];
    if (bindings) {
      names = bindingNames(bindings);
      const last = names.length - 1;
      values = new Array(names.length);
      for (let i = 0; i < last; i++) values[i] = bindings[names[i]!];
      values[last] = input;
    } else {
      values = [input];
    }
    // (a scope given its names shares them: a binding at the top level copies them first)
    const root = new Frame(null, names, values);
    if (Array.isArray(input) && !isSequence(input)) {
      input = sequenceOf(input);
      (input as any).outerWrapper = true;
    }
    const saved = run;
    // One evaluation at a time reuses one budget record (an evaluation started from inside another,
    // through a binding, gets its own). The clock is read when the budget is first checked (after
    // 1024 steps) or $now/$millis asks: most evaluations take a few hundred steps, and a clock read
    // costs as much as a few of them.
    const r = saved === IDLE ? OUTERMOST : ({} as Run);
    r.steps = 0;
    r.depth = 0;
    r.maxSteps = limits.maxSteps;
    r.maxDepth = limits.maxDepth;
    r.checkAt = Math.min(1024, limits.maxSteps + 1);
    r.started = 0;
    r.timeoutMs = limits.timeoutMs;
    r.deadline = 0;
    r.timestamp = undefined;
    r.root = root;
    run = r;
    try {
      // a thunk at the top level cannot happen (thunks only sit in lambda bodies)
      return fn(input, root);
    } finally {
      r.root = null;
      run = saved;
    }
  };
  return { ok: true, run: runFn };
}

/** Convenience for tools and tests: compile expression text. Throws jsonata's syntax errors. */
export function compileText(text: string): CompileResult {
  return compileAst(jsonata(text).ast());
}
