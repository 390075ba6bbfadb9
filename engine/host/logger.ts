// pino, with what must never reach a log file redacted at the source: credentials, tokens and
// phone numbers. Phone numbers keep their first 4 and last 2 digits so support can still match them.
import pino, { type Logger } from 'pino';

/** Keys whose values are replaced, wherever they sit at the top level of a log object or one level down. */
const SECRET_KEYS = ['password', 'accessToken', 'token', 'apiKey', 'secret'];
const CENSOR = '[redacted]';

export function maskPhone(phone: string | undefined): string | undefined {
  if (!phone) return phone;
  const digits = phone.replace(/[^0-9]/g, '');
  if (digits.length <= 6) return '***';
  return `${digits.slice(0, 4)}${'*'.repeat(digits.length - 6)}${digits.slice(-2)}`;
}

/** Fields logged in a masked form wherever they appear at the top level of a line. */
const SERIALIZERS: Record<string, (v: string) => string | undefined> = { to: maskPhone, from: maskPhone };

/**
 * A copy of `v` with `changes` made, or `v` itself when there are none (the usual case). The copy
 * keeps the prototype and every own property, so a logged Error keeps its message and stack.
 */
function withChanges(v: Record<string, unknown>, changes: Map<string, unknown> | undefined): Record<string, unknown> {
  if (changes === undefined) return v;
  const props = Object.getOwnPropertyDescriptors(v);
  for (const [k, value] of changes) props[k] = { value, enumerable: true, writable: true, configurable: true };
  return (Array.isArray(v) ? Object.defineProperties([], props) : Object.create(Object.getPrototypeOf(v), props)) as Record<string, unknown>;
}

/** The secret keys `v` has, each to be censored. */
function secretsOf(v: Record<string, unknown>, keys: readonly string[]): Map<string, unknown> | undefined {
  let found: Map<string, unknown> | undefined;
  for (const k of keys) if (Object.hasOwn(v, k)) (found ??= new Map()).set(k, CENSOR);
  return found;
}

/**
 * A log object with secrets censored, copied only where something is (the caller's object is never
 * changed). pino's own `redact` option did this from paths, but its redactor runs for every key of
 * every line and parses its paths each time: under load a fifth of all the bytes the service allocated.
 */
export function redactLog(obj: Record<string, unknown>): Record<string, unknown> {
  let changes = secretsOf(obj, SECRET_KEYS);
  for (const k in obj) {
    if (!Object.hasOwn(obj, k) || changes?.has(k)) continue;
    const v = obj[k] as Record<string, unknown>;
    if (typeof v !== 'object' || v === null) continue;
    let inner = secretsOf(v, SECRET_KEYS);
    // a request as fastify logs it: its Authorization header
    const headers = k === 'req' ? (v.headers as Record<string, unknown>) : undefined;
    if (typeof headers === 'object' && headers !== null) {
      const h = withChanges(headers, secretsOf(headers, ['authorization']));
      if (h !== headers) (inner ??= new Map()).set('headers', h);
    }
    if (inner !== undefined) (changes ??= new Map()).set(k, withChanges(v, inner));
  }
  return withChanges(obj, changes);
}

/** A destination that also takes a line already encoded (hotLine writes those). */
export interface ByteDestination extends pino.DestinationStream {
  writeBytes(line: Buffer): void;
}

/**
 * Where log lines go by default: pino's own asynchronous destination (sonic-boom, flushed at exit) on
 * stdout or a file, in buffer mode. In its default string mode sonic-boom measures the UTF-8 length
 * of the whole pending chunk (up to 16 KB) again on every line, which flattens and copies it; under
 * load the lines of one turn of the event loop pile up there, and that copy was 8 KB of garbage per
 * log line (a seventh of all the bytes an answer allocated at -c 1500). In buffer mode it keeps
 * lengths, and a line costs one Buffer of its own size.
 */
export function logDestination(dest: number | string = 1): ByteDestination {
  const sink = pino.destination({ dest, minLength: 0, contentMode: 'buffer' });
  return {
    write: (line: string) => sink.write(Buffer.from(line, 'utf8') as unknown as string),
    writeBytes: (line: Buffer) => sink.write(line as unknown as string),
    flush: (cb?: (err?: Error) => void) => sink.flush(cb),
  } as ByteDestination;
}

export function createLogger(level: string, destination: NodeJS.WritableStream | pino.DestinationStream = logDestination()): Logger {
  const logger = pino(
    {
      level,
      base: { service: 'wabridge' },
      formatters: { log: redactLog },
      serializers: SERIALIZERS,
    },
    destination as pino.DestinationStream,
  );
  // pino passes a child's bindings through no formatter: they are censored on the way in. Children
  // are made from their parent's prototype, so every descendant calls this one.
  const child = logger.child;
  logger.child = function (this: Logger, bindings, options) {
    return child.call(this, redactLog(bindings), options);
  } as Logger['child'];
  return logger;
}

// ---------------------------------------------------------------------------------------------
// Hot lines: one line per message at info, written as bytes.

const { chindingsSym, lsCacheSym, streamSym, timeSym } = pino.symbols as unknown as Record<'chindingsSym' | 'lsCacheSym' | 'streamSym' | 'timeSym', symbol>;
type PinoInternals = Logger & { [k: symbol]: unknown };

// pino's quoting of a string value: JSON.stringify past 100 characters or with a control character,
// otherwise only quote and backslash escaped.
const QUOTE_OR_BACKSLASH = /["\\]/g;

function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) < 32) return true;
  return false;
}

const INFO = 30;
const censor = () => CENSOR;
// One buffer the lines are put together in; each line leaves in a Buffer of its own size.
let scratch = Buffer.allocUnsafe(4096);

/** Makes room for `bytes` more at `at`, keeping what is written before it. */
function room(at: number, bytes: number): void {
  if (at + bytes <= scratch.length) return;
  const bigger = Buffer.allocUnsafe(Math.max(scratch.length * 2, at + bytes));
  scratch.copy(bigger, 0, 0, at);
  scratch = bigger;
}

/** Writes `s` as UTF-8 at `at` (at most 3 bytes a UTF-16 unit); returns where it ends. */
function put(s: string, at: number): number {
  room(at, s.length * 3);
  return at + scratch.write(s, at, 'utf8');
}

/**
 * Writes `s` at `at` byte by byte when it is printable ASCII with nothing to escape (ids, codes, masked
 * numbers: nearly every value), as pino would quote it when `quoted`; returns where it ends, or -1
 * (nothing usable written) for anything else. A JavaScript loop over a few dozen bytes costs less than
 * the call into Buffer#write it replaces, and a line is a dozen such pieces.
 */
function putAscii(s: string, at: number, quoted: boolean): number {
  const n = s.length;
  room(at, n + 2);
  const b = scratch;
  let i = at;
  if (quoted) b[i++] = 34;
  for (let k = 0; k < n; k++) {
    const c = s.charCodeAt(k);
    if (c < 32 || c > 126 || (quoted && (c === 34 || c === 92))) return -1;
    b[i++] = c;
  }
  if (quoted) b[i++] = 34;
  return i;
}

/** A string value quoted as pino quotes it. */
function putString(v: string, at: number): number {
  if (v.length <= 100) {
    const end = putAscii(v, at, true);
    if (end >= 0) return end;
  }
  if (v.length > 100 || hasControl(v)) return put(JSON.stringify(v), at);
  at = put('"', at);
  at = put(v.replace(QUOTE_OR_BACKSLASH, '\\$&'), at);
  return put('"', at);
}

/** Text pino made (level, time, bindings: JSON already), ASCII byte by byte, anything else encoded. */
function putRaw(s: string, at: number): number {
  const end = putAscii(s, at, false);
  return end >= 0 ? end : put(s, at);
}

/** A finite number as String(v) gives it; small non-negative integers (the usual) digit by digit. */
function putNumber(v: number, at: number): number {
  if (!(Number.isInteger(v) && v >= 0 && v < 1e15)) return put(Number.isFinite(v) ? String(v) : 'null', at);
  room(at, 16);
  let digits = 1;
  for (let x = v; x >= 10; x = Math.floor(x / 10)) digits++;
  let i = at + digits;
  for (let x = v; i > at; x = Math.floor(x / 10)) scratch[--i] = 48 + (x % 10);
  return at + digits;
}

function copy(b: Buffer, at: number): number {
  const n = b.length;
  room(at, n);
  const out = scratch;
  for (let k = 0; k < n; k++) out[at + k] = b[k]!;
  return at + n;
}

/**
 * A writer for a line logged at info for every message, with fixed keys and flat values (strings,
 * numbers, undefined to leave the key out): the bytes pino writes for `log.info({ ...fields }, msg)`,
 * with the same serializers and censoring, put together straight into a buffer. pino's generic path
 * (its formatter, a serializer lookup and a quoted key per field, a string grown piece by piece, then
 * encoded) allocated 3 KB and took 3-4 µs for the send flow's 'message' line: a sixth of the bytes a
 * message costs wabridge itself (bench/send-flow.ts). Lines to a destination that takes only strings
 * (tests, a stream passed in) go through pino as before.
 */
export function hotLine(keys: readonly string[], msg: string): (log: Logger, values: readonly (string | number | undefined)[]) => void {
  const heads = keys.map((k) => Buffer.from(`,${JSON.stringify(k)}:`, 'utf8'));
  const serializers = keys.map((k) => (SECRET_KEYS.includes(k) ? censor : SERIALIZERS[k]));
  const tail = Buffer.from(`,"msg":${JSON.stringify(msg)}}\n`, 'utf8');
  return (log, values) => {
    if (!log.isLevelEnabled('info')) return;
    const internals = log as PinoInternals;
    const dest = internals[streamSym] as Partial<ByteDestination>;
    if (typeof dest.writeBytes !== 'function') {
      const fields: Record<string, string | number | undefined> = {};
      keys.forEach((k, i) => (fields[k] = values[i]));
      log.info(fields, msg);
      return;
    }
    let at = putRaw((internals[lsCacheSym] as Record<number, string>)[INFO]!, 0);
    at = putRaw((internals[timeSym] as () => string)(), at);
    at = putRaw(internals[chindingsSym] as string, at);
    for (let i = 0; i < keys.length; i++) {
      let v = values[i];
      const serialize = serializers[i];
      // a secret key is censored even when it holds nothing, as the log formatter does
      if (serialize !== undefined && (v !== undefined || serialize === censor)) v = serialize(v as string);
      if (v === undefined) continue;
      at = copy(heads[i]!, at);
      if (typeof v === 'number') at = putNumber(v, at);
      else at = putString(v, at);
    }
    at = copy(tail, at);
    const line = Buffer.allocUnsafe(at);
    scratch.copy(line, 0, 0, at);
    dest.writeBytes(line);
  };
}

export type { Logger };
