// A real webhook made fit to commit as a golden fixture (`wabridge quarantine to-fixture`): phone
// numbers, names, message texts, ids and credentials replaced by fake values. One Redactor per fixture,
// so a value met twice (a message id in `id` and again in `context.id`, a number in the body and in a
// header) gets the same fake everywhere and the fixture still means what the webhook meant. Keys,
// nesting, arrays and JSON types are kept: the mapping must see the same shape. Fakes come from a
// counter, never from the value (a hash of a phone number is easy to reverse: the space is small).
//
// The engine knows only generic key names; the names one BSP uses for a phone number, a sender's name
// or an id come from its mapping (`fixtures.redact`, docs/mapping-format.md) and win over these rules.
// What is recognised, by the key a value sits under (case-insensitive) and by its form:
// - credentials (token, secret, password, key, signature, authorization): `fake-secret-N`
// - names (name, first_name, display_name, username, …): `Person N`; file names keep their extension
// - message texts (body, text, caption, …): `Text N`
// - ids (id, *_id, *Id, uuid, ref, message_id, …): the same length and character classes (digit for
//   digit, letter for letter, separators kept) and a leading `word.` prefix kept
// - phone numbers: under phone keys (from, to, phone, msisdn, …) every run of 6+ digits; anywhere else
//   a run of 8 to 15 digits (optionally after +), except under time keys (timestamp, *_at, date…),
//   whose values are kept. Fakes keep the length and start with 555.
// - links (url, uri, link, href, …): long tokens in them (16+ letters, digits, - or _: account ids,
//   media ids, signatures) as ids, besides phone numbers; scheme, host and short parts kept
// Numbers stay numbers: under a phone or id key they get a fake of as many digits.

const SECRET_KEY = /token|secret|password|passwd|apikey|api_key|(^|[_-])key$|signature|authorization|cookie/i;
const NAME_KEYS = new Set(['name', 'first_name', 'last_name', 'middle_name', 'full_name', 'sender_name', 'display_name', 'contact_name', 'username', 'user_name']);
const FILE_KEYS = new Set(['filename', 'file_name']);
const TEXT_KEYS = new Set(['body', 'text', 'caption', 'content', 'message_text', 'comment', 'description']);
const PHONE_KEYS = new Set(['from', 'to', 'recipient', 'phone', 'phone_number', 'phonenumber', 'msisdn', 'mobile', 'number', 'sender', 'destination', 'source']);
const ID_KEY = /(^id$|_id$|[a-z]Id$|ID$|^uuid$|_uuid$|^ref$|_ref$|^message_?id$)/;
const TIME_KEY = /time|date|_at$|^ts$|expir/i;
const LINK_KEY = /url|uri|link|href/i;

export type Kind = 'secret' | 'name' | 'file' | 'text' | 'phone' | 'id' | 'time' | 'link' | 'other';

/** A mapping's own key names by kind (`fixtures.redact`). */
export type RedactKeys = Partial<Record<Exclude<Kind, 'other'>, string[]>>;

/** The mapping's key names, lower-cased, for one lookup per key. */
export function keyKinds(keys: RedactKeys | undefined): Map<string, Kind> {
  const out = new Map<string, Kind>();
  for (const [kind, names] of Object.entries(keys ?? {}) as [Kind, string[]][]) for (const name of names) out.set(name.toLowerCase(), kind);
  return out;
}

export function kindOfKey(key: string | undefined, own?: ReadonlyMap<string, Kind>): Kind {
  if (key === undefined) return 'other';
  const k = key.toLowerCase();
  const declared = own?.get(k);
  if (declared !== undefined) return declared;
  if (SECRET_KEY.test(key)) return 'secret';
  if (TIME_KEY.test(key)) return 'time';
  if (PHONE_KEYS.has(k)) return 'phone';
  if (NAME_KEYS.has(k)) return 'name';
  if (FILE_KEYS.has(k)) return 'file';
  if (TEXT_KEYS.has(k)) return 'text';
  if (ID_KEY.test(key)) return 'id';
  if (LINK_KEY.test(key)) return 'link';
  return 'other';
}

const DIGITS = '0123456789';
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const UPPER = LOWER.toUpperCase();

export class Redactor {
  /** original → fake, per kind of fake (a text and an id that happen to be equal stay apart). */
  private readonly seen = new Map<string, string>();
  private readonly counters = new Map<string, number>();
  private readonly own: ReadonlyMap<string, Kind>;

  /** `keys`: the mapping's own key names (`fixtures.redact`), over the generic rules. */
  constructor(keys?: RedactKeys) {
    this.own = keyKinds(keys);
  }

  private fake(kind: string, original: string, make: (n: number) => string): string {
    const key = `${kind}\u0000${original}`;
    let out = this.seen.get(key);
    if (out === undefined) {
      const n = (this.counters.get(kind) ?? 0) + 1;
      this.counters.set(kind, n);
      out = make(n);
      this.seen.set(key, out);
    }
    return out;
  }

  /** A fake run of digits as long as `digits`, starting 555 (or as much of it as fits). */
  phoneDigits(digits: string): string {
    return this.fake('phone', digits, (n) => {
      const tail = String(n);
      const body = `555${tail.padStart(Math.max(0, digits.length - 3), '0')}`;
      return body.length > digits.length ? body.slice(body.length - digits.length) : body;
    });
  }

  /** Same length and character classes; separators and a leading `word.` prefix kept. */
  id(value: string): string {
    return this.fake('id', value, (n) => {
      const prefix = /^[A-Za-z]+\./.exec(value)?.[0] ?? '';
      // xorshift32 seeded by the counter: varied characters, the same ones on every run
      let state = (n * 2654435761) >>> 0 || 1;
      const next = (alphabet: string) => {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        state >>>= 0;
        return alphabet[state % alphabet.length]!;
      };
      let out = prefix;
      for (const ch of value.slice(prefix.length)) out += /[0-9]/.test(ch) ? next(DIGITS) : /[a-z]/.test(ch) ? next(LOWER) : /[A-Z]/.test(ch) ? next(UPPER) : ch;
      return out;
    });
  }

  /** Phone numbers inside a string: runs of `min`+ digits (8 to 15 outside phone keys). */
  private phonesIn(s: string, min: number, max: number): string {
    return s.replace(/\d+/g, (run) => (run.length >= min && run.length <= max ? this.phoneDigits(run) : run));
  }

  string(s: string, key: string | undefined): string {
    switch (kindOfKey(key, this.own)) {
      case 'secret':
        return s === '' ? s : this.fake('secret', s, (n) => `fake-secret-${n}`);
      case 'time':
        return s;
      case 'phone':
        return this.phonesIn(s, 6, Infinity);
      case 'name':
        return s === '' ? s : this.fake('name', s, (n) => `Person ${n}`);
      case 'file': {
        const ext = /\.[A-Za-z0-9]{1,8}$/.exec(s)?.[0] ?? '';
        return this.fake('file', s, (n) => `file-${n}${ext}`);
      }
      case 'text':
        return s === '' ? s : this.fake('text', s, (n) => `Text ${n}`);
      case 'id':
        return this.id(s);
      case 'link':
        return this.phonesIn(s, 8, 15).replace(/[A-Za-z0-9_-]{16,}/g, (token) => (/^555\d+$/.test(token) ? token : this.id(token)));
      default:
        return this.phonesIn(s, 8, 15);
    }
  }

  number(v: number, key: string | undefined): number {
    const kind = kindOfKey(key, this.own);
    if ((kind !== 'phone' && kind !== 'id') || !Number.isSafeInteger(v) || v < 0) return v;
    const digits = String(v);
    const fake = kind === 'phone' ? this.phoneDigits(digits) : this.id(digits);
    // a fake with a leading 0 would lose a digit as a number
    return Number(fake.startsWith('0') ? `1${fake.slice(1)}` : fake);
  }

  /** A JSON value with every leaf redacted by the key it sits under; arrays pass their key on. */
  value(v: unknown, key?: string): unknown {
    if (typeof v === 'string') return this.string(v, key);
    if (typeof v === 'number') return this.number(v, key);
    if (Array.isArray(v)) return v.map((x) => this.value(x, key));
    if (typeof v === 'object' && v !== null) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = this.value(x, k);
      return out;
    }
    return v;
  }

  /** A form-encoded body, value by value, keys and order kept. */
  form(text: string): string {
    const params = new URLSearchParams(text);
    const out = new URLSearchParams();
    for (const [k, v] of params) out.append(k, this.string(v, k));
    return out.toString();
  }
}

/** Headers a fixture does not need: transport details, and what was redacted on arrival. */
const DROPPED_HEADERS = new Set(['host', 'content-length', 'connection', 'accept-encoding', 'transfer-encoding', 'keep-alive', 'user-agent', 'accept']);

export interface WebhookForFixture {
  rawBody: string;
  headers: Record<string, string>;
  query: Record<string, string | string[]>;
}

/**
 * A webhook as a fixture's input: the body (JSON re-serialised, pretty; form-encoded re-encoded),
 * the headers worth keeping (never the signature header, which the golden runner computes with the
 * test secret, nor one whose value was redacted) and the query, all through one Redactor that knows
 * the mapping's own key names.
 */
export function redactWebhook(
  req: WebhookForFixture,
  opts: { signatureHeader?: string; keys?: RedactKeys; redacted?: string } = {},
): { body: { json: unknown } | { text: string }; headers: Record<string, string>; query: Record<string, string> } {
  const { signatureHeader, redacted = '[redacted]' } = opts;
  const r = new Redactor(opts.keys);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    const name = k.toLowerCase();
    if (DROPPED_HEADERS.has(name) || name.startsWith('x-forwarded-') || name === signatureHeader?.toLowerCase() || v === redacted) continue;
    headers[k] = r.string(v, k);
  }
  const form = (headers['content-type'] ?? '').toLowerCase().includes('x-www-form-urlencoded');
  const body = form ? { text: r.form(req.rawBody) } : { json: r.value(JSON.parse(req.rawBody) as unknown) };
  const query: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.query)) query[k] = r.string(Array.isArray(v) ? v.join(',') : v, k);
  return { body, headers, query };
}
