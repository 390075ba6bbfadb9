// JSON.parse, plus one repair: payloads copied from CleverTap's documentation (or produced by tools that did)
// carry typographic quotes, or the mojibake β, as string delimiters: `βmsg_idβ:"2559..."`.
// Only delimiters outside string literals are touched; every replacement is one UTF-16 unit for one,
// so offsets (and the line/column we report) are the same in the original and the repaired text.

export type LenientJsonResult = { ok: true; value: unknown } | { ok: false; error: string };

const BETA = '\u03b2';
const CURLY = new Set(['\u201c', '\u201d', '\u201e']); // “ ” „

export function parseCleverTapJson(text: string): LenientJsonResult {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    // fall through to the repair
  }
  const repaired = repairDelimiters(text);
  if (repaired !== text) {
    try {
      return { ok: true, value: JSON.parse(repaired) as unknown };
    } catch {
      // report against the repaired text: its offsets equal the original's
    }
  }
  const { at, reason } = locateError(repaired);
  const { line, column } = lineColumn(repaired, at);
  return { ok: false, error: `invalid JSON at line ${line}, column ${column}: ${reason}` };
}

/** A string opened by β closes at β (or "); one opened by a curly quote closes at any curly quote (or "). */
function repairDelimiters(text: string): string {
  let out = '';
  let last = 0;
  let closer: 'straight' | 'beta' | 'curly' | undefined;
  const replaceAt = (i: number): void => {
    out += text.slice(last, i) + '"';
    last = i + 1;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (closer === undefined) {
      if (c === '"') {
        closer = 'straight';
      } else if (c === BETA || CURLY.has(c)) {
        closer = c === BETA ? 'beta' : 'curly';
        replaceAt(i);
      }
      continue;
    }
    if (c === '\\') {
      i++;
    } else if (c === '"') {
      closer = undefined;
    } else if ((closer === 'beta' && c === BETA) || (closer === 'curly' && CURLY.has(c))) {
      closer = undefined;
      replaceAt(i);
    }
  }
  return last === 0 ? text : out + text.slice(last);
}

function lineColumn(text: string, at: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < at; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: at - lineStart + 1 };
}

const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']);
const HEX4_RE = /^[0-9a-fA-F]{4}$/;

type Expect = 'value' | 'valueOrClose' | 'key' | 'keyOrClose' | 'colon' | 'commaOrClose' | 'end';

/** End offset of the string literal opening at `i`, or where and why it is malformed. */
function scanString(s: string, i: number): { end: number } | { at: number; reason: string } {
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === 0x22) return { end: j + 1 };
    if (c < 0x20) return { at: j, reason: 'control character inside a string (unescaped newline?)' };
    if (c !== 0x5c) continue;
    const e = s[j + 1];
    if (e === 'u' && HEX4_RE.test(s.slice(j + 2, j + 6))) j += 5;
    else if (e !== undefined && ESCAPES.has(e)) j++;
    else return { at: j, reason: 'invalid escape sequence' };
  }
  return { at: s.length, reason: 'unterminated string' };
}

/** Finds the first syntax error, iteratively (no recursion on deeply nested input). Linear time. */
function locateError(s: string): { at: number; reason: string } {
  const closers: string[] = [];
  let expect: Expect = 'value';
  let i = 0;
  const afterValue = (): Expect => (closers.length === 0 ? 'end' : 'commaOrClose');
  for (;;) {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
    if (i >= s.length) return { at: i, reason: expect === 'end' ? 'JSON.parse rejected the input' : 'unexpected end of input' };
    const c = s[i]!;
    const unexpected = (wanted: string): { at: number; reason: string } => ({ at: i, reason: `unexpected ${JSON.stringify(c)}, expected ${wanted}` });
    switch (expect) {
      case 'end':
        return unexpected('end of input');
      case 'colon':
        if (c !== ':') return unexpected("':'");
        i++;
        expect = 'value';
        continue;
      case 'commaOrClose': {
        const top = closers[closers.length - 1]!;
        if (c === ',') {
          expect = top === '}' ? 'key' : 'value';
        } else if (c === top) {
          closers.pop();
          expect = afterValue();
        } else {
          return unexpected(`',' or '${top}'`);
        }
        i++;
        continue;
      }
      case 'key':
      case 'keyOrClose': {
        if (c === '}' && expect === 'keyOrClose') {
          closers.pop();
          i++;
          expect = afterValue();
          continue;
        }
        if (c !== '"') return unexpected('a property name in double quotes');
        const r = scanString(s, i);
        if ('at' in r) return r;
        i = r.end;
        expect = 'colon';
        continue;
      }
      case 'value':
      case 'valueOrClose': {
        if (c === ']' && expect === 'valueOrClose') {
          closers.pop();
          i++;
          expect = afterValue();
          continue;
        }
        if (c === '{' || c === '[') {
          closers.push(c === '{' ? '}' : ']');
          i++;
          expect = c === '{' ? 'keyOrClose' : 'valueOrClose';
          continue;
        }
        if (c === '"') {
          const r = scanString(s, i);
          if ('at' in r) return r;
          i = r.end;
        } else if (s.startsWith('true', i) || s.startsWith('null', i)) i += 4;
        else if (s.startsWith('false', i)) i += 5;
        else {
          NUMBER_RE.lastIndex = i;
          if (!NUMBER_RE.test(s)) return unexpected('a value');
          i = NUMBER_RE.lastIndex;
        }
        expect = afterValue();
        continue;
      }
    }
  }
}
