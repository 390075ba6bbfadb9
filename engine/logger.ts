// pino, with what must never reach a log file redacted at the source: credentials, tokens and
// phone numbers. Phone numbers keep their first 4 and last 2 digits so support can still match them.
import pino, { type Logger } from 'pino';

/** Keys whose values are replaced, wherever they sit at the top level of a log object or one level down. */
const SECRET_KEYS = ['password', 'accessToken', 'token', 'apiKey', 'secret'];
const CENSOR = '[redacted]';
const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

export function maskPhone(phone: string | undefined): string | undefined {
  if (!phone) return phone;
  const digits = phone.replace(/[^0-9]/g, '');
  if (digits.length <= 6) return '***';
  return `${digits.slice(0, 4)}${'*'.repeat(digits.length - 6)}${digits.slice(-2)}`;
}

/**
 * `v` with its secret keys censored: `v` itself when it has none (the usual case: nothing is copied).
 * A copy keeps the prototype and every own property, so a logged Error keeps its message and stack.
 */
function censored(v: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  let found: string[] | undefined;
  for (const k of keys) if (hasOwn(v, k)) (found ??= []).push(k);
  if (found === undefined) return v;
  const props = Object.getOwnPropertyDescriptors(v);
  for (const k of found) props[k] = { value: CENSOR, enumerable: true, writable: true, configurable: true };
  return (Array.isArray(v) ? Object.defineProperties([], props) : Object.create(Object.getPrototypeOf(v), props)) as Record<string, unknown>;
}

/**
 * A log object with secrets censored, copied only where something is (the caller's object is never
 * changed). pino's own `redact` option did this from paths, but its redactor runs for every key of
 * every line and parses its paths each time: under load a fifth of all the bytes the service allocated.
 */
export function redactLog(obj: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const k in obj) {
    if (!hasOwn(obj, k)) continue;
    const v = obj[k];
    if (typeof v !== 'object' || v === null) continue;
    let r = censored(v as Record<string, unknown>, SECRET_KEYS);
    // a request as fastify logs it: its Authorization header
    if (k === 'req') {
      const headers = r.headers;
      if (typeof headers === 'object' && headers !== null) {
        const h = censored(headers as Record<string, unknown>, ['authorization']);
        if (h !== headers) r = Object.create(Object.getPrototypeOf(r), { ...Object.getOwnPropertyDescriptors(r), headers: { value: h, enumerable: true, writable: true, configurable: true } });
      }
    }
    if (r !== v) (out ??= { ...obj })[k] = r;
  }
  for (const k of SECRET_KEYS) if (hasOwn(obj, k)) (out ??= { ...obj })[k] = CENSOR;
  return out ?? obj;
}

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
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
    destination as pino.DestinationStream | undefined,
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
