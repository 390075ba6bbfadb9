// The console playground's explain: a copy of a mapping whose expressions record each evaluation
// (slot, value, µs, fast path or jsonata), and a traced copy whose functions record each call.
import { WabError } from '../mapping/errors.js';
import { evaluateNow, isPromise, Rejection, type Compiled } from '../mapping/expression.js';
import type { Mapping } from '../mapping/loader.js';
import { redactNamed, type Redact } from './playground-redact.js';
import { CREDENTIAL_NAME } from './trace.js';

/** Longest value text an explain row carries. */
const VALUE_CHARS = 2_000;

export interface ExplainEntry {
  /** The mapping slot, e.g. send.request.body. */
  slot: string;
  where?: string;
  /** fast: the compiled JavaScript; jsonata: the jsonata library (declined, or fell back on this input). */
  path: 'fast' | 'jsonata';
  declined?: string;
  /** Wall time of this evaluation in µs (jsonata slots of one request run concurrently and overlap). */
  us: number;
  /** The value as JSON text, redacted and cut to VALUE_CHARS. */
  value?: string;
  error?: { code?: string; message: string; where?: string };
  /** The mapping functions compiled into this slot: their time and path are the slot's. */
  functions: { name: string; where: string }[];
}

function preview(v: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'function' ? '(function)' : x));
  } catch {
    text = String(v);
  }
  if (text === undefined) return 'undefined';
  return text.length > VALUE_CHARS ? `${text.slice(0, VALUE_CHARS)}… (${text.length} characters)` : text;
}

function isCompiled(v: object): v is Compiled {
  const c = v as Partial<Compiled>;
  return typeof c.evaluate === 'function' && typeof c.name === 'string' && typeof c.text === 'string';
}

/**
 * A copy of `mapping` whose every expression records its evaluations into `entries`; the copy runs
 * the same compiled code (fast path or jsonata) as the original.
 */
export function instrument(mapping: Mapping, entries: ExplainEntry[], redact: Redact, bindingsFor?: (slot: string) => Record<string, unknown>): Mapping {
  const wrap = (c: Compiled): Compiled => {
    const extra = bindingsFor?.(c.name);
    const bind = (b: Record<string, unknown> | undefined) => (extra ? { ...b, ...extra } : b);
    const push = (t0: number, path: ExplainEntry['path'], outcome: { value: unknown } | { error: unknown }) => {
      const us = Math.round((performance.now() - t0) * 10_000) / 10;
      const credential = CREDENTIAL_NAME.test(c.name.slice(c.name.lastIndexOf('.') + 1)) && /\.(headers|query)\./.test(c.name);
      const entry: ExplainEntry = { slot: c.name, path, us, functions: [...(c.uses ?? [])] };
      if (c.where !== undefined) entry.where = c.where;
      // (the fast path hands a JSONata error to jsonata, which reports it with its exact message and place)
      const fellBack = 'error' in outcome ? 'fell back on this input: errors are reported by jsonata' : 'fell back on this input';
      const declined = c.declined ?? (path === 'jsonata' && c.fastPath ? fellBack : undefined);
      if (declined !== undefined) entry.declined = declined;
      if ('value' in outcome) {
        const text = preview(outcome.value);
        entry.value = credential && typeof outcome.value === 'string' ? JSON.stringify(redactNamed(outcome.value, redact)) : redact(text);
      } else {
        const e = outcome.error;
        if (e instanceof Rejection) entry.error = { message: redact(`$reject(${e.answerCode}): ${e.reason}`) };
        else if (e instanceof WabError) entry.error = { code: e.code, message: redact(e.message), ...(e.where === undefined ? {} : { where: e.where }) };
        else entry.error = { message: redact(e instanceof Error ? e.message : String(e)) };
      }
      entries.push(entry);
    };
    const observe = (run: () => unknown): unknown => {
      const t0 = performance.now();
      let out: unknown;
      try {
        out = run();
      } catch (e) {
        // Only the compiled path throws synchronously; jsonata rejects its promise.
        push(t0, 'fast', { error: e });
        throw e;
      }
      if (!isPromise(out)) {
        push(t0, 'fast', { value: out });
        return out;
      }
      return out.then(
        (value) => {
          push(t0, 'jsonata', { value });
          return value;
        },
        (error: unknown) => {
          push(t0, 'jsonata', { error });
          throw error;
        },
      );
    };
    return {
      name: c.name,
      text: c.text,
      get fastPath() {
        return c.fastPath;
      },
      get declined() {
        return c.declined;
      },
      get where() {
        return c.where;
      },
      get uses() {
        return c.uses;
      },
      now: (input, bindings) => observe(() => evaluateNow(c, input, bind(bindings))),
      evaluate: async (input, bindings) => observe(() => evaluateNow(c, input, bind(bindings))),
    };
  };
  const copy = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(copy);
    if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      if (isCompiled(v)) return wrap(v);
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, copy(x)]));
    }
    return v;
  };
  return { ...mapping, send: copy(mapping.send), webhook: copy(mapping.webhook), media: copy(mapping.media), auth: copy(mapping.auth), expressions: copy(mapping.expressions) } as Mapping;
}

export interface FunctionCalls {
  name: string;
  /** file:line:col of its declaration. */
  where?: string;
  /** The slots whose evaluation called it. */
  slots: string[];
  calls: number;
  /** Wall time of its calls in µs (a call made inside another call counts in both). */
  us: number;
  /** The first calls' values as JSON text, redacted. */
  values: string[];
}

const CALL = '__wab_call';
const NOW = '__wab_now';
const VALUES_KEPT = 3;
const LAMBDA = /^(\s*(?:function|λ)\s*\([^)]*\)\s*(?:<[^<>]*>)?\s*\{)([\s\S]*)(\}\s*)$/;

/**
 * A function's text that reports each call (value and time) through the tracer's bindings; the text
 * itself when it is not a plain `function(...) { ... }`. The body is no longer in tail position, so
 * only the traced copy is run this way: the output and the slots' explain come from the real one.
 */
export function tracedFunction(name: string, text: string): string {
  const m = LAMBDA.exec(text);
  return m ? `${m[1]}$${CALL}(${JSON.stringify(name)}, $${NOW}(), (${m[2]}\n))${m[3]}` : text;
}

/** Collects the calls of a traced copy's functions, by function. */
export function functionTracer(redact: Redact) {
  const byName = new Map<string, FunctionCalls>();
  const bindingsFor = (slot: string): Record<string, unknown> => ({
    [NOW]: () => performance.now(),
    [CALL]: (name: string, t0: number, value: unknown) => {
      const us = (performance.now() - t0) * 1000;
      let f = byName.get(name);
      if (!f) byName.set(name, (f = { name, slots: [], calls: 0, us: 0, values: [] }));
      f.calls++;
      f.us += us;
      if (!f.slots.includes(slot)) f.slots.push(slot);
      if (f.values.length < VALUES_KEPT) f.values.push(redact(preview(value)));
      return value;
    },
  });
  const calls = (): FunctionCalls[] => [...byName.values()].map((f) => ({ ...f, us: Math.round(f.us * 10) / 10 }));
  return { bindingsFor, calls };
}
