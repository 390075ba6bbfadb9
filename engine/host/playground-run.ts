// The console playground's run: one mapping stage (send, response or webhook) on a fixture's or a
// pasted input, with the mapping as loaded or as edited in the page (compiled here, never saved),
// and what each expression did on the way. It runs the golden runner's code, so a fixture's run
// shows what its expected.json holds. Settings come from the fixtures' fake values or placeholders,
// never from a tenant, and whatever looks like a credential is redacted before it leaves.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { WabError, type ErrorCode } from '../mapping/errors.js';
import { DEFAULT_LIMITS, type Limits } from '../mapping/expression.js';
import { loadBaseSettings, readFixture, readInput, runFixture, type Fixture, type FixtureInputs } from '../mapping/golden.js';
import { loadMapping, MAPPING_FILE, type LoadResult, type Mapping } from '../mapping/loader.js';
import type { SettingDecl } from '../mapping/settings.js';
import { functionTracer, instrument, tracedFunction, type ExplainEntry, type FunctionCalls } from './playground-explain.js';
import { redactDeep, redactor, type Redact } from './playground-redact.js';

export const STAGES = ['send', 'response', 'webhook'] as const;
export type Stage = (typeof STAGES)[number];

/** An edited mapping is someone's draft: tighter than the host's limits, so a runaway loop ends soon. */
export const PLAYGROUND_LIMITS: Limits = { maxSteps: 100_000, maxDepth: 300, timeoutMs: 1_000 };
/** The whole run, jsonata's asynchronous evaluations included. */
export const RUN_DEADLINE_MS = 3_000;

export interface Position {
  where: string;
  file: string;
  line: number;
  col: number;
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
  /** Each mapping function called, from a second, traced run of the same input. */
  functions: FunctionCalls[];
  /** Why `functions` is empty or partial, when it is. */
  functionsNote?: string;
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

/** Each case's summary by its fixture.yaml, while that file is unchanged: reading and checking them all takes long on the host's loop. */
const summaries = new Map<string, { mtimeMs: number; summary: FixtureSummary | undefined }>();

/** The mapping's fixture cases of the three stages the playground runs (a malformed one is left out: `wabridge test` names it). */
export function listFixtures(mapping: Mapping): FixtureSummary[] {
  const root = join(mapping.dir, 'fixtures');
  if (!existsSync(root)) return [];
  const out: FixtureSummary[] = [];
  for (const name of readdirSync(root).sort()) {
    const dir = fixtureDir(mapping, name);
    if (!dir) continue;
    const file = join(dir, 'fixture.yaml');
    const { mtimeMs } = statSync(file);
    let known = summaries.get(file);
    if (known?.mtimeMs !== mtimeMs) {
      let summary: FixtureSummary | undefined;
      try {
        const f = readFixture(dir);
        if ((STAGES as readonly string[]).includes(f.kind)) summary = { name, kind: f.kind as Stage, description: f.description };
      } catch {
        summary = undefined;
      }
      summaries.set(file, (known = { mtimeMs, summary }));
    }
    if (known.summary) out.push(known.summary);
  }
  return out;
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

const copies = new Map<string, LoadResult>();
const COPIES_KEPT = 6;

/**
 * The mapping compiled from `text` (the page's edit; undefined: the file on disk), plain or with its
 * functions traced. Compiling a whole mapping takes tens of milliseconds on the host's event loop, so
 * a page running one case after another, or one edit again, reuses the copy; the key holds the
 * text's digest and the files' modification times, so a change on disk is seen.
 */
function loadCopy(live: Mapping, text: string | undefined, traced: boolean): LoadResult {
  const files = [live.dir, ...live.extends.map((name) => join(dirname(live.dir), name))].map((d) => join(d, MAPPING_FILE));
  const stamps = files.map((f) => (existsSync(f) ? statSync(f).mtimeMs : 0)).join(',');
  const key = [live.dir, traced ? 'traced' : 'plain', text === undefined ? '' : createHash('sha256').update(text).digest('hex'), stamps].join('\0');
  let r = copies.get(key);
  if (r) {
    copies.delete(key);
  } else {
    const limits = text === undefined ? DEFAULT_LIMITS : PLAYGROUND_LIMITS;
    r = loadMapping(live.dir, limits, traced ? { text, rewriteFunction: tracedFunction } : { text });
  }
  copies.set(key, r);
  if (copies.size > COPIES_KEPT) copies.delete(copies.keys().next().value!);
  return r;
}

/** Runs one stage; throws LoadFailure (edited YAML), WabError (bad fixture, settings or input). */
export async function runPlayground(live: Mapping, req: RunRequest): Promise<RunResult> {
  const started = performance.now();
  let mapping = live;
  if (req.yaml !== undefined) {
    const loaded = loadCopy(live, req.yaml, false);
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
  const runOn = (m: Mapping) => withDeadline(runFixture(m, label, fixture, inputs, given), RUN_DEADLINE_MS);
  let ran: Awaited<ReturnType<typeof runFixture>>;
  try {
    ran = await runOn(instrument(mapping, explain, redact));
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
    functions: [],
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
  if (mapping.functions > 0) {
    const traced = await traceFunctions(live, mapping, req.yaml, redact, runOn, ran.actual);
    result.functions = traced.functions;
    if (traced.note !== undefined) result.functionsNote = traced.note;
  }
  return result;
}

/**
 * The mapping's function calls: the same input run again on a copy of the mapping whose functions
 * report each call. A second run, so that the first one's output, errors and times are the code the
 * host runs, untouched.
 */
async function traceFunctions(live: Mapping, mapping: Mapping, yaml: string | undefined, redact: Redact, runOn: (m: Mapping) => Promise<{ actual: unknown }>, actual: unknown): Promise<{ functions: FunctionCalls[]; note?: string }> {
  const copy = loadCopy(live, yaml, true);
  if (!copy.ok || copy.mapping.version !== mapping.version) {
    return { functions: [], note: 'function calls not traced: the mapping file on disk is not the version loaded (a failed reload?)' };
  }
  const tracer = functionTracer(redact);
  let note: string | undefined;
  try {
    const again = await runOn(instrument(copy.mapping, [], redact, tracer.bindingsFor));
    if (JSON.stringify(again.actual) !== JSON.stringify(actual)) note = 'the traced run gave another output (a function that relies on a tail call?): its calls may differ from the real run';
  } catch (e) {
    note = `the traced run stopped early: ${redact(e instanceof Error ? e.message : String(e))}`;
  }
  const declared = new Map(mapping.expressions.flatMap((e) => e.uses ?? []).map((u) => [u.name, u.where]));
  const functions = tracer.calls().map((f) => (declared.has(f.name) ? { ...f, where: declared.get(f.name) } : f));
  return note === undefined ? { functions } : { functions, note };
}

/** response fixtures: the CleverTap payload that was sent, a path relative to the case (as the golden runner reads it). */
export function readMessage(dir: string, file: string): string {
  const path = join(dir, file);
  if (!existsSync(path)) throw new WabError('WAB_FIXTURE_INVALID', `message: no file ${file}`, dir);
  return readFileSync(path, 'utf8');
}
