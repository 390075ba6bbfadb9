// The console playground's run: one mapping stage (send, response or webhook) on a fixture's or a
// pasted input, with the mapping as loaded or as edited in the page (compiled here, never saved),
// and what each expression did on the way. It runs the golden runner's code, so a fixture's run
// shows what its expected.json holds. Settings come from the fixtures' fake values or placeholders,
// never from a tenant, and whatever looks like a credential is redacted before it leaves.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WabError, type ErrorCode } from '../mapping/errors.js';
import { evaluateNow, isPromise, Rejection, type Compiled, type Limits } from '../mapping/expression.js';
import { loadBaseSettings, readFixture, readInput, runFixture, type Fixture, type FixtureInputs } from '../mapping/golden.js';
import { loadMapping, type Mapping } from '../mapping/loader.js';
import type { SettingDecl } from '../mapping/settings.js';
import { REDACTED } from './trace.js';

export const STAGES = ['send', 'response', 'webhook'] as const;
export type Stage = (typeof STAGES)[number];

/** An edited mapping is someone's draft: tighter than the host's limits, so a runaway loop ends soon. */
export const PLAYGROUND_LIMITS: Limits = { maxSteps: 100_000, maxDepth: 300, timeoutMs: 1_000 };
/** The whole run, jsonata's asynchronous evaluations included. */
export const RUN_DEADLINE_MS = 3_000;
/** Longest value text an explain row carries. */
const VALUE_CHARS = 2_000;

export interface Position {
  where: string;
  file: string;
  line: number;
  col: number;
}

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

export interface FixtureSummary {
  name: string;
  kind: Stage;
  description: string;
}

export interface RunRequest {
  mapping: string;
  yaml?: string;
  kind: Stage;
  /** The CleverTap payload (send), the BSP's response body (response) or the BSP's webhook body (webhook). */
  input?: string;
  contentType?: string;
  /** A fixture case of the mapping: its fixture.yaml, input and settings are the defaults of this run. */
  fixture?: string;
  /** response: the CleverTap payload that was sent. */
  message?: string;
  status?: number;
  headers?: Record<string, string>;
  settings?: Record<string, unknown>;
}

export interface RunResult {
  mapping: { name: string; version: string; edited: boolean };
  kind: Stage;
  /** What the golden runner would write to expected.json, redacted. */
  output: unknown;
  /** A contract problem (the body against the BSP's schema), as the golden runner reports it. */
  problem?: string;
  /** The mapping's error, when the output is one, with the place to highlight. */
  error?: { code: string; message: string } & Partial<Position>;
  explain: ExplainEntry[];
  /** Settings given placeholder values (no fixture value, no default). */
  placeholders: string[];
  ms: number;
}

/** The edited YAML does not load: every problem, with its place. */
export class LoadFailure extends Error {
  constructor(readonly errors: WabError[]) {
    super(errors[0]?.message ?? 'mapping does not load');
  }
}

export function position(where: string | undefined): Position | undefined {
  const m = where === undefined ? null : /^(.*):(\d+):(\d+)$/.exec(where);
  return m ? { where: where!, file: m[1]!, line: Number(m[2]), col: Number(m[3]) } : undefined;
}

const CASE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The folder of a fixture case, or undefined when `name` is not one (never a path outside fixtures/). */
export function fixtureDir(mapping: Mapping, name: string): string | undefined {
  if (!CASE_NAME.test(name)) return undefined;
  const dir = join(mapping.dir, 'fixtures', name);
  return existsSync(join(dir, 'fixture.yaml')) && statSync(dir).isDirectory() ? dir : undefined;
}

/** The mapping's fixture cases of the three stages the playground runs (a malformed one is left out: `wabridge test` names it). */
export function listFixtures(mapping: Mapping): FixtureSummary[] {
  const root = join(mapping.dir, 'fixtures');
  if (!existsSync(root)) return [];
  const out: FixtureSummary[] = [];
  for (const name of readdirSync(root).sort()) {
    const dir = fixtureDir(mapping, name);
    if (!dir) continue;
    try {
      const f = readFixture(dir);
      if ((STAGES as readonly string[]).includes(f.kind)) out.push({ name, kind: f.kind as Stage, description: f.description });
    } catch {
      continue;
    }
  }
  return out;
}

/** Looks like a credential wherever it is a header or query name (as trace.ts judges headers). */
const CREDENTIAL_NAME = /auth|token|key|secret|signature|cookie|password|credential/i;
const JWT = /\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]{4,}/g;

type Redact = (text: string) => string;

function redactor(secrets: [string, string][]): Redact {
  // Longest first: a secret that contains another is replaced whole.
  const sorted = secrets.filter(([, v]) => v.length >= 4).sort((a, b) => b[1].length - a[1].length);
  return (text) => {
    let out = text;
    for (const [name, value] of sorted) if (out.includes(value)) out = out.split(value).join(`«secret:${name}»`);
    return out.replace(JWT, REDACTED);
  };
}

/** A credential-named header or query value: what the secret values did not already cover is replaced whole. */
function redactNamed(value: string, redact: Redact): string {
  const out = redact(value);
  return out === value && value !== '' ? REDACTED : out;
}

function redactUrl(url: string, redact: Redact): string {
  const text = redact(url);
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return text;
  }
  let changed = false;
  for (const [k, v] of [...u.searchParams]) {
    if (CREDENTIAL_NAME.test(k) && !v.includes('«secret:')) {
      u.searchParams.set(k, REDACTED);
      changed = true;
    }
  }
  return changed ? u.toString() : text;
}

function redactDeep(v: unknown, redact: Redact, key = ''): unknown {
  if (typeof v === 'string') return key === 'url' ? redactUrl(v, redact) : redact(v);
  if (Array.isArray(v)) return v.map((x) => redactDeep(x, redact));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      out[k] = key === 'headers' && typeof x === 'string' && CREDENTIAL_NAME.test(k) ? redactNamed(x, redact) : redactDeep(x, redact, k);
    }
    return out;
  }
  return v;
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
export function instrument(mapping: Mapping, entries: ExplainEntry[], redact: Redact): Mapping {
  const wrap = (c: Compiled): Compiled => {
    const push = (t0: number, path: ExplainEntry['path'], outcome: { value: unknown } | { error: unknown }) => {
      const us = Math.round((performance.now() - t0) * 10_000) / 10;
      const credential = CREDENTIAL_NAME.test(c.name.slice(c.name.lastIndexOf('.') + 1)) && /\.(headers|query)\./.test(c.name);
      const entry: ExplainEntry = { slot: c.name, path, us, functions: [...(c.uses ?? [])] };
      if (c.where !== undefined) entry.where = c.where;
      const declined = c.declined ?? (path === 'jsonata' && c.fastPath ? 'fell back on this input' : undefined);
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
      now: (input, bindings) => observe(() => evaluateNow(c, input, bindings)),
      evaluate: async (input, bindings) => observe(() => evaluateNow(c, input, bindings)),
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

function placeholder(name: string, d: SettingDecl): unknown {
  if (d.enum && d.enum.length > 0) return d.enum[0];
  switch (d.type) {
    case 'number':
    case 'integer':
      return 0;
    case 'boolean':
      return false;
    case 'object':
      return {};
    case 'string':
      return `placeholder-${name}`;
  }
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WabError('WAB_MAPPING_TIMEOUT', `the playground run took longer than ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** The slot an error message names first ("send.request.url: must …"), longest match. */
function slotNamed(message: string, entries: ExplainEntry[]): ExplainEntry | undefined {
  return entries.filter((e) => message.startsWith(`${e.slot}`) && /^[:. ]/.test(message.slice(e.slot.length))).sort((a, b) => b.slot.length - a.slot.length)[0];
}

/** Runs one stage; throws LoadFailure (edited YAML), WabError (bad fixture, settings or input). */
export async function runPlayground(live: Mapping, req: RunRequest): Promise<RunResult> {
  const started = performance.now();
  let mapping = live;
  if (req.yaml !== undefined) {
    const loaded = loadMapping(live.dir, PLAYGROUND_LIMITS, req.yaml);
    if (!loaded.ok) throw new LoadFailure(loaded.errors);
    mapping = loaded.mapping;
  }

  let fixture: Fixture = { description: 'console playground', kind: req.kind };
  const inputs: FixtureInputs = {};
  let label = `${mapping.file} (playground input)`;
  if (req.fixture !== undefined) {
    const dir = fixtureDir(live, req.fixture);
    if (!dir) throw new WabError('WAB_INPUT_INVALID', `no fixture case '${req.fixture}' in ${live.name}`);
    fixture = readFixture(dir);
    if (fixture.kind !== req.kind) throw new WabError('WAB_INPUT_INVALID', `fixture '${req.fixture}' is a ${fixture.kind} case, not ${req.kind}`);
    inputs.input = readInput(dir, fixture.kind);
    if (fixture.message) inputs.messageText = readMessage(dir, fixture.message);
    label = `fixtures/${req.fixture}`;
  }
  if (req.input !== undefined) {
    const sig = mapping.webhook?.signature?.header.toLowerCase();
    // A case's signature header signs the case's body: for an edited body the runner signs anew.
    if (sig && fixture.headers && req.input !== inputs.input?.text) fixture = { ...fixture, headers: Object.fromEntries(Object.entries(fixture.headers).filter(([k]) => k.toLowerCase() !== sig)) };
    inputs.input = { text: req.input, contentType: req.contentType ?? inputs.input?.contentType ?? 'application/json' };
  }
  if (req.message !== undefined) inputs.messageText = req.message;
  if (req.status !== undefined) fixture = { ...fixture, status: req.status };
  if (req.headers !== undefined) fixture = { ...fixture, headers: req.headers };

  // Fake values only: the fixtures' settings.yaml, the case's overrides, what the page sent, then placeholders.
  const given: Record<string, unknown> = { ...loadBaseSettings(live.dir), ...fixture.settings, ...req.settings };
  const placeholders: string[] = [];
  for (const [name, d] of Object.entries(mapping.settings)) {
    if (given[name] === undefined && d.default === undefined) {
      given[name] = placeholder(name, d);
      placeholders.push(name);
    }
  }
  fixture = { ...fixture, settings: undefined };
  const secrets: [string, string][] = Object.entries(mapping.settings)
    .filter(([name, d]) => d.secret && typeof given[name] === 'string')
    .map(([name]) => [name, given[name] as string]);
  if (fixture.token !== undefined) secrets.push(['token', fixture.token]);
  const redact = redactor(secrets);

  const explain: ExplainEntry[] = [];
  let ran: Awaited<ReturnType<typeof runFixture>>;
  try {
    ran = await withDeadline(runFixture(instrument(mapping, explain, redact), label, fixture, inputs, given), RUN_DEADLINE_MS);
  } catch (e) {
    // The golden runner parses a JSON webhook body for its contract check before mapping it.
    if (e instanceof SyntaxError) throw new WabError('WAB_INPUT_INVALID', `the input is not valid JSON: ${e.message}`);
    throw e;
  }
  const result: RunResult = {
    mapping: { name: mapping.name, version: mapping.version, edited: req.yaml !== undefined },
    kind: req.kind,
    output: redactDeep(ran.actual, redact),
    explain,
    placeholders,
    ms: Math.round((performance.now() - started) * 10) / 10,
  };
  if (ran.problem !== undefined) result.problem = redact(ran.problem);
  const failed = (ran.actual as { error?: { code: ErrorCode; message: string } } | undefined)?.error;
  // An input that cannot be read is the request's fault, whichever mapping runs it.
  if (failed?.code === 'WAB_INPUT_INVALID') throw new WabError('WAB_INPUT_INVALID', failed.message);
  if (failed) {
    // The golden runner keeps the message without its place; the slot that failed knows it.
    const at = explain.find((e) => e.error?.code === failed.code) ?? slotNamed(failed.message, explain);
    const where = at?.error?.where ?? at?.where;
    result.error = { code: failed.code, message: redact(failed.message), ...position(where) };
  }
  return result;
}

/** response fixtures: the CleverTap payload that was sent, a file of the case's own folder. */
export function readMessage(dir: string, file: string): string {
  const path = join(dir, file);
  if (!CASE_NAME.test(file) || !existsSync(path)) throw new WabError('WAB_FIXTURE_INVALID', `message: '${file}' is not a file of the case's folder`, dir);
  return readFileSync(path, 'utf8');
}
