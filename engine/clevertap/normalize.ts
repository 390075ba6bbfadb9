// CleverTap payload (any documented spelling) -> CanonicalMessage.
// Runs on every outbound message: no per-call regex compilation, no cloning beyond the output itself,
// and no throwing on bad input (every problem becomes a NormalizeIssue so CleverTap gets one precise answer).
// Unknown keys *inside* components, template, headers and buttons are ignored on purpose: CleverTap
// adds presentational fields there over time and none of them changes what the BSP must send.
// Unknown *top-level* keys are kept in `extra`.

import type {
  Body,
  Button,
  ButtonSubType,
  CanonicalMessage,
  Card,
  Header,
  MessageType,
  MsgIdParts,
  NormalizeIssue,
  NormalizeResult,
  Template,
  TextParameter,
} from './model.js';

type Obj = Record<string, unknown>;
type Code = NormalizeIssue['code'];

/** Template namespace CleverTap uses for its "save provider" probe. msgId "0|0|0|0" alone is not enough:
 * template-save test sends use it too, and those must reach the BSP. */
export const VALIDATION_NAMESPACE = 'whatsapp:hsm:technology:generic:verify';

const VERSION_KEYS = ['payloadVersion', 'payloadversion', 'paytloadVersion', 'paypoadVersion'] as const;
const MSGID_KEYS = ['msgId', 'msg_id'] as const;
/** "This can be upto 60 characters long" (the contract, on msgId). */
export const MSGID_MAX = 60;
const SUBTYPE_KEYS = ['subType', 'sub_type', 'subtype'] as const;
const FOOTER_KEYS = ['footer', 'footertext', 'footerText', 'text'] as const;
const MEDIA_URL_KEYS = ['mediaURL', 'mediaUrl'] as const;
const TOP_LEVEL_KNOWN = new Set<string>([...VERSION_KEYS, ...MSGID_KEYS, 'to', 'wabaNumber', 'isTemplate']);

// Keys are squashed (lower case, no "_", "-" or spaces) before lookup, so copy_code, copyCode and COPY-CODE agree.
const SUBTYPES = new Map<string, ButtonSubType>([
  ['dynamicurl', 'dynamicUrl'],
  ['url', 'dynamicUrl'], // Meta's sub_type "url" is the parameterised (dynamic) URL button
  ['staticurl', 'staticUrl'],
  ['quickreply', 'quickReply'],
  ['callphone', 'callPhone'],
  ['phonenumber', 'callPhone'],
  ['copycode', 'copyCode'],
]);
// Parameter keys tried, in order, for the value of each subType: documented first, then lenient fallbacks.
const BUTTON_VALUE_KEYS: Record<ButtonSubType, readonly string[]> = {
  dynamicUrl: ['text'],
  staticUrl: ['text', 'url'],
  quickReply: ['payload', 'text'],
  callPhone: ['text', 'phone_number'],
  copyCode: ['coupon_code', 'text'],
};
const BUTTON_FIELD: Record<ButtonSubType, 'urlSuffix' | 'url' | 'payload' | 'phoneNumber' | 'couponCode'> = {
  dynamicUrl: 'urlSuffix',
  staticUrl: 'url',
  quickReply: 'payload',
  callPhone: 'phoneNumber',
  copyCode: 'couponCode',
};

type HeaderKind = Header['type'];
const HEADER_KINDS = new Map<string, HeaderKind>([
  ['text', 'text'],
  ['image', 'image'],
  ['video', 'video'],
  ['audio', 'audio'],
  ['file', 'file'],
  ['document', 'file'],
  ['location', 'location'],
]);
type FreeformKind = Exclude<MessageType, 'template'>;
const FREEFORM_KINDS = new Map<string, FreeformKind>([
  ['text', 'text'],
  ['image', 'image'],
  ['video', 'video'],
  ['audio', 'audio'],
  ['file', 'file'],
  ['document', 'file'],
  ['location', 'location'],
]);
const FREEFORM_CONTENT_KEYS = ['text', 'image', 'video', 'audio', 'file', 'document', 'location'] as const;

const SQUASH_RE = /[_\-\s]/g;
const IDENT_RE = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const SCHEME_RE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const PHONE_SEPARATORS_RE = /[\s+\-().]/g;
const DIGITS_RE = /^[0-9]+$/;
const LANG_SPLIT_RE = /[\s_()-]+/;
const INTEGER_RE = /^[0-9]+$/;

// ---------------------------------------------------------------- small helpers

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const squash = (s: string): string => s.toLowerCase().replace(SQUASH_RE, '');
const describe = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  const k = IDENT_RE.test(key) ? key : `[${JSON.stringify(key)}]`;
  return path === '' ? k : k.startsWith('[') ? path + k : `${path}.${k}`;
}

/** First alias present in `o`, so paths name the key CleverTap actually used. */
function pick(o: Obj, keys: readonly string[]): [string, unknown] | undefined {
  for (const k of keys) if (o[k] !== undefined) return [k, o[k]];
  return undefined;
}

class Issues {
  readonly list: NormalizeIssue[] = [];
  add(path: string, code: Code, message: string): undefined {
    this.list.push({ path, code, message });
    return undefined;
  }
}

/** Strings and numbers both occur on the wire for what are semantically strings (coordinates, params). */
function scalarString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') return String(v);
  return undefined;
}

// ---------------------------------------------------------------- text repair

const MOJIBAKE_PREFIX = '\u00e2\u20ac'; // "â€": the first two bytes of U+20xx punctuation read as cp1252
const MOJIBAKE_TAIL = new Map<string, string>([
  ['\u0153', '\u201c'], // â€œ -> “
  ['\u009d', '\u201d'], // â€<9D> -> ”
  ['\u2122', '\u2019'], // â€™ -> ’
  ['\u02dc', '\u2018'], // â€˜ -> ‘
  ['\u201c', '\u2013'], // â€“ -> –
  ['\u201d', '\u2014'], // â€” -> —
  ['\u00a6', '\u2026'], // â€¦ -> …
  ['\u00a2', '\u2022'], // â€¢ -> •
]);

function repairMojibake(s: string): string {
  let out = '';
  let last = 0;
  for (let i = s.indexOf(MOJIBAKE_PREFIX); i !== -1; i = s.indexOf(MOJIBAKE_PREFIX, last)) {
    out += s.slice(last, i);
    const tail = s[i + 2];
    const fixed = tail === undefined ? undefined : MOJIBAKE_TAIL.get(tail);
    // 0x9D has no cp1252 glyph and is often dropped, leaving a bare "â€": that was a closing ”.
    out += fixed ?? '\u201d';
    last = fixed === undefined ? i + 2 : i + 3;
  }
  return out + s.slice(last);
}

const BETA = '\u03b2';
/** The doc shows “value” as βvalueβ. Only a β pair wrapping the whole value, around non-Greek text
 * without another β, is that artefact; "β-blocker" or Greek words stay untouched. */
function unwrapBeta(s: string): string {
  if (s.length < 3 || s[0] !== BETA || s[s.length - 1] !== BETA) return s;
  for (let i = 1; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x0370 && c <= 0x03ff) return s;
  }
  return `\u201c${s.slice(1, -1)}\u201d`;
}

/** Repairs the copy-paste damage seen in CleverTap's samples in human-readable text. */
export function repairText(s: string): string {
  return unwrapBeta(s.includes(MOJIBAKE_PREFIX) ? repairMojibake(s) : s);
}

/** An optional text field: absent (or null) is fine; the contract types these as String, so anything
 * else is refused rather than dropped without a word. */
function optText(o: Obj, key: string, path: string, issues: Issues): string | undefined {
  const v = o[key];
  if (typeof v === 'string') return repairText(v);
  if (v === undefined || v === null) return undefined;
  const p = join(path, key);
  return issues.add(p, 2001, `${p} must be a string (got ${describe(v)})`);
}

// ---------------------------------------------------------------- scalars

export function parseMsgId(s: string): MsgIdParts {
  const [i, campaignId, batchId, j, variant] = s.split('|');
  const parts: MsgIdParts = {};
  if (i !== undefined) parts.i = i;
  if (campaignId !== undefined) parts.campaignId = campaignId;
  if (batchId !== undefined) parts.batchId = batchId;
  if (j !== undefined) parts.j = j;
  if (variant !== undefined) parts.variant = variant;
  return parts;
}

// A sender uses a handful of language codes: each is worked out once (the split and case changes
// were a twentieth of the bytes a message costs). Bounded, as the codes come from the payload.
const languages = new Map<string, string>();

/** "en" -> "en", "en-us" -> "en_US", "en(UK)" -> "en_GB", "zh-hant-tw" -> "zh_Hant_TW". */
export function normalizeLanguage(code: string): string {
  let out = languages.get(code);
  if (out === undefined) {
    if (languages.size >= 256) languages.clear();
    languages.set(code, (out = languageOf(code)));
  }
  return out;
}

function languageOf(code: string): string {
  const parts = code.trim().split(LANG_SPLIT_RE).filter((p) => p !== '');
  const [lang, ...rest] = parts;
  if (lang === undefined) return '';
  let out = lang.toLowerCase();
  for (const p of rest) {
    const sub = p.length === 4 ? p[0]!.toUpperCase() + p.slice(1).toLowerCase() : p.toUpperCase();
    out += '_' + (sub === 'UK' ? 'GB' : sub);
  }
  return out;
}

function readPhone(v: unknown, path: string, issues: Issues): string | undefined {
  const raw = typeof v === 'number' && Number.isInteger(v) ? String(v) : v;
  if (typeof raw !== 'string' || raw.trim() === '') return issues.add(path, 2002, `${path} is missing (got ${describe(v)})`);
  const digits = raw.replace(PHONE_SEPARATORS_RE, '');
  if (!DIGITS_RE.test(digits)) return issues.add(path, 2002, `${path} "${raw}" contains characters other than digits, "+", spaces, dashes and parentheses`);
  if (digits.length < 6 || digits.length > 15) return issues.add(path, 2002, `${path} "${raw}" has ${digits.length} digits; a phone number with country code has 6 to 15`);
  return digits;
}

/** Adds https:// to scheme-less URLs (the doc's www.example.com/...), refuses any scheme but http(s). */
function readMediaUrl(o: Obj, path: string, issues: Issues): string | undefined {
  const found = pick(o, MEDIA_URL_KEYS);
  const p = join(path, found?.[0] ?? 'mediaURL');
  const v = found?.[1];
  if (typeof v !== 'string' || v.trim() === '') return issues.add(p, 2001, `${p} is missing (got ${describe(v)})`);
  const u = v.trim();
  const scheme = SCHEME_RE.exec(u)?.[1];
  if (scheme !== undefined) {
    const s = scheme.toLowerCase();
    if (s !== 'http' && s !== 'https') return issues.add(p, 2001, `${p} has unsupported URL scheme "${scheme}" ("${u}"); only http and https are accepted`);
  }
  const full = scheme !== undefined ? u : u.startsWith('//') ? 'https:' + u : 'https://' + u;
  if (!URL.canParse(full)) return issues.add(p, 2001, `${p} "${v}" is not a valid URL`);
  return full;
}

function readCoordinates(o: Obj, path: string, issues: Issues): { latitude: string; longitude: string } | undefined {
  const latitude = scalarString(o.latitude);
  const longitude = scalarString(o.longitude);
  if (latitude === undefined) issues.add(join(path, 'latitude'), 2001, `${join(path, 'latitude')} is missing`);
  if (longitude === undefined) issues.add(join(path, 'longitude'), 2001, `${join(path, 'longitude')} is missing`);
  return latitude !== undefined && longitude !== undefined ? { latitude, longitude } : undefined;
}

// ---------------------------------------------------------------- template parts

function readParameters(v: unknown, path: string, issues: Issues): TextParameter[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) return issues.add(path, 2001, `${path} must be an array (got ${describe(v)})`) ?? [];
  const out: TextParameter[] = [];
  v.forEach((p: unknown, i) => {
    const pp = join(path, i);
    if (!isObj(p)) return issues.add(pp, 2001, `${pp} must be an object (got ${describe(p)})`);
    if (p.type !== undefined && p.type !== 'text') return issues.add(join(pp, 'type'), 2001, `${pp} has unsupported parameter type "${String(p.type)}"; only "text" is supported`);
    const text = scalarString(p.text);
    if (text === undefined) return issues.add(join(pp, 'text'), 2001, `${pp} has no text`);
    out.push({ type: 'text', text: repairText(text) });
  });
  return out;
}

/** Text header/body value: either {text, parameters} or, leniently, a bare string. */
function readTextBlock(v: unknown, path: string, issues: Issues): Body | undefined {
  if (typeof v === 'string') return { text: repairText(v), parameters: [] };
  if (!isObj(v)) return issues.add(path, 2001, `${path} must be an object with text and parameters (got ${describe(v)})`);
  const body: Body = { parameters: readParameters(v.parameters, join(path, 'parameters'), issues) };
  const text = optText(v, 'text', path, issues);
  if (text !== undefined) body.text = text;
  return body;
}

/** Resolves header.type (incl. carousel's "image/video" and a missing type) to the kind whose key is present. */
function resolveHeaderKind(h: Obj, path: string, issues: Issues): [HeaderKind, string] | undefined {
  const t = h.type;
  if (t !== undefined && typeof t !== 'string') return issues.add(join(path, 'type'), 2001, `${join(path, 'type')} must be a string`);
  const candidates = t === undefined ? [...HEADER_KINDS.keys()] : t.toLowerCase().split('/').map((s) => s.trim());
  for (const c of candidates) {
    const kind = HEADER_KINDS.get(c);
    if (kind === undefined) return issues.add(join(path, 'type'), 2001, `${join(path, 'type')} "${String(t)}" is not a header type (text, image, video, audio, file, document, location)`);
    const keys = kind === 'file' ? ['file', 'document'] : [kind];
    const key = keys.find((k) => h[k] !== undefined);
    if (key !== undefined) return [kind, key];
  }
  const want = t === undefined ? 'one of text, image, video, audio, file, location' : `"${candidates.join('" or "')}"`;
  return issues.add(path, 2001, `${path} has no ${want} object`);
}

function readHeader(c: Obj, cp: string, issues: Issues): Header | undefined {
  const path = join(cp, 'header');
  const h = c.header;
  if (!isObj(h)) return issues.add(path, 2001, `${path} must be an object (got ${describe(h)})`);
  const resolved = resolveHeaderKind(h, path, issues);
  if (resolved === undefined) return undefined;
  const [kind, key] = resolved;
  const vp = join(path, key);
  if (kind === 'text') {
    const block = readTextBlock(h[key], vp, issues);
    return block && { type: 'text', ...block };
  }
  const v = h[key];
  if (!isObj(v)) return issues.add(vp, 2001, `${vp} must be an object (got ${describe(v)})`);
  if (kind === 'location') {
    const coords = readCoordinates(v, vp, issues);
    if (coords === undefined) return undefined;
    const loc: Header = { type: 'location', ...coords };
    const name = optText(v, 'name', vp, issues);
    const address = optText(v, 'address', vp, issues);
    if (name !== undefined) loc.name = name;
    if (address !== undefined) loc.address = address;
    return loc;
  }
  const mediaURL = readMediaUrl(v, vp, issues);
  if (mediaURL === undefined) return undefined;
  if (kind !== 'file') return { type: kind, mediaURL };
  const filename = optText(v, 'filename', vp, issues);
  return filename === undefined ? { type: 'file', mediaURL } : { type: 'file', mediaURL, filename };
}

function readFooter(c: Obj, cp: string, issues: Issues): { text: string } | undefined {
  const found = pick(c, FOOTER_KEYS);
  const v = found?.[1];
  const p = join(cp, found?.[0] ?? 'footer');
  const text = typeof v === 'string' ? v : isObj(v) && typeof v.text === 'string' ? v.text : undefined;
  if (text === undefined) return issues.add(p, 2001, `${p} has no footer text`);
  return { text: repairText(text) };
}

function readLimitedTimeOffer(c: Obj, cp: string, issues: Issues): Template['limitedTimeOffer'] {
  const lto: NonNullable<Template['limitedTimeOffer']> = {};
  const text = optText(c, 'text', cp, issues);
  if (text !== undefined) lto.text = text;
  const params = Array.isArray(c.parameters) ? c.parameters : [];
  params.forEach((p: unknown, i) => {
    const inner = isObj(p) ? p.limited_time_offer : undefined;
    if (!isObj(inner)) return;
    const found = pick(inner, ['expiration_time_ms', 'expirationTimeMs']);
    if (found === undefined) return;
    const path = join(join(join(join(cp, 'parameters'), i), 'limited_time_offer'), found[0]);
    const v = found[1];
    const ms = typeof v === 'number' ? v : typeof v === 'string' && INTEGER_RE.test(v.trim()) ? Number(v) : NaN;
    if (!Number.isSafeInteger(ms) || ms < 0) return issues.add(path, 2001, `${path} must be epoch milliseconds (got ${JSON.stringify(v)})`);
    lto.expirationTimeMs = ms;
  });
  return lto;
}

function readButtonIndex(v: unknown, fallback: number, path: string, issues: Issues): number {
  if (v === undefined) return fallback;
  const n = typeof v === 'number' ? v : typeof v === 'string' && INTEGER_RE.test(v.trim()) ? Number(v) : NaN;
  if (Number.isSafeInteger(n) && n >= 0) return n;
  issues.add(path, 2001, `${path} must be a non-negative integer (got ${JSON.stringify(v)})`);
  return fallback;
}

function buttonValue(params: unknown[], keys: readonly string[]): string | undefined {
  for (const key of keys) {
    for (const p of params) {
      if (!isObj(p) || (p.type !== undefined && p.type !== key)) continue;
      const v = scalarString(p[key]);
      if (v !== undefined) return v;
    }
  }
  return undefined;
}

function readButton(c: Obj, cp: string, position: number, issues: Issues): Button | undefined {
  const found = pick(c, SUBTYPE_KEYS);
  const stPath = join(cp, found?.[0] ?? 'subType');
  const raw = found?.[1];
  const subType = typeof raw === 'string' ? SUBTYPES.get(squash(raw)) : undefined;
  const index = readButtonIndex(c.index, position, join(cp, 'index'), issues);
  const params = c.parameters;
  if (params !== undefined && !Array.isArray(params)) issues.add(join(cp, 'parameters'), 2001, `${join(cp, 'parameters')} must be an array (got ${describe(params)})`);
  if (subType === undefined) {
    const why = raw === undefined ? 'is missing' : `"${String(raw)}" is not a known button subType`;
    return issues.add(stPath, 2001, `${stPath} ${why}; expected dynamicUrl, staticUrl, quickReply, callPhone or copyCode`);
  }
  const button: Button = { index, subType };
  const text = optText(c, 'buttonText', cp, issues);
  if (text !== undefined) button.text = text;
  const value = Array.isArray(params) ? buttonValue(params, BUTTON_VALUE_KEYS[subType]) : undefined;
  if (value !== undefined) button[BUTTON_FIELD[subType]] = value;
  return button;
}

function mergeCustomProps(v: unknown, path: string, into: Obj, issues: Issues): void {
  if (isObj(v)) {
    Object.assign(into, v);
    return;
  }
  if (!Array.isArray(v)) {
    issues.add(path, 2001, `${path} must be an array of single-key objects (got ${describe(v)})`);
    return;
  }
  v.forEach((entry: unknown, i) => {
    if (isObj(entry)) Object.assign(into, entry);
    else issues.add(join(path, i), 2001, `${join(path, i)} must be an object (got ${describe(entry)})`);
  });
}

interface Parts {
  header?: Header;
  body?: Body;
  footer?: { text: string };
  limitedTimeOffer?: NonNullable<Template['limitedTimeOffer']>;
  buttons: Button[];
  carousel?: { cards: Card[] };
  customProps?: Obj;
}
type Single = 'header' | 'body' | 'footer' | 'limitedTimeOffer' | 'carousel';
const CARD_PARTS = new Set(['header', 'body', 'button']);

// (module level: a closure per call would be made, and named, on every message)
function setOnce<K extends Single>(parts: Parts, issues: Issues, key: K, cp: string, value: Parts[K] | undefined): void {
  if (value === undefined) return;
  if (parts[key] !== undefined) issues.add(cp, 2001, `${cp} is a second ${key} component; only one is allowed`);
  else parts[key] = value;
}

/** Reads a components array (template level, or inside a carousel card when `inCard`). */
function readComponents(list: unknown, path: string, inCard: boolean, issues: Issues): Parts {
  const parts: Parts = { buttons: [] };
  if (list === undefined) return parts;
  if (!Array.isArray(list)) return issues.add(path, 2001, `${path} must be an array (got ${describe(list)})`) ?? parts;
  list.forEach((c: unknown, i) => {
    const cp = join(path, i);
    if (!isObj(c)) return issues.add(cp, 2001, `${cp} must be an object (got ${describe(c)})`);
    // The doc's customProps component has no "type" at all.
    const kind = typeof c.type === 'string' ? squash(c.type) : c.type === undefined && c.customProps !== undefined ? 'customprops' : undefined;
    if (kind === undefined) return issues.add(join(cp, 'type'), 2001, `${cp} has no component type`);
    if (inCard && !CARD_PARTS.has(kind)) return issues.add(join(cp, 'type'), 2001, `${cp} of type "${String(c.type)}" is not allowed in a carousel card (header, body, button only)`);
    switch (kind) {
      case 'header':
        return setOnce(parts, issues, 'header', cp, readHeader(c, cp, issues));
      case 'body': {
        const bp = join(cp, 'body');
        return setOnce(parts, issues, 'body', cp, c.body === undefined ? issues.add(bp, 2001, `${bp} is missing`) : readTextBlock(c.body, bp, issues));
      }
      case 'footer':
        return setOnce(parts, issues, 'footer', cp, readFooter(c, cp, issues));
      case 'limitedtimeoffer':
        return setOnce(parts, issues, 'limitedTimeOffer', cp, readLimitedTimeOffer(c, cp, issues));
      case 'button': {
        const b = readButton(c, cp, parts.buttons.length, issues);
        if (b !== undefined) parts.buttons.push(b);
        return;
      }
      case 'carousel':
        return setOnce(parts, issues, 'carousel', cp, readCarousel(c, cp, issues));
      case 'customprops':
        mergeCustomProps(c.customProps, join(cp, 'customProps'), (parts.customProps ??= {}), issues);
        return;
      default:
        return issues.add(join(cp, 'type'), 2001, `${cp} has unknown component type "${String(c.type)}"`);
    }
  });
  // Stable sort: equal indexes (the doc has two buttons at index 0) keep their order as sent.
  parts.buttons.sort((a, b) => a.index - b.index);
  return parts;
}

function readCarousel(c: Obj, cp: string, issues: Issues): { cards: Card[] } | undefined {
  const path = join(cp, 'cards');
  if (!Array.isArray(c.cards)) return issues.add(path, 2001, `${path} must be an array (got ${describe(c.cards)})`);
  const cards: Card[] = [];
  c.cards.forEach((card: unknown, index) => {
    const kp = join(path, index);
    if (!isObj(card)) return issues.add(kp, 2001, `${kp} must be an object (got ${describe(card)})`);
    const parts = readComponents(card.components, join(kp, 'components'), true, issues);
    const out: Card = { index, buttons: parts.buttons };
    if (parts.header !== undefined) out.header = parts.header;
    if (parts.body !== undefined) out.body = parts.body;
    cards.push(out);
  });
  return { cards };
}

function readTemplate(p: Obj, issues: Issues): { template?: Template; customProps?: Obj } {
  const t = p.template;
  const parts = readComponents(p.components, 'components', false, issues);
  if (!isObj(t)) return issues.add('template', 2001, `template must be an object with namespace and languageCode (got ${describe(t)})`) ?? {};
  const name = typeof t.namespace === 'string' ? t.namespace.trim() : '';
  if (name === '') issues.add('template.namespace', 2001, 'template.namespace (the template name) is missing');
  const languageCode = typeof t.languageCode === 'string' ? t.languageCode : '';
  const language = normalizeLanguage(languageCode);
  if (language === '') issues.add('template.languageCode', 2001, 'template.languageCode is missing');
  const template: Template = { name, languageCode, language, buttons: parts.buttons };
  if (parts.header !== undefined) template.header = parts.header;
  if (parts.body !== undefined) template.body = parts.body;
  if (parts.footer !== undefined) template.footer = parts.footer;
  if (parts.limitedTimeOffer !== undefined) template.limitedTimeOffer = parts.limitedTimeOffer;
  if (parts.carousel !== undefined) template.carousel = parts.carousel;
  return parts.customProps === undefined ? { template } : { template, customProps: parts.customProps };
}

// ---------------------------------------------------------------- freeform

type FreeformContent = Pick<CanonicalMessage, FreeformKind>;

function resolveFreeformKind(p: Obj, issues: Issues): FreeformKind | undefined {
  const t = p.type;
  if (typeof t === 'string') {
    const kind = FREEFORM_KINDS.get(t.trim().toLowerCase());
    return kind ?? issues.add('type', 2001, `type "${t}" is not a supported freeform type (text, image, video, audio, file, document, location)`);
  }
  if (t !== undefined) return issues.add('type', 2001, `type must be a string (got ${describe(t)})`);
  // CleverTap always sends type; when it is absent, a single content object is unambiguous.
  const present = FREEFORM_CONTENT_KEYS.filter((k) => p[k] !== undefined);
  const only = present.length === 1 ? present[0] : undefined;
  return only !== undefined ? FREEFORM_KINDS.get(only) : issues.add('type', 2001, 'type is missing and the content object is ambiguous');
}

function readFreeform(p: Obj, kind: FreeformKind, issues: Issues): { content?: FreeformContent; key: string } {
  const key = kind === 'file' ? (p.file === undefined && p.document !== undefined ? 'document' : 'file') : kind;
  const v = p[key];
  if (kind === 'text' && typeof v === 'string') return { key, content: { text: { body: repairText(v) } } };
  if (!isObj(v)) return issues.add(key, 2001, `type "${String(p.type ?? kind)}" needs its "${key}" object (got ${describe(v)})`) ?? { key };
  switch (kind) {
    case 'text': {
      if (v.body !== undefined && v.body !== null && typeof v.body !== 'string') return issues.add('text.body', 2001, `text.body must be a string (got ${describe(v.body)})`) ?? { key };
      const body = typeof v.body === 'string' ? repairText(v.body) : undefined;
      if (body === undefined || body.trim() === '') return issues.add('text.body', 2001, 'text.body is missing or empty') ?? { key };
      return { key, content: { text: { body } } };
    }
    case 'location': {
      const coords = readCoordinates(v, key, issues);
      return coords === undefined ? { key } : { key, content: { location: coords } };
    }
    case 'audio': {
      const mediaURL = readMediaUrl(v, key, issues);
      return mediaURL === undefined ? { key } : { key, content: { audio: { mediaURL } } };
    }
    case 'image':
    case 'video':
    case 'file': {
      const mediaURL = readMediaUrl(v, key, issues);
      if (mediaURL === undefined) return { key };
      const media: { mediaURL: string; caption?: string; filename?: string } = { mediaURL };
      const caption = optText(v, 'caption', key, issues);
      if (caption !== undefined) media.caption = caption;
      const filename = kind === 'file' ? optText(v, 'filename', key, issues) : undefined;
      if (filename !== undefined) media.filename = filename;
      const content: FreeformContent = kind === 'image' ? { image: media } : kind === 'video' ? { video: media } : { file: media };
      return { key, content };
    }
  }
}

// ---------------------------------------------------------------- entry point

function readVersion(p: Obj, issues: Issues): string {
  const found = pick(p, VERSION_KEYS);
  if (found === undefined) return '0.1';
  const [k, v] = found;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'string') return v.trim() === '' ? '0.1' : v.trim();
  issues.add(k, 2004, `${k} must be a number or a string (got ${describe(v)})`);
  return '0.1';
}

function readIsTemplate(p: Obj, issues: Issues): boolean {
  const v = p.isTemplate;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (s === 'true' || s === 'false') return s === 'true';
  }
  const inferred = p.template !== undefined || p.components !== undefined;
  if (v !== undefined) issues.add('isTemplate', 2004, `isTemplate must be true or false (got ${JSON.stringify(v)})`);
  return inferred;
}

function readMsgId(p: Obj, issues: Issues): string {
  const found = pick(p, MSGID_KEYS);
  const v = found?.[1];
  const s = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.trim() : '';
  if (s === '') issues.add(found?.[0] ?? 'msgId', 2004, found === undefined ? 'msgId is missing' : `${found[0]} must be a non-empty string (got ${JSON.stringify(v)})`);
  // The contract's own bound; beyond it a BSP may cut the msgId it echoes back (Meta's
  // biz_opaque_callback_data stops at 512), and the statuses could no longer be matched.
  // (Counted in code points, as a person counts characters; the length test first keeps it off the hot path.)
  else if (s.length > MSGID_MAX) {
    const chars = [...s].length;
    if (chars > MSGID_MAX) issues.add(found![0], 2001, `${found![0]} is ${chars} characters long; CleverTap's msgId is at most ${MSGID_MAX}`);
  }
  return s;
}

function readWabaNumber(v: unknown, issues: Issues): string | undefined {
  if (v !== undefined && v !== null && typeof v !== 'string' && typeof v !== 'number') return issues.add('wabaNumber', 2004, `wabaNumber must be a string (got ${describe(v)})`);
  const s = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.replace(PHONE_SEPARATORS_RE, '') : '';
  return s === '' ? undefined : s;
}

export function normalize(payload: unknown): NormalizeResult {
  if (!isObj(payload)) {
    return { ok: false, issues: [{ path: '', code: 2004, message: `payload must be a JSON object (got ${describe(payload)})` }] };
  }
  const p = payload;
  const issues = new Issues();
  const msgId = readMsgId(p, issues);
  const to = readPhone(p.to, 'to', issues);
  const isTemplate = readIsTemplate(p, issues);
  const message: CanonicalMessage = {
    payloadVersion: readVersion(p, issues),
    msgId,
    msgIdParts: parseMsgId(msgId),
    to: to ?? '',
    isTemplate,
    isValidation: false,
    type: 'template',
  };
  const wabaNumber = readWabaNumber(p.wabaNumber, issues);
  if (wabaNumber !== undefined) message.wabaNumber = wabaNumber;

  const consumed: string[] = ['customProps'];
  const customProps: Obj = {};
  if (isTemplate) {
    consumed.push('template', 'components');
    const { template, customProps: fromComponents } = readTemplate(p, issues);
    if (template !== undefined) {
      message.template = template;
      message.isValidation = template.name === VALIDATION_NAMESPACE;
    }
    if (fromComponents !== undefined) Object.assign(customProps, fromComponents);
  } else {
    consumed.push('type');
    const kind = resolveFreeformKind(p, issues);
    if (kind !== undefined) {
      message.type = kind;
      const { content, key } = readFreeform(p, kind, issues);
      consumed.push(key);
      if (content !== undefined) Object.assign(message, content);
    }
  }
  if (p.customProps !== undefined) mergeCustomProps(p.customProps, 'customProps', customProps, issues);
  if (Object.keys(customProps).length > 0) message.customProps = customProps;

  let extra: Obj | undefined;
  for (const k of Object.keys(p)) {
    if (TOP_LEVEL_KNOWN.has(k) || consumed.includes(k)) continue;
    (extra ??= {})[k] = p[k];
  }
  if (extra !== undefined) message.extra = extra;

  return issues.list.length === 0 ? { ok: true, message } : { ok: false, issues: issues.list };
}
