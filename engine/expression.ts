// Compiling JSONata expressions once, at load, and evaluating them with time and depth limits.
import jsonata from 'jsonata';
import { WabError } from './errors.js';

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

export interface Limits {
  timeoutMs: number;
  maxDepth: number;
}

export const DEFAULT_LIMITS: Limits = { timeoutMs: 250, maxDepth: 500 };

export interface Compiled {
  readonly name: string;
  readonly text: string;
  evaluate(input: unknown, bindings?: Record<string, unknown>): Promise<unknown>;
}

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
const ENTRY = Symbol.for('jsonata.__evaluate_entry');
const EXIT = Symbol.for('jsonata.__evaluate_exit');

interface Guard {
  deadline: number;
  depth: number;
  limits: Limits;
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

  expr.assign(ENTRY as unknown as string, (_node: unknown, _input: unknown, env: Env) => {
    const g = env.lookup(GUARD) as Guard | undefined;
    if (!g) return;
    if (++g.depth > g.limits.maxDepth) {
      throw new WabError('WAB_MAPPING_DEPTH', `${ref.name}: evaluation nested deeper than ${g.limits.maxDepth} frames (runaway recursion?)`, ref.locate(0));
    }
    if (Date.now() > g.deadline) {
      throw new WabError('WAB_MAPPING_TIMEOUT', `${ref.name}: evaluation ran longer than ${g.limits.timeoutMs} ms (infinite loop?)`, ref.locate(0));
    }
  });
  expr.assign(EXIT as unknown as string, (_node: unknown, _input: unknown, env: Env) => {
    const g = env.lookup(GUARD) as Guard | undefined;
    if (g) g.depth--;
  });

  return {
    name: ref.name,
    text,
    async evaluate(input, bindings) {
      const guard: Guard = { deadline: Date.now() + limits.timeoutMs, depth: 0, limits };
      try {
        return await expr.evaluate(input, { ...bindings, [GUARD]: guard });
      } catch (e) {
        if (e instanceof WabError || e instanceof Rejection) throw e;
        if (isJsonataError(e)) {
          throw new WabError('WAB_MAPPING_EVAL', `${ref.name}: ${e.message}${e.code ? ` (${e.code})` : ''}`, where(tokenStart(e)));
        }
        throw e;
      }
    },
  };
}
