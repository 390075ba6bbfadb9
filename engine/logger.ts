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

/**
 * Where log lines go by default: pino's own asynchronous destination (sonic-boom, flushed at exit) on
 * stdout or a file, in buffer mode. In its default string mode sonic-boom measures the UTF-8 length
 * of the whole pending chunk (up to 16 KB) again on every line, which flattens and copies it; under
 * load the lines of one turn of the event loop pile up there, and that copy was 8 KB of garbage per
 * log line (a seventh of all the bytes an answer allocated at -c 1500). In buffer mode it keeps
 * lengths, and a line costs one Buffer of its own size.
 */
export function logDestination(dest: number | string = 1): pino.DestinationStream {
  const sink = pino.destination({ dest, minLength: 0, contentMode: 'buffer' });
  return {
    write: (line: string) => sink.write(Buffer.from(line, 'utf8') as unknown as string),
    flush: (cb?: (err?: Error) => void) => sink.flush(cb),
  } as pino.DestinationStream;
}

export function createLogger(level: string, destination: NodeJS.WritableStream | pino.DestinationStream = logDestination()): Logger {
  const logger = pino(
    {
      level,
      base: { service: 'wabridge' },
      formatters: { log: redactLog },
      serializers: {
        to: (v: string) => maskPhone(v),
        from: (v: string) => maskPhone(v),
      },
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

export type { Logger };
