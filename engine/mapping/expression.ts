// Compiling JSONata expressions once, at load, and evaluating them with time and depth limits.
import jsonata from 'jsonata';
import { WabError } from './errors.js';
import { compileAst, Fallback, StepLimitExceeded, type CompileResult } from './jsonata-compiler.js';

/** Where an expression's text lives, so errors can point at file:line:col. */
export interface SourceRef {
  /** Human name of the slot, e.g. "send.request.body". */
  name: string;
  /** Maps an offset into the expression text to "file:line:col". */
  locate(offset: number): string;
}

export interface FunctionSource {
  name: string;
  text: string;
  ref: SourceRef;
}

/**
 * Budgets per evaluation. Steps (evaluated nodes) are the real bound: they do not depend on machine
 * load, whereas under 1500 concurrent messages wall-clock time mostly measures the others' work.
 * The time limit is only a last resort far above any healthy evaluation.
 */
export interface Limits {
  maxSteps: number;
  maxDepth: number;
  timeoutMs: number;
}

export const DEFAULT_LIMITS: Limits = { maxSteps: 200_000, maxDepth: 500, timeoutMs: 5_000 };

export interface Compiled {
  readonly name: string;
  readonly text: string;
  /**
   * True when the expression runs on the compiled fast path (engine/mapping/jsonata-compiler.ts). Every
   * Compiled that compile() returns sets it; it is optional only so that placeholders built elsewhere
   * for expressions that failed to load (mapping-loader, bsp-simulator) stay valid: absent means false.
   */
  readonly fastPath?: boolean;
  /** Why the compiler declined the expression (it then runs on jsonata), when it did. */
  readonly declined?: string;
  /** What was compiled: the text with the mapping functions it uses declared in front (bench/compiler-ab.ts compiles it again). */
  readonly source?: string;
  /** file:line:col where the expression starts, and the mapping functions compiled into it: the console playground's explain shows them. */
  readonly where?: string;
  readonly uses?: readonly { name: string; where: string }[];
  evaluate(input: unknown, bindings?: Record<string, unknown>): Promise<unknown>;
  /**
   * The same evaluation without a promise when it can be had: the value itself when the fast path
   * finishes (the usual case), a Promise when jsonata runs. Saves the hot paths an await per slot.
   */
  now?(input: unknown, bindings?: Record<string, unknown>): unknown;
}

/** `c.now(...)` where there is one: a value, or a Promise of it. */
export function evaluateNow(c: Compiled, input: unknown, bindings?: Record<string, unknown>): unknown {
  return c.now ? c.now(input, bindings) : c.evaluate(input, bindings);
}

export const isPromise = (v: unknown): v is Promise<unknown> => typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';

/** Thrown by `$reject(code, message)`: the mapping refuses this message with a CleverTap answer code. */
export class Rejection extends Error {
  constructor(
    readonly answerCode: number,
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'Rejection';
  }
}

interface JsonataError {
  code?: string;
  position?: number;
  token?: string;
  message?: string;
}

const GUARD = '__wab_guard';
/** Fallback reasons that depend on one message's data; every other reason is the expression's shape. */
const DATA_DEPENDENT = new Set(['depth', 'errors in two concurrently evaluated siblings']);
const ENTRY = Symbol.for('jsonata.__evaluate_entry');
const EXIT = Symbol.for('jsonata.__evaluate_exit');

interface Guard {
  deadline: number;
  steps: number;
  /** Positions of the nodes being evaluated, innermost last: on an error, the top is where it happened. */
  stack: number[];
  limits: Limits;
}

interface Node {
  position?: number;
}

interface Env {
  lookup(name: string): unknown;
}

function tokenStart(e: JsonataError): number {
  const pos = typeof e.position === 'number' ? e.position : 0;
  const len = e.token && e.token !== '(end)' ? String(e.token).length : 0;
  return Math.max(0, pos - len);
}

function isJsonataError(e: unknown): e is JsonataError {
  return typeof e === 'object' && e !== null && 'code' in e && 'message' in e;
}

/** Compiles one expression on its own, purely to report syntax errors at the right place. */
export function checkSyntax(text: string, ref: SourceRef): WabError | undefined {
  try {
    jsonata(text);
    return undefined;
  } catch (e) {
    if (!isJsonataError(e)) throw e;
    return new WabError('WAB_MAPPING_COMPILE', `${ref.name}: ${e.message}`, ref.locate(tokenStart(e)));
  }
}

/**
 * The functions `text` names, directly or through other functions, in declaration order. A name
 * match inside a string literal only costs an unused declaration, so a plain scan is enough.
 */
function referenced(text: string, functions: readonly FunctionSource[]): FunctionSource[] {
  const uses = (t: string, name: string) => new RegExp(`\\$${name}(?![A-Za-z0-9_])`).test(t);
  const needed = new Set<FunctionSource>();
  const queue = [text];
  while (queue.length > 0) {
    const t = queue.pop()!;
    for (const fn of functions) {
      if (!needed.has(fn) && uses(t, fn.name)) {
        needed.add(fn);
        queue.push(fn.text);
      }
    }
  }
  return functions.filter((fn) => needed.has(fn));
}

/**
 * Compiles `text` with the mapping's functions declared in front of it, in one block, so every
 * evaluation gets fresh closures that see that evaluation's guard (time and depth are counted
 * per message, even when many messages are mapped concurrently).
 */
export function compile(text: string, ref: SourceRef, allFunctions: readonly FunctionSource[], limits: Limits = DEFAULT_LIMITS): Compiled {
  const functions = referenced(text, allFunctions);
  const parts: { from: number; to: number; fn: FunctionSource }[] = [];
  let prelude = '(\n';
  for (const fn of functions) {
    prelude += `$${fn.name} := `;
    parts.push({ from: prelude.length, to: prelude.length + fn.text.length, fn });
    prelude += `${fn.text};\n`;
  }
  const wrapped = functions.length > 0 ? `${prelude}${text}\n)` : text;
  const offset = functions.length > 0 ? prelude.length : 0;

  const where = (pos: number): string => {
    if (pos >= offset) return ref.locate(pos - offset);
    const part = parts.find((p) => pos >= p.from && pos <= p.to);
    return part ? part.fn.ref.locate(pos - part.from) : ref.locate(0);
  };

  let expr: jsonata.Expression;
  try {
    expr = jsonata(wrapped);
  } catch (e) {
    if (!isJsonataError(e)) throw e;
    throw new WabError('WAB_MAPPING_COMPILE', `${ref.name}: ${e.message}`, where(tokenStart(e)));
  }

  expr.assign(ENTRY as unknown as string, (node: Node, _input: unknown, env: Env) => {
    const g = env.lookup(GUARD) as Guard | undefined;
    if (!g) return;
    g.stack.push(node.position ?? 0);
    if (g.stack.length > g.limits.maxDepth) {
      throw new WabError('WAB_MAPPING_DEPTH', `${ref.name}: evaluation nested deeper than ${g.limits.maxDepth} frames (runaway recursion?)`, where(g.stack.at(-1)!));
    }
    if (++g.steps > g.limits.maxSteps) {
      throw new WabError('WAB_MAPPING_TIMEOUT', `${ref.name}: evaluation took more than ${g.limits.maxSteps} steps (infinite loop?)`, where(g.stack.at(-1)!));
    }
    if ((g.steps & 1023) === 0 && Date.now() > g.deadline) {
      throw new WabError('WAB_MAPPING_TIMEOUT', `${ref.name}: evaluation ran longer than ${g.limits.timeoutMs} ms (infinite loop?)`, where(g.stack.at(-1)!));
    }
  });
  expr.assign(EXIT as unknown as string, (_node: unknown, _input: unknown, env: Env) => {
    const g = env.lookup(GUARD) as Guard | undefined;
    if (g) g.stack.pop();
  });

  // The fast path: a synchronous closure compiled from the same AST (wrapped text included), or the
  // reason it declined. WAB_JSONATA_FASTPATH=0 turns it off (every expression then runs on jsonata).
  const fast: CompileResult =
    process.env.WAB_JSONATA_FASTPATH === '0' ? { ok: false, reason: 'fast path disabled (WAB_JSONATA_FASTPATH=0)' } : compileAst(expr.ast());

  const viaJsonata = async (input: unknown, bindings: Record<string, unknown> | undefined): Promise<unknown> => {
    const guard: Guard = { deadline: Date.now() + limits.timeoutMs, steps: 0, stack: [], limits };
    try {
      return await expr.evaluate(input, { ...bindings, [GUARD]: guard });
    } catch (e) {
      if (e instanceof WabError || e instanceof Rejection) throw e;
      // jsonata rewrites an error's position to the outermost call site on the way up; the guard's
      // stack still holds the innermost node, which is where the mapping author needs to look.
      const innermost = guard.stack.at(-1);
      const pos = innermost !== undefined ? Math.max(0, innermost - 1) : isJsonataError(e) ? tokenStart(e) : 0;
      if (isJsonataError(e)) throw new WabError('WAB_MAPPING_EVAL', `${ref.name}: ${e.message}${e.code ? ` (${e.code})` : ''}`, where(pos));
      // jsonata itself can fail with a TypeError on some malformed calls; still one message's error.
      throw new WabError('WAB_MAPPING_EVAL', `${ref.name}: ${e instanceof Error ? e.message : String(e)}`, where(pos));
    }
  };

  // Positions are asked for by tooling only, never per message: computed when read.
  const startsAt = () => ref.locate(0);
  const usedFunctions = () => functions.map((fn) => ({ name: fn.name, where: fn.ref.locate(0) }));
  if (!fast.ok) {
    return {
      name: ref.name,
      text,
      source: wrapped,
      fastPath: false,
      declined: fast.reason,
      get where() {
        return startsAt();
      },
      get uses() {
        return usedFunctions();
      },
      evaluate: viaJsonata,
    };
  }
  let run: typeof fast.run | undefined = fast.run;
  let declined: string | undefined;
  const now = (input: unknown, bindings: Record<string, unknown> | undefined): unknown => {
    if (!run) return viaJsonata(input, bindings);
    try {
      return run(input, bindings, limits);
    } catch (e) {
      if (e instanceof Rejection || e instanceof WabError) throw e;
      if (e instanceof StepLimitExceeded) {
        const what = e.kind === 'steps' ? `took more than ${limits.maxSteps} steps` : `ran longer than ${limits.timeoutMs} ms`;
        throw new WabError('WAB_MAPPING_TIMEOUT', `${ref.name}: evaluation ${what} (infinite loop?)`, where(e.position));
      }
      // Fallback (a case only jsonata handles exactly) or a JSONata error: the compiled error has the
      // same code, but jsonata's run gives the identical message and file:line:col. Errors are the
      // cold path, and expressions are pure, so evaluating again is safe.
      // A fallback caused by the expression's shape (not by this message's data) would repeat on
      // every message, paying for both paths: from then on this expression runs on jsonata only.
      if (e instanceof Fallback && !DATA_DEPENDENT.has(e.reason)) {
        run = undefined;
        declined = `at run time: ${e.reason}`;
      }
      if (e instanceof Fallback || (typeof e === 'object' && e !== null && 'code' in e)) return viaJsonata(input, bindings);
      throw e;
    }
  };
  return {
    name: ref.name,
    text,
    source: wrapped,
    get fastPath() {
      return run !== undefined;
    },
    get declined() {
      return declined;
    },
    get where() {
      return startsAt();
    },
    get uses() {
      return usedFunctions();
    },
    now,
    evaluate: async (input, bindings) => now(input, bindings),
  };
}
