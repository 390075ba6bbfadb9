// What the console playground shows is redacted first: the values of a mapping's secret settings
// (named, so the page still shows where they go), credential-named headers and query parameters,
// and anything shaped like a JWT.
import { CREDENTIAL_NAME, REDACTED } from './trace.js';

const JWT = /\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]{4,}/g;

export type Redact = (text: string) => string;

export function redactor(secrets: [string, string][]): Redact {
  // Longest first: a secret that contains another is replaced whole.
  const sorted = secrets.filter(([, v]) => v.length >= 4).sort((a, b) => b[1].length - a[1].length);
  return (text) => {
    let out = text;
    for (const [name, value] of sorted) if (out.includes(value)) out = out.split(value).join(`«secret:${name}»`);
    return out.replace(JWT, REDACTED);
  };
}

/** A credential-named header or query value: what the secret values did not already cover is replaced whole. */
export function redactNamed(value: string, redact: Redact): string {
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

export function redactDeep(v: unknown, redact: Redact, key = ''): unknown {
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
