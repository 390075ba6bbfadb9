// The webhook flow's mapping steps, free of I/O: handshake answers, signature checks, and a BSP
// webhook body → status and incoming events. The host resolves ids and delivers callbacks.
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { WabError } from './errors.js';
import { evaluateNow, isPromise } from './expression.js';
import type { Mapping } from './loader.js';
import { describeError, pointerToPath, projectSchema, usefulErrors, validatorFor } from './schema-validator.js';
import { formDecode, lowerCaseKeys } from './send.js';

export interface WebhookRequest {
  /** Full URL the BSP called (some signature schemes sign it with the parameters). */
  url: string;
  headers: Record<string, string>;
  query: Record<string, string | string[]>;
  rawBody: string;
}

export interface StatusEvent {
  event: 'status';
  providerMessageId?: string;
  msgId?: string;
  status: 'sent' | 'delivered' | 'read' | 'failed' | 'clicked';
  timestamp?: string;
  recipient?: string;
  error?: { code: number; title: string };
  providerError?: Record<string, unknown>;
  url?: string;
  shortUrl?: string;
  userAgent?: string;
}

export interface IncomingEvent {
  event: 'incoming';
  providerMessageId?: string;
  replyTo?: string;
  message: { from: string; wabaNumber?: string; timestamp: string; type: string } & Record<string, unknown>;
}

export type WebhookEvent = StatusEvent | IncomingEvent;

export function parseWebhookBody(rawBody: string, contentType: string | undefined): unknown {
  const type = (contentType ?? '').toLowerCase();
  if (type.includes('x-www-form-urlencoded')) return formDecode(rawBody);
  // (a test, not trim(): trim copies the whole body)
  if (!/\S/.test(rawBody)) return undefined;
  try {
    return JSON.parse(rawBody);
  } catch (e) {
    throw new WabError('WAB_INPUT_INVALID', `webhook body is not valid JSON: ${(e as Error).message}`);
  }
}

/** What a webhook's expressions are evaluated on: the parsed body, the raw body, headers (lower-cased), query, URL, settings. */
export function webhookInput(req: WebhookRequest, settings: Record<string, unknown>) {
  const headers = lowerCaseKeys(req.headers);
  return { body: parseWebhookBody(req.rawBody, headers['content-type']), rawBody: req.rawBody, headers, query: req.query, url: req.url, settings };
}

export type HandshakeResult = { status: 200; body: string } | { status: 403; body: string };

/** Answers a GET verification request, or undefined when the request is not a handshake. */
export async function handshake(mapping: Mapping, req: Pick<WebhookRequest, 'headers' | 'query'>, settings: Record<string, unknown>): Promise<HandshakeResult | undefined> {
  const h = mapping.webhook?.handshake;
  if (!h) return undefined;
  const input = { query: req.query, headers: lowerCaseKeys(req.headers), settings };
  if (!(await h.match.evaluate(input))) return undefined;
  if (!(await h.accept.evaluate(input))) return { status: 403, body: 'verification token mismatch' };
  const body = await h.respond.evaluate(input);
  return { status: 200, body: body === undefined || body === null ? '' : String(body) };
}

export type SignatureResult = { ok: true } | { ok: false; reason: string };

/** Checks the signature a mapping declares; mappings without a declaration accept everything. */
export async function verifySignature(mapping: Mapping, req: WebhookRequest, settings: Record<string, unknown>): Promise<SignatureResult> {
  const sig = mapping.webhook?.signature;
  if (!sig) return { ok: true };
  const headers = lowerCaseKeys(req.headers);
  let given = headers[sig.header.toLowerCase()];
  if (!given) return { ok: false, reason: `missing ${sig.header} header` };
  if (sig.prefix) {
    if (!given.startsWith(sig.prefix)) return { ok: false, reason: `${sig.header} does not start with ${sig.prefix}` };
    given = given.slice(sig.prefix.length);
  }
  const secret = settings[sig.secret];
  if (typeof secret !== 'string' || secret === '') return { ok: false, reason: `setting ${sig.secret} (the signing secret) is empty` };
  const payload = sig.payload ? String(await sig.payload.evaluate(webhookInput(req, settings))) : req.rawBody;
  if (sig.algorithm === 'jwt-hs256') return verifyJwt(given.trim(), secret, payload, sig.header);
  const expected = createHmac(sig.algorithm === 'hmac-sha1' ? 'sha1' : 'sha256', secret).update(payload, 'utf8').digest();
  const actual = Buffer.from(given.trim(), sig.encoding ?? 'hex');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) return { ok: false, reason: `${sig.header} does not match the body` };
  return { ok: true };
}

/**
 * A JWT signed with HS256 over the shared secret (a common form of signed webhooks). Besides the
 * signature, a `payload_hash` claim (hex SHA-256 of the body) must match the body and `exp`, when
 * present, must not have passed: a captured token cannot be replayed with another body.
 */
function verifyJwt(token: string, secret: string, body: string, header: string, now = Date.now()): SignatureResult {
  const parts = token.split('.');
  if (parts.length !== 3) return { ok: false, reason: `${header} is not a JWT` };
  const [head, claims, mac] = parts as [string, string, string];
  let alg: unknown;
  let payload: { payload_hash?: unknown; exp?: unknown };
  try {
    alg = (JSON.parse(Buffer.from(head, 'base64url').toString('utf8')) as { alg?: unknown }).alg;
    payload = JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')) as typeof payload;
  } catch {
    return { ok: false, reason: `${header} is not a JWT` };
  }
  if (alg !== 'HS256') return { ok: false, reason: `${header}: JWT alg must be HS256, got ${String(alg)}` };
  const expected = createHmac('sha256', secret).update(`${head}.${claims}`).digest();
  const actual = Buffer.from(mac, 'base64url');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) return { ok: false, reason: `${header} JWT signature does not match` };
  if (typeof payload.exp === 'number' && payload.exp * 1000 < now) return { ok: false, reason: `${header} JWT expired` };
  if (payload.payload_hash !== undefined && payload.payload_hash !== createHash('sha256').update(body, 'utf8').digest('hex')) {
    return { ok: false, reason: `${header} JWT payload_hash does not match the body` };
  }
  return { ok: true };
}

function jwtFor(secret: string, body: string, now = Date.now()): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const iat = Math.floor(now / 1000);
  const unsigned = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ iat, jti: randomUUID(), payload_hash: createHash('sha256').update(body, 'utf8').digest('hex') })}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

/** Computes the signature header value a BSP would send; used by tests and the BSP simulator. */
export function sign(mapping: Mapping, payload: string, secret: string): string {
  const sig = mapping.webhook?.signature;
  if (!sig) throw new WabError('WAB_MAPPING_SCHEMA', `${mapping.name} declares no webhook.signature`);
  if (sig.algorithm === 'jwt-hs256') return `${sig.prefix ?? ''}${jwtFor(secret, payload)}`;
  const digest = createHmac(sig.algorithm === 'hmac-sha1' ? 'sha1' : 'sha256', secret).update(payload, 'utf8').digest(sig.encoding ?? 'hex');
  return `${sig.prefix ?? ''}${digest}`;
}

/**
 * True when `v` is already what `JSON.parse(JSON.stringify(v))` would give: plain objects (no absent
 * keys, no `__proto__` key), arrays without jsonata's sequence flags, strings, finite numbers other
 * than -0, booleans and null, at most 64 levels deep. A mapping's events nearly always are (object
 * constructors drop absent values, the input is parsed JSON), and checking costs a fifth of copying.
 */
function isPlainData(v: unknown, depth: number): boolean {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(v) && !(v === 0 && 1 / v < 0);
    case 'object': {
      if (v === null) return true;
      if (depth > 64) return false;
      if (Array.isArray(v)) {
        const flags = v as { sequence?: unknown; keepSingleton?: unknown; outerWrapper?: unknown };
        if (flags.sequence !== undefined || flags.keepSingleton !== undefined || flags.outerWrapper !== undefined) return false;
        for (let i = 0; i < v.length; i++) if (!isPlainData(v[i], depth + 1)) return false;
        return true;
      }
      if (Object.getPrototypeOf(v) !== Object.prototype) return false;
      for (const k in v) {
        const value = (v as Record<string, unknown>)[k];
        if (typeof value === 'string' || typeof value === 'boolean') continue;
        if (value === undefined || k === '__proto__' || !isPlainData(value, depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/** BSP webhook → events, checked against schemas/events.schema.json. */
export async function mapWebhook(mapping: Mapping, req: WebhookRequest, settings: Record<string, unknown>): Promise<WebhookEvent[]> {
  if (!mapping.webhook) throw new WabError('WAB_MAPPING_SCHEMA', `${mapping.name} declares no webhook`, mapping.file);
  let out = evaluateNow(mapping.webhook.events, webhookInput(req, settings));
  if (isPromise(out)) out = await out;
  // JSONata yields a bare value for a one-item sequence and undefined for an empty one; a sequence
  // itself becomes a fresh plain array (slice() keeps the items, not the flags).
  const events = (out === undefined || out === null ? [] : Array.isArray(out) ? out.slice() : [out]) as unknown[];
  // What is not plain JSON data already (rare) goes through JSON, as it will when stored.
  const plain = (isPlainData(events, 0) ? events : JSON.parse(JSON.stringify(events))) as WebhookEvent[];
  const validate = validatorFor(projectSchema('events.schema.json'));
  if (!validate(plain)) {
    const problems = usefulErrors(validate.errors ?? []).map((e) => `events${pointerToPath(e.instancePath).map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('')}: ${describeError(e)}`);
    throw new WabError('WAB_MAPPING_OUTPUT', `webhook.events: ${[...new Set(problems)].join('; ')}`, mapping.webhook.eventsAt);
  }
  return plain;
}

/**
 * The body cut by the mapping's `webhook.split` into bodies of one item each, as requests of their
 * own (JSON bodies; the headers, query and URL of the original). Undefined when the mapping declares
 * no split or the body is form-encoded (a piece could not be written back in the BSP's encoding).
 */
export async function splitWebhook(mapping: Mapping, req: WebhookRequest, settings: Record<string, unknown>): Promise<WebhookRequest[] | undefined> {
  const split = mapping.webhook?.split;
  if (!split) return undefined;
  const input = webhookInput(req, settings);
  if (input.headers['content-type']?.toLowerCase().includes('x-www-form-urlencoded')) return undefined;
  const out = await split.evaluate(input);
  const pieces = out === undefined || out === null ? [] : Array.isArray(out) ? out : [out];
  return pieces.map((piece: unknown, i) => {
    if (typeof piece !== 'object' || piece === null) throw new WabError('WAB_MAPPING_OUTPUT', `webhook.split: piece ${i} is ${piece === null ? 'null' : typeof piece}, not a body`);
    return { ...req, rawBody: JSON.stringify(piece) };
  });
}
