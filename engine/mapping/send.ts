// The send flow's mapping steps, free of I/O: CleverTap message → BSP HTTP request, and BSP HTTP
// response (or transport failure) → CleverTap's answer. The host does the actual HTTP call.
import { WabError } from './errors.js';
import { evaluateNow, isPromise, Rejection, type Compiled } from './expression.js';
import type { CompiledRequest, Mapping } from './loader.js';
import { contractViolation, type RequestGuard } from './contract.js';
import type { CanonicalMessage } from '../clevertap/model.js';

export type AnswerCode = 2000 | 2001 | 2002 | 2003 | 2004;

export type Answer = { status: 'success' } | { status: 'failure'; error: { code: AnswerCode; message: string } };

export interface HttpRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  /** Serialized body as it goes on the wire. */
  body?: string;
}

export type SendPlan = { kind: 'request'; request: HttpRequest } | { kind: 'answer'; answer: Answer };

export interface BspResponse {
  status: number;
  headers: Record<string, string>;
  /** Raw response text; parsed as JSON for the mapping when it is JSON. */
  text: string;
}

export interface TransportFailure {
  kind: 'timeout' | 'connect' | 'network';
  message: string;
}

export interface MappedResponse {
  answer: Answer;
  providerMessageId?: string;
}

export const SUCCESS: Answer = Object.freeze({ status: 'success' }) as Answer;

export function failure(code: AnswerCode, message: string): Answer {
  return { status: 'failure', error: { code, message } };
}

/** Throws the refusal planSend turns into an answer. */
function refuse(code: number, reason: string): never {
  // A refusal is an answer, not a fault: its stack trace would never be read, and capturing one
  // costs more than the rest of the refusal.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  let r: Rejection;
  try {
    r = new Rejection(code, reason);
  } finally {
    Error.stackTraceLimit = limit;
  }
  throw r;
}

/** What every send slot is evaluated with: `$reject(code, message)`. */
export const sendBindings = {
  reject(code: unknown, message: unknown): never {
    return refuse(Number(code), message === undefined ? 'rejected by mapping' : String(message));
  },
};

function isAnswerCode(c: unknown): c is AnswerCode {
  return c === 2000 || c === 2001 || c === 2002 || c === 2003 || c === 2004;
}

/** A `{code, message}` value produced by a mapping, checked. */
function toFailure(value: unknown, slot: string): Answer {
  const v = value as { code?: unknown; message?: unknown } | null;
  const code = typeof v?.code === 'string' ? Number(v.code) : v?.code;
  if (!isAnswerCode(code)) {
    throw new WabError('WAB_MAPPING_OUTPUT', `${slot}: must give {"code": 2000-2004, "message": ...}, got ${JSON.stringify(value)}`);
  }
  return failure(code, v?.message === undefined ? 'failure' : String(v.message));
}

function rejectionAnswer(r: Rejection, slot: string): Answer {
  if (!isAnswerCode(r.answerCode)) throw new WabError('WAB_MAPPING_OUTPUT', `${slot}: $reject code must be 2000-2004, got ${r.answerCode}`);
  return failure(r.answerCode, r.reason);
}

/** `slot` + `part` name the value in the error (joined only then: this runs for every header of every message). */
function asString(v: unknown, slot: string, part = ''): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new WabError('WAB_MAPPING_OUTPUT', `${slot}${part}: must give a string, got ${JSON.stringify(v)}`);
}

/** application/x-www-form-urlencoded; arrays repeat the key, objects are sent as JSON text. */
export function formEncode(body: unknown, slot: string): string {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new WabError('WAB_MAPPING_OUTPUT', `${slot}: a form-encoded body must be an object, got ${JSON.stringify(body)}`);
  }
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(body)) {
    for (const item of Array.isArray(v) ? v : [v]) {
      if (item === undefined || item === null) continue;
      params.append(k, typeof item === 'object' ? JSON.stringify(item) : String(item));
    }
  }
  return params.toString();
}

/**
 * URLs a mapping gave that passed the check, with their serialized form: a tenant's send URL is the
 * same string for every message, and parsing it again each time costs more than the rest of the URL
 * step. Bounded: cleared when full.
 */
const checkedUrls = new Map<string, string>();

/** What a request declaration evaluates, in order, and where its Content-Type header sits: once per declaration. */
interface Layout {
  slots: Compiled[];
  /** Which declared headers are a Content-Type (any casing). */
  isContentType: boolean[];
  /** Each header's name in an error message. */
  headerParts: string[];
  /**
   * The last URL checked for this declaration, and its checked form. The URL is concatenated afresh
   * for every message, and the Map look-up, which must first flatten and hash that string, was a
   * third of this step's self time; a tenant's next message usually has the same URL.
   */
  lastUrl?: string;
  lastChecked?: string;
}
const layouts = new WeakMap<CompiledRequest, Layout>();

/** A request declaration's expressions in the order they are evaluated: URL, body, headers, query. */
export function requestSlots(req: CompiledRequest): Compiled[] {
  return [req.url, ...(req.body ? [req.body] : []), ...req.headers.map(([, c]) => c), ...req.query.map(([, c]) => c)];
}

function layoutOf(req: CompiledRequest): Layout {
  let l = layouts.get(req);
  if (!l) {
    layouts.set(req, (l = { slots: requestSlots(req), isContentType: req.headers.map(([name]) => name.toLowerCase() === 'content-type'), headerParts: req.headers.map(([name]) => `.headers.${name}`) }));
  }
  return l;
}

/** Builds the HTTP request a request declaration describes (used for send and media look-ups). */
export async function buildRequest(req: CompiledRequest, input: unknown, slot: string): Promise<HttpRequest> {
  return buildRequestNow(req, input, slot);
}

/**
 * buildRequest without a promise when every slot finishes on the fast path (the usual case). Every
 * slot is evaluated before any is awaited; the first failure in slot order decides, and later
 * failures are observed so none goes unhandled.
 */
export function buildRequestNow(req: CompiledRequest, input: unknown, slot: string, guard?: RequestGuard): HttpRequest | Promise<HttpRequest> {
  const layout = layoutOf(req);
  const { slots } = layout;
  const values: unknown[] = new Array(slots.length);
  let pending = false;
  let i = 0;
  try {
    for (; i < slots.length; i++) {
      const v = evaluateNow(slots[i]!, input, sendBindings);
      if (isPromise(v)) pending = true;
      values[i] = v;
    }
  } catch (e) {
    for (let k = 0; k < i; k++) {
      const v = values[k];
      if (isPromise(v)) v.catch(() => undefined);
    }
    throw e;
  }
  return pending ? Promise.all(values).then((vs) => assemble(req, layout, vs, slot, guard)) : assemble(req, layout, values, slot, guard);
}

function assemble(req: CompiledRequest, layout: Layout, values: unknown[], slot: string, guard: RequestGuard | undefined): HttpRequest {
  const { isContentType, headerParts } = layout;
  let i = 0;
  const url = asString(values[i++], slot, '.url');
  const body = req.body ? values[i++] : undefined;
  const headers: Record<string, string> = {};
  let hasType = false;
  for (let h = 0; h < req.headers.length; h++) {
    const name = req.headers[h]![0];
    const v = asString(values[i++], slot, headerParts[h]);
    if (v !== undefined) {
      headers[name] = v;
      if (isContentType[h]) hasType = true;
    }
  }
  let finalUrl: string | undefined;
  let sameAsLast = false;
  const queryValues: (string | undefined)[] = [];
  if (req.query.length === 0) {
    sameAsLast = url !== undefined && url === layout.lastUrl;
    finalUrl = sameAsLast ? layout.lastChecked : checkedUrls.get(url ?? '');
  } else {
    for (const [name] of req.query) queryValues.push(asString(values[i++], slot, `.query.${name}`));
  }
  if (finalUrl === undefined) {
    let parsed: URL;
    try {
      parsed = new URL(url ?? '');
    } catch {
      throw new WabError('WAB_MAPPING_OUTPUT', `${slot}.url: must give an absolute http(s) URL, got ${JSON.stringify(url)}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new WabError('WAB_MAPPING_OUTPUT', `${slot}.url: must be http or https, got ${parsed.protocol}`);
    }
    req.query.forEach(([name], q) => {
      const v = queryValues[q];
      if (v !== undefined) parsed.searchParams.append(name, v);
    });
    finalUrl = parsed.toString();
    if (req.query.length === 0) {
      if (checkedUrls.size >= 1000) checkedUrls.clear();
      checkedUrls.set(url!, finalUrl);
    }
  }
  if (req.query.length === 0 && !sameAsLast) {
    layout.lastUrl = url;
    layout.lastChecked = finalUrl;
  }
  const out: HttpRequest = { method: req.method, url: finalUrl, headers };
  if (body !== undefined && body !== null) {
    if (req.encoding === 'form') {
      out.body = formEncode(body, `${slot}.body`);
      if (!hasType) headers['Content-Type'] = 'application/x-www-form-urlencoded';
    } else {
      out.body = JSON.stringify(body);
      if (!hasType) headers['Content-Type'] = 'application/json';
    }
  }
  // (the loader allows a guard on JSON bodies only)
  if (guard !== undefined) {
    const violation = contractViolation(guard, body, out.body);
    if (violation !== undefined) refuse(2001, violation);
  }
  return out;
}

/** CleverTap message → BSP request, or an immediate answer (validation payload, refusals). */
export async function planSend(mapping: Mapping, message: CanonicalMessage, settings: Record<string, unknown>, token?: string): Promise<SendPlan> {
  // CleverTap's endpoint check must succeed without touching the BSP: there is no real recipient.
  if (message.isValidation) return { kind: 'answer', answer: SUCCESS };
  const input = token === undefined ? { message, settings } : { message, settings, token };
  try {
    if (mapping.send.reject) {
      let refused = evaluateNow(mapping.send.reject, input, sendBindings);
      if (isPromise(refused)) refused = await refused;
      if (refused !== undefined && refused !== null && refused !== false) {
        return { kind: 'answer', answer: toFailure(refused, 'send.reject') };
      }
    }
    // contracts.enforce: a body the BSP's schema refuses is answered here and never sent.
    const request = buildRequestNow(mapping.send.request, input, 'send.request', mapping.send.guard);
    return { kind: 'request', request: isPromise(request) ? await request : request };
  } catch (e) {
    if (e instanceof Rejection) return { kind: 'answer', answer: rejectionAnswer(e, 'send') };
    throw e;
  }
}

/** A BSP answer's body as mappings see it: parsed JSON, a form as an object, else the text. */
export function parseResponseBody(r: BspResponse): unknown {
  // (the HTTP client gives lower-case names; a response from elsewhere may not)
  const type = r.headers['content-type'] ?? Object.entries(r.headers).find(([k]) => k.toLowerCase() === 'content-type')?.[1] ?? '';
  const t = r.text.trim();
  if (type.includes('json') || t.startsWith('{') || t.startsWith('[')) {
    try {
      return JSON.parse(t);
    } catch {
      return r.text;
    }
  }
  if (type.includes('x-www-form-urlencoded')) return formDecode(r.text);
  return r.text;
}

/** BSP HTTP response → CleverTap answer plus the BSP's message id. */
export async function mapResponse(mapping: Mapping, message: CanonicalMessage, settings: Record<string, unknown>, response: BspResponse): Promise<MappedResponse> {
  const input = { message, settings, status: response.status, headers: lowerCaseKeys(response.headers), body: parseResponseBody(response) };
  const r = mapping.send.response;
  try {
    // (evaluated without a promise when the fast path finishes: this runs for every message)
    let ok = evaluateNow(r.success, input, sendBindings);
    if (isPromise(ok)) ok = await ok;
    if (ok) {
      let id: unknown;
      if (r.providerMessageId) {
        id = evaluateNow(r.providerMessageId, input, sendBindings);
        if (isPromise(id)) id = await id;
      }
      const providerMessageId = asString(id, 'send.response.providerMessageId');
      return providerMessageId === undefined ? { answer: SUCCESS } : { answer: SUCCESS, providerMessageId };
    }
    return { answer: toFailure(await r.error.evaluate(input, sendBindings), 'send.response.error') };
  } catch (e) {
    if (e instanceof Rejection) return { answer: rejectionAnswer(e, 'send.response') };
    throw e;
  }
}

/** BSP unreachable or too slow → CleverTap answer (2004 unless the mapping says otherwise). */
export async function mapTransportError(mapping: Mapping, message: CanonicalMessage, settings: Record<string, unknown>, error: TransportFailure): Promise<Answer> {
  const what = { timeout: 'did not answer in time', connect: 'could not be connected to', network: 'connection failed' }[error.kind];
  const fallback = failure(2004, `BSP ${what}: ${error.message}`);
  if (!mapping.send.transportError) return fallback;
  const v = await mapping.send.transportError.evaluate({ message, settings, error }, sendBindings);
  return v === undefined || v === null ? fallback : toFailure(v, 'send.transportError');
}

/**
 * HTTP headers with lower-case names, as mappings read them (a `__proto__` header stays a plain key):
 * `h` itself when its names are lower-case already, as the HTTP client gives them (mappings only read).
 */
export function lowerCaseKeys(h: Record<string, string>): Record<string, string> {
  let lower = true;
  for (const k in h) {
    if (k === '__proto__' || k !== k.toLowerCase()) {
      lower = false;
      break;
    }
  }
  if (lower && Object.getPrototypeOf(h) === Object.prototype) return h;
  const out: Record<string, string> = {};
  for (const k in h) {
    const lower = k.toLowerCase();
    if (lower === '__proto__') Object.defineProperty(out, lower, { value: h[k], enumerable: true, writable: true, configurable: true });
    else out[lower] = h[k]!;
  }
  return out;
}

/** Decodes a form body; a repeated key becomes an array. */
export function formDecode(text: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(text)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}
