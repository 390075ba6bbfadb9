// A local stand-in for any BSP, for the quickstart demo and end-to-end tests. Nothing BSP-specific
// lives here: mappings/<bsp>/simulator.yaml says which requests are send calls, how the BSP answers
// them (per scenario) and what its status and inbound webhooks look like; the mapping's own
// webhook.signature says how webhooks are signed. Binds 127.0.0.1 only and never calls anything but
// the webhook URL it is given. Format: docs/standins.md.
import { randomBytes, randomUUID, createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join, relative, resolve } from 'node:path';
import pLimit from 'p-limit';
import { Agent, request as httpRequest } from 'undici';
import { WabError } from '../mapping/errors.js';
import { checkSyntax, compile, type Compiled, type FunctionSource, type SourceRef } from '../mapping/expression.js';
import { loadMapping, type Mapping, type Method } from '../mapping/loader.js';
import { describeError, pointerToPath, projectSchema, usefulErrors, validatorFor } from '../mapping/schema-validator.js';
import { readBody, sendJson } from './http.js';
import { formDecode, formEncode } from '../mapping/send.js';
import { sign } from '../mapping/webhook.js';
import { dotted, locate, locateSchemaError, offsetToPosition, parseYamlSource, type KeyPath, type YamlSource } from '../mapping/yaml-source.js';

export const SIMULATOR_FILE = 'simulator.yaml';

/**
 * Requests and webhooks kept for inspection (the newest). A demo under load sends thousands a second:
 * kept whole, they grew the heap by hundreds of MB a minute and the collector took the time the
 * simulator needed to answer sends.
 */
export const RECORD_LIMIT = 10_000;

function remember<T>(list: T[], item: T): void {
  list.push(item);
  if (list.length >= 2 * RECORD_LIMIT) list.splice(0, list.length - RECORD_LIMIT);
}

// ---------------------------------------------------------------------------------------------
// simulator.yaml

export type ErrorScenario = 'auth' | 'template' | 'number' | 'rate' | 'server';
export type Scenario = 'success' | ErrorScenario | 'slow' | 'hang' | 'shuffled';
export const SCENARIOS: readonly Scenario[] = ['success', 'auth', 'template', 'number', 'rate', 'server', 'slow', 'hang', 'shuffled'];
const ERROR_SCENARIOS: readonly ErrorScenario[] = ['auth', 'template', 'number', 'rate', 'server'];

export interface CompiledResponse {
  status: number;
  headers: [string, Compiled][];
  body: Compiled;
}

interface Route {
  method: Method;
  /** One BSP endpoint, or several that answer alike (a BSP with one URL per message kind). */
  paths: string[][];
}

export interface Simulator {
  name: string;
  title: string;
  file: string;
  defaults: Record<string, unknown>;
  messageId: Compiled;
  authorized?: Compiled;
  send: Route & {
    match?: Compiled;
    recipient: Compiled;
    msgId?: Compiled;
    accepted: CompiledResponse;
    errors: Record<ErrorScenario, CompiledResponse>;
  };
  webhooks: {
    encoding: 'json' | 'form';
    headers: [string, Compiled][];
    status: Compiled;
    failedError: Compiled;
    text: Compiled;
    button: Compiled;
    image?: Compiled;
  };
  media?: Route & { mediaId: Compiled; response: CompiledResponse };
  /** The BSP's webhook verification request, for mappings that declare webhook.handshake. */
  handshake?: { query: Compiled; answer: Compiled };
  expressions: Compiled[];
}

export type SimulatorLoadResult = { ok: true; simulator: Simulator } | { ok: false; errors: WabError[] };

/* eslint-disable @typescript-eslint/no-explicit-any -- the YAML value is schema-validated before it is read */
type Raw = any;

/** Reads and compiles mappings/<bsp>/simulator.yaml; every problem is reported with file:line:col. */
export function loadSimulator(dir: string): SimulatorLoadResult {
  const absDir = resolve(dir);
  const file = join(absDir, SIMULATOR_FILE);
  const shown = relative(process.cwd(), file) || file;
  if (!existsSync(file)) return { ok: false, errors: [new WabError('WAB_MAPPING_NOT_FOUND', `no ${SIMULATOR_FILE} in ${dir}`, shown)] };
  const text = readFileSync(file, 'utf8');
  let src: YamlSource;
  try {
    src = parseYamlSource(shown, text);
  } catch (e) {
    if (e instanceof WabError) return { ok: false, errors: [e] };
    throw e;
  }
  const errors: WabError[] = [];
  const raw = src.value as Raw;
  if (!/^# yaml-language-server: \$schema=\S*simulator\.schema\.json/.test(text)) {
    errors.push(new WabError('WAB_MAPPING_SCHEMA', 'the first line must be `# yaml-language-server: $schema=../../schemas/simulator.schema.json`', `${shown}:1:1`));
  }
  const validate = validatorFor(projectSchema('simulator.schema.json'));
  const valid: boolean = validate(raw);
  if (!valid) {
    for (const e of usefulErrors(validate.errors ?? [])) {
      const { where, path } = locateSchemaError(src, pointerToPath(e.instancePath), e.keyword, e.params as Record<string, unknown>);
      errors.push(new WabError('WAB_MAPPING_SCHEMA', `${dotted(path) || '(top level)'}: ${describeError(e)}`, where));
    }
    return { ok: false, errors };
  }
  if (raw.name !== basename(absDir)) {
    errors.push(new WabError('WAB_MAPPING_SCHEMA', `name: '${raw.name}' must equal the folder name '${basename(absDir)}'`, locate(src, ['name'])));
  }

  const ref = (path: KeyPath): SourceRef => ({
    name: `simulator ${dotted(path)}`,
    locate: (offset) => {
      const p = offsetToPosition(src, path, offset);
      return `${src.file}:${p.line}:${p.col}`;
    },
  });
  const functions: FunctionSource[] = [];
  for (const [name, fnText] of Object.entries<string>(raw.functions ?? {})) {
    const r = ref(['functions', name]);
    const err = checkSyntax(fnText, r);
    if (err) errors.push(err);
    else functions.push({ name, text: fnText, ref: r });
  }
  const expressions: Compiled[] = [];
  const valueAt = (path: KeyPath): unknown => {
    let v: unknown = raw;
    for (const k of path) v = (v as Raw)?.[k];
    return v;
  };
  const expr = (path: KeyPath): Compiled => {
    const r = ref(path);
    const t = String(valueAt(path));
    try {
      const c = compile(t, r, functions);
      expressions.push(c);
      return c;
    } catch (e) {
      if (!(e instanceof WabError)) throw e;
      errors.push(e);
      return { name: r.name, text: t, evaluate: () => Promise.reject(e) };
    }
  };
  const opt = (path: KeyPath): Compiled | undefined => (valueAt(path) === undefined ? undefined : expr(path));
  const exprMap = (path: KeyPath): [string, Compiled][] =>
    Object.keys((valueAt(path) as Record<string, string> | undefined) ?? {}).map((k) => [k, expr([...path, k])]);
  const response = (path: KeyPath): CompiledResponse => ({
    status: (valueAt([...path, 'status']) as number) ?? 200,
    headers: exprMap([...path, 'headers']),
    body: expr([...path, 'body']),
  });
  const route = (path: KeyPath): Route => {
    const p = valueAt([...path, 'path']);
    return { method: valueAt([...path, 'method']) as Method, paths: (Array.isArray(p) ? p : [p]).map((one) => splitPath(String(one))) };
  };

  const simulator: Simulator = {
    name: raw.name,
    title: raw.title,
    file: shown,
    defaults: raw.defaults ?? {},
    messageId: expr(['messageId']),
    authorized: opt(['authorized']),
    send: {
      ...route(['send']),
      match: opt(['send', 'match']),
      recipient: expr(['send', 'recipient']),
      msgId: opt(['send', 'msgId']),
      accepted: response(['send', 'accepted']),
      errors: Object.fromEntries(ERROR_SCENARIOS.map((s) => [s, response(['send', 'errors', s])])) as Record<ErrorScenario, CompiledResponse>,
    },
    webhooks: {
      encoding: raw.webhooks.encoding ?? 'json',
      headers: exprMap(['webhooks', 'headers']),
      status: expr(['webhooks', 'status']),
      failedError: expr(['webhooks', 'failedError']),
      text: expr(['webhooks', 'text']),
      button: expr(['webhooks', 'button']),
      image: opt(['webhooks', 'image']),
    },
    media: raw.media ? { ...route(['media']), mediaId: expr(['media', 'mediaId']), response: response(['media', 'response']) } : undefined,
    handshake: raw.handshake ? { query: expr(['handshake', 'query']), answer: expr(['handshake', 'answer']) } : undefined,
    expressions,
  };
  return errors.length > 0 ? { ok: false, errors } : { ok: true, simulator };
}

function splitPath(p: string): string[] {
  return p.split('/').filter((s) => s !== '');
}

function matchPath(route: Route, method: string, path: string): Record<string, string> | undefined {
  if (method !== route.method) return undefined;
  const parts = splitPath(path);
  for (const segments of route.paths) {
    const params = matchSegments(segments, parts);
    if (params) return params;
  }
  return undefined;
}

function matchSegments(segments: string[], parts: string[]): Record<string, string> | undefined {
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const seg = segments[i]!;
    let part: string;
    try {
      part = decodeURIComponent(parts[i]!);
    } catch {
      return undefined;
    }
    if (seg.startsWith(':')) params[seg.slice(1)] = part;
    else if (seg !== part) return undefined;
  }
  return params;
}

// ---------------------------------------------------------------------------------------------
// the server

export interface SimLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const SILENT: SimLogger = { info() {}, warn() {}, error() {} };

export interface StatusDelays {
  sent: number;
  delivered: number;
  read: number;
}

export interface BspSimulatorOptions {
  /** mappings/<bsp>: holds mapping.yaml (for webhook.signature and setting defaults) and simulator.yaml. */
  mappingDir: string;
  /** The tenant's settings, as wabridge has them (the signing secret included). */
  settings: Record<string, unknown>;
  /** Where status and inbound webhooks go (wabridge's webhook endpoint for this tenant). */
  webhookUrl: string;
  port?: number;
  host?: '127.0.0.1';
  /** Listen backlog (default Node's 511); load tests opening thousands of connections at once need more, capped by net.core.somaxconn. */
  backlog?: number;
  /** Delay from acceptance to each status webhook. Default 50 / 150 / 300 ms. */
  statusDelaysMs?: Partial<StatusDelays>;
  /** Post status webhooks for accepted sends (default true). false: none, e.g. to load-test the send path alone. */
  statusWebhooks?: boolean;
  /** How long scenario 'slow' waits before answering (default 1500 ms, past CleverTap's 1 s). */
  slowMs?: number;
  /** First webhook retry delay; doubles per retry (default 200 ms). At most 3 retries. */
  retryDelayMs?: number;
  /** Per-attempt timeout for a webhook POST (default 5000 ms). */
  webhookTimeoutMs?: number;
  /**
   * Connections the webhooks share (default 64), kept alive; more webhooks due at once wait for one,
   * as a real BSP's webhook sender holds a bounded pool. Unbounded, a burst of statuses opened a
   * connection each: at -c 1500 thousands at a time, then TIME_WAIT used up the loopback's ports and
   * new clients of the host could not connect at all.
   */
  webhookConnections?: number;
  /** [0, 1) source for scenario 'shuffled' (default Math.random); tests pin it to replay an order. */
  random?: () => number;
  logger?: SimLogger;
}

export interface ScenarioSetting {
  scenario: Scenario;
  /** For 'slow': how long to wait before answering. */
  delayMs?: number;
  /** Apply to the next N send calls only, then return to 'success'. */
  times?: number;
}

export interface SimRequest {
  seq: number;
  at: string;
  method: string;
  path: string;
  query: Record<string, string | string[]>;
  headers: Record<string, string>;
  body: unknown;
  rawBody: string;
  recipient?: string;
  msgId?: string;
  scenario: Scenario;
  /** HTTP status answered, or 'hang' while the request is held open. */
  answered?: number | 'hang';
  providerMessageId?: string;
}

export interface SimWebhook {
  kind: 'status' | 'text' | 'button' | 'image';
  /** For status webhooks: the status posted. */
  status?: string;
  providerMessageId: string;
  msgId?: string;
  body: unknown;
  rawBody: string;
  headers: Record<string, string>;
  attempts: number;
  /** HTTP status of the last attempt, or the error that ended it. */
  outcome?: number | string;
  delivered: boolean;
}

export interface InboundInput {
  from: string;
  text?: string;
  button?: { payload: string; text: string };
  image?: { mimeType?: string; caption?: string };
  replyTo?: string;
  name?: string;
}

export interface StatusInput {
  providerMessageId: string;
  status: 'sent' | 'delivered' | 'read' | 'failed';
  /** The recipient's number (default 919999999999). */
  recipient?: string;
  /** The CleverTap msgId, for BSPs that echo a caller reference in their statuses. */
  msgId?: string;
  /** Seconds since the epoch, as a string (default now). */
  timestamp?: string;
}

export interface InboundResult {
  id: string;
  kind: SimWebhook['kind'];
  mediaId?: string;
  delivered: boolean;
  outcome?: number | string;
}

export interface BspSimulator {
  url: string;
  port: number;
  simulator: Simulator;
  mapping: Mapping;
  close(): Promise<void>;
  setScenario(s: Scenario | ScenarioSetting): void;
  scenario(): ScenarioSetting;
  /** Posts an inbound webhook (text, button reply or image) now; resolves once delivered or given up. */
  sendInbound(input: InboundInput): Promise<InboundResult>;
  /**
   * The status webhook the BSP would post for one of its message ids, body and (signed) headers, from
   * simulator.yaml's webhooks.status (and failedError for `failed`); built only, neither posted nor
   * recorded, so a test can post it itself, as often as it likes, and read the answer.
   */
  statusWebhook(input: StatusInput): Promise<Pick<SimWebhook, 'body' | 'rawBody' | 'headers'>>;
  /** The send calls received, oldest first (at least the newest RECORD_LIMIT). */
  sent(): SimRequest[];
  /** The webhooks posted (or being retried), oldest first (at least the newest RECORD_LIMIT). */
  webhooks(): SimWebhook[];
  /** Forgets recorded requests and webhooks and returns to scenario 'success'. */
  reset(): void;
  /** Resolves when no status webhook is scheduled or in flight (rejects after timeoutMs). */
  idle(timeoutMs?: number): Promise<void>;
  /**
   * The verification request the BSP would send (`handshake` in simulator.yaml) and the body it expects
   * back; undefined when none is declared. `settings` override the simulator's own, so a test can
   * build the request a BSP configured with other secrets would send.
   */
  handshakeRequest(settings?: Record<string, unknown>): Promise<{ query: Record<string, string>; answer: string } | undefined>;
}

const MAX_RETRIES = 3;
// A 1x1 transparent PNG: what /_sim/media/<id> serves.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=', 'base64');

function lowerHeaders(h: IncomingMessage['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

function queryOf(u: URL): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of u.searchParams) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

function parseBody(raw: string, contentType: string | undefined): unknown {
  const type = (contentType ?? '').toLowerCase();
  if (type.includes('x-www-form-urlencoded')) return formDecode(raw);
  const t = raw.trim();
  if (t === '') return undefined;
  if (type.includes('json') || t.startsWith('{') || t.startsWith('[')) {
    try {
      return JSON.parse(t);
    } catch {
      return raw;
    }
  }
  return raw;
}


function plain(v: unknown): unknown {
  return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
}

// Nonces come from a pooled buffer: one randomBytes call per answer took 5% of a loaded simulator.
const NONCE_POOL = 16 * 256;
let noncePool = Buffer.alloc(0);
let nonceAt = NONCE_POOL;
function nonce(): string {
  if (nonceAt >= NONCE_POOL) {
    noncePool = randomBytes(NONCE_POOL);
    nonceAt = 0;
  }
  nonceAt += 16;
  return `A${noncePool.toString('base64url', nonceAt - 16, nonceAt).slice(0, 22)}`;
}

function isScenario(s: unknown): s is Scenario {
  return typeof s === 'string' && (SCENARIOS as readonly string[]).includes(s);
}

function settingsFor(sim: Simulator, mapping: Mapping, given: Record<string, unknown>): Record<string, unknown> {
  const defaults = Object.fromEntries(Object.entries(mapping.settings).filter(([, d]) => d.default !== undefined).map(([k, d]) => [k, d.default]));
  return { ...sim.defaults, ...defaults, ...given };
}

export async function startBspSimulator(opts: BspSimulatorOptions): Promise<BspSimulator> {
  const loadedMapping = loadMapping(opts.mappingDir);
  if (!loadedMapping.ok) throw new WabError('WAB_MAPPING_SCHEMA', `mapping does not load: ${loadedMapping.errors.map((e) => e.message).join('; ')}`);
  const loadedSim = loadSimulator(opts.mappingDir);
  if (!loadedSim.ok) throw new WabError('WAB_MAPPING_SCHEMA', `simulator does not load: ${loadedSim.errors.map((e) => e.message).join('; ')}`);
  const mapping = loadedMapping.mapping;
  const sim = loadedSim.simulator;
  const settings = settingsFor(sim, mapping, opts.settings);
  const log = opts.logger ?? SILENT;
  const delays: StatusDelays = { sent: 50, delivered: 150, read: 300, ...opts.statusDelaysMs };
  const slowMs = opts.slowMs ?? 1500;
  const retryDelayMs = opts.retryDelayMs ?? 200;
  const webhookTimeoutMs = opts.webhookTimeoutMs ?? 5000;
  const webhookConnections = opts.webhookConnections ?? 64;
  const webhookAgent = new Agent({ connections: webhookConnections, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000 });
  const webhookSlots = pLimit(webhookConnections);
  const webhookUrl = new URL(opts.webhookUrl);

  let closed = false;
  let seq = 0;
  let current: ScenarioSetting = { scenario: 'success' };
  let requests: SimRequest[] = [];
  let posted: SimWebhook[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const hanging = new Set<ServerResponse>();
  const aborts = new Set<AbortController>();
  const media = new Map<string, { mimeType: string; bytes: Buffer }>();
  let pending = 0;
  let idleWaiters: (() => void)[] = [];
  let baseUrl = '';

  const busy = () => pending++;
  const done = () => {
    pending--;
    if (pending === 0) {
      const w = idleWaiters;
      idleWaiters = [];
      for (const f of w) f();
    }
  };

  /** setTimeout that close() clears; resolves false when the simulator closed meanwhile. */
  const sleepers = new Map<NodeJS.Timeout, () => void>();
  const sleep = (ms: number): Promise<boolean> =>
    new Promise((resolveSleep) => {
      if (closed) return resolveSleep(false);
      const t = setTimeout(() => {
        sleepers.delete(t);
        resolveSleep(!closed);
      }, ms);
      sleepers.set(t, () => resolveSleep(false));
    });

  const newId = async (kind: 'send' | 'inbound'): Promise<string> => {
    const id = await sim.messageId.evaluate({ uuid: randomUUID(), seq: ++seq, kind, settings });
    if (typeof id !== 'string' || id === '') throw new WabError('WAB_MAPPING_OUTPUT', `${sim.messageId.name}: must give a non-empty string, got ${JSON.stringify(id)}`, sim.file);
    return id;
  };

  const evalHeaders = async (list: [string, Compiled][], input: unknown): Promise<Record<string, string>> => {
    const out: Record<string, string> = {};
    for (const [name, c] of list) {
      const v = await c.evaluate(input);
      if (v !== undefined && v !== null) out[name] = String(v);
    }
    return out;
  };

  const respond = async (res: ServerResponse, r: CompiledResponse, input: unknown): Promise<number> => {
    const [body, headers] = await Promise.all([r.body.evaluate(input), evalHeaders(r.headers, input)]);
    const text = typeof body === 'string' ? body : body === undefined ? '' : JSON.stringify(body);
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['Content-Type'] = typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json';
    }
    if (!res.destroyed && !res.headersSent) {
      res.writeHead(r.status, { ...headers, 'Content-Length': String(Buffer.byteLength(text)) });
      res.end(text);
    }
    return r.status;
  };

  // ---- webhooks ---------------------------------------------------------------------------------

  const postWebhook = async (entry: SimWebhook): Promise<void> => {
    for (let attempt = 0; attempt <= MAX_RETRIES; attempt++) {
      if (closed) return;
      if (attempt > 0 && !(await sleep(retryDelayMs * 2 ** (attempt - 1)))) return;
      // The attempt's clock starts when a connection is free: a webhook waiting its turn behind a
      // backlog is not late, and aborting it would only cost a reconnect and a retry.
      const delivered = await webhookSlots(async () => {
        if (closed) return false;
        entry.attempts++;
        const ac = new AbortController();
        aborts.add(ac);
        const timer = setTimeout(() => ac.abort(), webhookTimeoutMs);
        try {
          const res = await httpRequest(webhookUrl, { method: 'POST', headers: entry.headers, body: entry.rawBody, signal: ac.signal, dispatcher: webhookAgent });
          await res.body.dump();
          entry.outcome = res.statusCode;
          return res.statusCode >= 200 && res.statusCode < 300;
        } catch (e) {
          entry.outcome = (e as Error).message;
          return false;
        } finally {
          clearTimeout(timer);
          aborts.delete(ac);
        }
      });
      if (delivered) {
        entry.delivered = true;
        log.info({ kind: entry.kind, status: entry.status, providerMessageId: entry.providerMessageId, http: entry.outcome }, 'bsp-simulator: webhook delivered');
        return;
      }
    }
    if (!closed) {
      log.error({ kind: entry.kind, status: entry.status, providerMessageId: entry.providerMessageId, attempts: entry.attempts, outcome: entry.outcome, url: webhookUrl.toString() }, 'bsp-simulator: webhook not delivered, giving up');
    }
  };

  const buildWebhook = async (kind: SimWebhook['kind'], body: unknown, meta: { status?: string; providerMessageId: string; msgId?: string }, record = true): Promise<SimWebhook> => {
    const value = plain(body);
    const rawBody = sim.webhooks.encoding === 'form' ? formEncode(value, `${sim.file} webhooks.${kind}`) : JSON.stringify(value);
    const headers: Record<string, string> = {
      'Content-Type': sim.webhooks.encoding === 'form' ? 'application/x-www-form-urlencoded' : 'application/json',
      ...(await evalHeaders(sim.webhooks.headers, { kind, body: value, settings })),
    };
    const sig = mapping.webhook?.signature;
    if (sig) {
      const secret = settings[sig.secret];
      if (typeof secret === 'string' && secret !== '') {
        const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
        const payload = sig.payload
          ? String(await sig.payload.evaluate({ body: value, rawBody, headers: lower, query: queryOf(webhookUrl), url: webhookUrl.toString(), settings }))
          : rawBody;
        headers[sig.header] = sign(mapping, payload, secret);
      } else {
        log.warn({ setting: sig.secret }, 'bsp-simulator: signing secret missing from settings; webhook sent unsigned');
      }
    }
    const entry: SimWebhook = { kind, ...meta, body: value, rawBody, headers, attempts: 0, delivered: false };
    if (record) remember(posted, entry);
    return entry;
  };

  const random = opts.random ?? Math.random;

  const scheduleStatuses = (id: string, recipient: string, msgId: string | undefined, request: Record<string, unknown>, shuffled: boolean): void => {
    const fails = recipient.replace(/[^0-9]/g, '').endsWith('0000');
    // `of`: the status a shuffled post carries (both posts of a status share its body).
    type Step = { status: 'sent' | 'delivered' | 'read' | 'failed'; at: number; of?: Step; body?: unknown };
    let plan: Step[] = fails
      ? [{ status: 'sent', at: delays.sent }, { status: 'failed', at: delays.delivered }]
      : [{ status: 'sent', at: delays.sent }, { status: 'delivered', at: delays.delivered }, { status: 'read', at: delays.read }];
    const start = Date.now();
    // Each status keeps the time it happened (its timestamp), but the webhooks go out in a random
    // order, each twice (a BSP retrying a webhook it thinks was lost), spread over the same interval.
    const happened = new Map(plan.map((s) => [s, String(Math.floor((start + s.at) / 1000))]));
    if (shuffled) {
      const posts = plan.flatMap((s) => [{ ...s, of: s }, { ...s, of: s }]);
      for (let i = posts.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [posts[i], posts[j]] = [posts[j]!, posts[i]!];
      }
      const [first, last] = [plan[0]!.at, plan[plan.length - 1]!.at];
      plan = posts.map((s, i) => ({ ...s, at: first + Math.round(((last - first) * i) / (posts.length - 1)) }));
    }
    busy();
    void (async () => {
      try {
        for (const step of plan) {
          const wait = Math.max(0, start + step.at - Date.now());
          if (!(await sleep(wait))) return;
          const original = step.of ?? step;
          if (original.body === undefined) {
            const base = { id, recipient, msgId, settings };
            const error = step.status === 'failed' ? plain(await sim.webhooks.failedError.evaluate(base)) : undefined;
            const timestamp = shuffled ? happened.get(original)! : String(Math.floor(Date.now() / 1000));
            original.body = await sim.webhooks.status.evaluate({ ...base, status: step.status, timestamp, error, request });
          }
          await postWebhook(await buildWebhook('status', original.body, { status: step.status, providerMessageId: id, msgId }));
        }
      } catch (e) {
        log.error({ err: (e as Error).message, providerMessageId: id }, 'bsp-simulator: status webhook failed');
      } finally {
        done();
      }
    })();
  };

  const statusWebhook = async (input: StatusInput): Promise<Pick<SimWebhook, 'body' | 'rawBody' | 'headers'>> => {
    const base = { id: input.providerMessageId, recipient: input.recipient ?? '919999999999', msgId: input.msgId, settings };
    const error = input.status === 'failed' ? plain(await sim.webhooks.failedError.evaluate(base)) : undefined;
    const timestamp = input.timestamp ?? String(Math.floor(Date.now() / 1000));
    const body = await sim.webhooks.status.evaluate({ ...base, status: input.status, timestamp, error, request: {} });
    const { rawBody, headers } = await buildWebhook('status', body, { status: input.status, providerMessageId: input.providerMessageId, msgId: input.msgId }, false);
    return { body: plain(body), rawBody, headers };
  };

  const sendInbound = async (input: InboundInput): Promise<InboundResult> => {
    if (closed) throw new Error('bsp-simulator is closed');
    if (typeof input?.from !== 'string' || !/^\+?[0-9][0-9 ()-]{4,}$/.test(input.from)) {
      throw new WabError('WAB_INPUT_INVALID', `inbound needs "from": the sender's phone number, got ${JSON.stringify(input?.from)}`);
    }
    const id = await newId('inbound');
    const timestamp = String(Math.floor(Date.now() / 1000));
    const base = { id, from: input.from, name: input.name, timestamp, replyTo: input.replyTo, settings };
    let kind: SimWebhook['kind'];
    let body: unknown;
    let mediaId: string | undefined;
    if (input.image) {
      if (!sim.webhooks.image) throw new WabError('WAB_INPUT_INVALID', `${sim.file} declares no webhooks.image`);
      kind = 'image';
      mediaId = String(randomBytes(8).readBigUInt64BE() % 10n ** 16n).padStart(16, '1');
      const mimeType = input.image.mimeType ?? 'image/png';
      media.set(mediaId, { mimeType, bytes: PNG });
      const sha256 = createHash('sha256').update(PNG).digest('base64');
      body = await sim.webhooks.image.evaluate({ ...base, image: { mediaId, mimeType, sha256, caption: input.image.caption } });
    } else if (input.button) {
      kind = 'button';
      body = await sim.webhooks.button.evaluate({ ...base, button: input.button });
    } else if (typeof input.text === 'string') {
      kind = 'text';
      body = await sim.webhooks.text.evaluate({ ...base, text: input.text });
    } else {
      throw new WabError('WAB_INPUT_INVALID', 'inbound needs one of text, button {payload, text} or image');
    }
    const entry = await buildWebhook(kind, body, { providerMessageId: id });
    await postWebhook(entry);
    return { id, kind, mediaId, delivered: entry.delivered, outcome: entry.outcome };
  };

  // ---- BSP routes -------------------------------------------------------------------------------

  const takeScenario = (): ScenarioSetting => {
    const s = current;
    if (s.times !== undefined) {
      const left = s.times - 1;
      current = left > 0 ? { ...s, times: left } : { scenario: 'success' };
    }
    return s;
  };

  const handleSend = async (res: ServerResponse, doc: Record<string, unknown>, record: SimRequest): Promise<void> => {
    const recipient = String((await sim.send.recipient.evaluate(doc)) ?? '');
    const msgIdValue = sim.send.msgId ? await sim.send.msgId.evaluate(doc) : undefined;
    const msgId = msgIdValue === undefined || msgIdValue === null ? undefined : String(msgIdValue);
    record.recipient = recipient;
    record.msgId = msgId;
    const errInput = { ...doc, recipient, msgId, nonce: nonce() };
    if (sim.authorized && !(await sim.authorized.evaluate(doc))) {
      record.answered = await respond(res, sim.send.errors.auth, errInput);
      return;
    }
    const s = takeScenario();
    record.scenario = s.scenario;
    if ((ERROR_SCENARIOS as readonly string[]).includes(s.scenario)) {
      record.answered = await respond(res, sim.send.errors[s.scenario as ErrorScenario], errInput);
      return;
    }
    if (s.scenario === 'hang') {
      record.answered = 'hang';
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      return;
    }
    // Accepted: the id exists from now on, even if the caller gives up waiting (scenario 'slow').
    const id = await newId('send');
    record.providerMessageId = id;
    if (opts.statusWebhooks !== false) scheduleStatuses(id, recipient, msgId, doc, s.scenario === 'shuffled');
    if (s.scenario === 'slow' && !(await sleep(s.delayMs ?? slowMs))) return;
    record.answered = await respond(res, sim.send.accepted, { ...doc, id, recipient, msgId, nonce: nonce() });
  };

  const handleMedia = async (res: ServerResponse, doc: Record<string, unknown>): Promise<void> => {
    const m = sim.media!;
    const mediaId = String((await m.mediaId.evaluate(doc)) ?? '');
    const known = media.get(mediaId) ?? { mimeType: 'image/png', bytes: PNG };
    if (sim.authorized && !(await sim.authorized.evaluate(doc))) {
      await respond(res, sim.send.errors.auth, { ...doc, nonce: nonce() });
      return;
    }
    await respond(res, m.response, {
      ...doc,
      mediaId,
      downloadUrl: `${baseUrl}/_sim/media/${encodeURIComponent(mediaId)}`,
      mimeType: known.mimeType,
      sha256: createHash('sha256').update(known.bytes).digest('base64'),
      fileSize: known.bytes.length,
      nonce: nonce(),
    });
  };

  // ---- control API ------------------------------------------------------------------------------

  const setScenario = (s: Scenario | ScenarioSetting): void => {
    const next = typeof s === 'string' ? { scenario: s } : s;
    if (!isScenario(next.scenario)) throw new WabError('WAB_INPUT_INVALID', `unknown scenario ${JSON.stringify(next.scenario)} (one of ${SCENARIOS.join(', ')})`);
    if (next.times !== undefined && !(Number.isInteger(next.times) && next.times > 0)) throw new WabError('WAB_INPUT_INVALID', 'times must be a positive integer');
    if (next.delayMs !== undefined && !(Number.isFinite(next.delayMs) && next.delayMs >= 0 && next.delayMs <= 60_000)) throw new WabError('WAB_INPUT_INVALID', 'delayMs must be 0-60000');
    current = { ...next };
    log.info({ scenario: current }, 'bsp-simulator: scenario set');
  };

  const reset = (): void => {
    requests = [];
    posted = [];
    current = { scenario: 'success' };
  };

  const control = async (res: ServerResponse, method: string, path: string, body: unknown): Promise<void> => {
    const parts = splitPath(path).slice(1);
    const route = `${method} ${parts[0] ?? ''}`;
    try {
      switch (route) {
        case 'GET ':
          return sendJson(res, 200, { name: sim.name, title: sim.title, scenario: current, webhookUrl: webhookUrl.toString() });
        case 'GET scenario':
          return sendJson(res, 200, current);
        case 'POST scenario':
          setScenario((typeof body === 'string' ? { scenario: body } : body) as ScenarioSetting);
          return sendJson(res, 200, current);
        case 'POST inbound':
          return sendJson(res, 200, await sendInbound((body ?? {}) as InboundInput));
        case 'GET requests':
          return sendJson(res, 200, requests);
        case 'GET webhooks':
          return sendJson(res, 200, posted);
        case 'POST reset':
          reset();
          return sendJson(res, 200, { ok: true });
        case 'GET media': {
          const m = media.get(parts[1] ?? '') ?? { mimeType: 'image/png', bytes: PNG };
          res.writeHead(200, { 'content-type': m.mimeType, 'content-length': String(m.bytes.length) });
          res.end(m.bytes);
          return;
        }
        default:
          return sendJson(res, 404, { error: `no simulator control route ${method} ${path}` });
      }
    } catch (e) {
      return sendJson(res, e instanceof WabError && e.code === 'WAB_INPUT_INVALID' ? 400 : 500, { error: (e as Error).message });
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', baseUrl || 'http://127.0.0.1');
    const method = (req.method ?? 'GET').toUpperCase();
    const rawBody = await readBody(req);
    const headers = lowerHeaders(req.headers);
    const body = parseBody(rawBody, headers['content-type']);
    if (url.pathname === '/_sim' || url.pathname.startsWith('/_sim/')) return control(res, method, url.pathname, body);

    const query = queryOf(url);
    const doc = (params: Record<string, string>) => ({ method, path: url.pathname, params, query, headers, body, rawBody, settings });
    const sendParams = matchPath(sim.send, method, url.pathname);
    if (sendParams && (!sim.send.match || (await sim.send.match.evaluate(doc(sendParams))))) {
      const record: SimRequest = { seq: requests.length + 1, at: new Date().toISOString(), method, path: url.pathname, query, headers, body, rawBody, scenario: current.scenario };
      remember(requests, record);
      await handleSend(res, doc(sendParams), record);
      log.info({ seq: record.seq, recipient: record.recipient, msgId: record.msgId, scenario: record.scenario, answered: record.answered, providerMessageId: record.providerMessageId }, 'bsp-simulator: send');
      return;
    }
    const mediaParams = sim.media ? matchPath(sim.media, method, url.pathname) : undefined;
    if (mediaParams) return handleMedia(res, doc(mediaParams));
    sendJson(res, 404, { error: `bsp-simulator (${sim.name}): no route ${method} ${url.pathname}` });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      log.error({ err: (e as Error).message, url: req.url }, 'bsp-simulator: request failed');
      if (!res.headersSent && !res.destroyed) sendJson(res, 500, { error: `bsp-simulator: ${(e as Error).message}` });
    });
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen({ port: opts.port ?? 0, host: opts.host ?? '127.0.0.1', ...(opts.backlog !== undefined ? { backlog: opts.backlog } : {}) }, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  const port = (server.address() as AddressInfo).port;
  baseUrl = `http://127.0.0.1:${port}`;
  log.info({ url: baseUrl, bsp: sim.name, webhookUrl: webhookUrl.toString() }, 'bsp-simulator: listening');

  return {
    url: baseUrl,
    port,
    simulator: sim,
    mapping,
    setScenario,
    scenario: () => ({ ...current }),
    sendInbound,
    statusWebhook,
    sent: () => requests.map((r) => ({ ...r })),
    webhooks: () => posted.map((w) => ({ ...w })),
    reset,
    async handshakeRequest(overrides = {}) {
      if (!sim.handshake) return undefined;
      const s = { ...settings, ...overrides };
      const query = Object.fromEntries(Object.entries((await sim.handshake.query.evaluate({ settings: s, nonce: nonce() })) as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
      return { query, answer: String(await sim.handshake.answer.evaluate({ query, settings: s })) };
    },
    idle(timeoutMs = 5000) {
      if (pending === 0) return Promise.resolve();
      return new Promise<void>((resolveIdle, reject) => {
        const t = setTimeout(() => {
          timers.delete(t);
          idleWaiters = idleWaiters.filter((f) => f !== onIdle);
          reject(new Error(`bsp-simulator: still ${pending} status sequence(s) pending after ${timeoutMs} ms`));
        }, timeoutMs);
        timers.add(t);
        const onIdle = () => {
          clearTimeout(t);
          timers.delete(t);
          resolveIdle();
        };
        idleWaiters.push(onIdle);
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const [t, wake] of sleepers) {
        clearTimeout(t);
        wake();
      }
      sleepers.clear();
      for (const ac of aborts) ac.abort();
      for (const res of hanging) res.destroy();
      hanging.clear();
      await new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      });
      await webhookAgent.destroy();
      const w = idleWaiters;
      idleWaiters = [];
      for (const f of w) f();
    },
  };
}
