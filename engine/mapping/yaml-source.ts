// YAML parsing that remembers where every value came from, so that an error in an expression
// embedded in a block scalar can be reported as file:line:col of the offending character.
import { LineCounter, parseDocument, isScalar, isMap, isSeq, Scalar, type Document, type Node } from 'yaml';
import { WabError } from './errors.js';

export type KeyPath = readonly (string | number)[];

export interface YamlSource {
  file: string;
  text: string;
  doc: Document.Parsed;
  value: unknown;
  lines: LineCounter;
}

export interface Position {
  line: number; // 1-based
  col: number; // 1-based
}

export function parseYamlSource(file: string, text: string): YamlSource {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const p = lines.linePos(e.pos[0]);
    throw new WabError('WAB_MAPPING_YAML', e.message.split('\n')[0]!, `${file}:${p.line}:${p.col}`);
  }
  return { file, text, doc, value: doc.toJS({ maxAliasCount: 50 }), lines };
}

export function nodeAt(src: YamlSource, path: KeyPath): Node | undefined {
  const n = src.doc.getIn(path, true);
  return n && typeof n === 'object' && ('range' in n) ? (n as Node) : undefined;
}

/** Position of the value at `path`, or of its closest existing ancestor (e.g. for a missing key). */
export function positionOf(src: YamlSource, path: KeyPath): Position {
  for (let len = path.length; len >= 0; len--) {
    const node = nodeAt(src, path.slice(0, len));
    if (node?.range) return src.lines.linePos(node.range[0]);
  }
  return { line: 1, col: 1 };
}

/** Position of the key `key` inside the mapping at `parent` (for "unknown key" errors). */
export function locateKey(src: YamlSource, parent: KeyPath, key: string): string {
  const node = nodeAt(src, parent);
  if (node && isMap(node)) {
    for (const pair of node.items) {
      const k = pair.key as Node | null;
      if (k && isScalar(k) && k.value === key && k.range) {
        const p = src.lines.linePos(k.range[0]);
        return `${src.file}:${p.line}:${p.col}`;
      }
    }
  }
  return locate(src, parent);
}

/** file:line:col for an ajv error: at the offending key for unknown keys, else at the value. */
export function locateSchemaError(src: YamlSource, instancePath: KeyPath, keyword: string, params: Record<string, unknown>): { where: string; path: KeyPath } {
  if (keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
    return { where: locateKey(src, instancePath, params.additionalProperty), path: [...instancePath, params.additionalProperty] };
  }
  return { where: locate(src, instancePath), path: instancePath };
}

export function locate(src: YamlSource, path: KeyPath): string {
  const p = positionOf(src, path);
  return `${src.file}:${p.line}:${p.col}`;
}

export function dotted(path: KeyPath): string {
  let out = '';
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : out ? `.${k}` : k;
  return out;
}

/**
 * Maps a character offset inside the string value at `path` to a file position. Literal blocks (`|`)
 * keep lines one to one, so line i of the value is source line (header + 1 + i) shifted by the
 * block's indentation. Other scalars (quoted with escapes, folded, multi-line plain) are aligned
 * character by character against their source text.
 */
export function offsetToPosition(src: YamlSource, path: KeyPath, offset: number): Position {
  const node = nodeAt(src, path);
  if (!node || !isScalar(node) || !node.range || typeof node.value !== 'string') return positionOf(src, path);
  const value = node.value;
  // "Unexpected end of expression" points past the end; show the last real character instead.
  const at = Math.max(0, Math.min(offset, value.trimEnd().length));
  const start = node.range[0];
  if (node.type === Scalar.BLOCK_LITERAL) {
    const before = value.slice(0, at);
    const lineInValue = before.split('\n').length - 1;
    const colInLine = before.length - (before.lastIndexOf('\n') + 1);
    const firstContentLine = src.lines.linePos(start).line + 1;
    return { line: firstContentLine + lineInValue, col: blockIndent(src, firstContentLine) + colInLine + 1 };
  }
  return src.lines.linePos(alignOffset(src.text, start, node.range[1], node.type === Scalar.BLOCK_FOLDED, value, at));
}

/**
 * Walks the scalar's source and its parsed value together: matching characters advance both; a
 * folded line break stands for a space; anything else in the source (quotes, escape backslashes,
 * indentation, a block header) is skipped. Returns the source offset of value[target].
 */
function alignOffset(text: string, from: number, to: number, folded: boolean, value: string, target: number): number {
  let i = from;
  if (folded) i = text.indexOf('\n', from) + 1; // skip the ">" header line
  let j = 0;
  while (i < to && j < target) {
    const c = text[i];
    const v = value[j];
    if (c === v) {
      i++;
      j++;
    } else if (v === ' ' && c === '\n') {
      i++;
      j++;
      while (i < to && (text[i] === ' ' || text[i] === '\t')) i++;
    } else {
      i++;
    }
  }
  // Land on the character itself, not on skipped indentation or a quote before it.
  while (i < to && value[j] !== undefined && text[i] !== value[j] && text[i] !== '\n') i++;
  return i;
}

function blockIndent(src: YamlSource, line: number): number {
  const starts = src.lines.lineStarts;
  for (let l = line; l <= starts.length; l++) {
    const from = starts[l - 1];
    if (from === undefined) break;
    const to = starts[l] ?? src.text.length;
    const text = src.text.slice(from, to).replace(/\r?\n$/, '');
    if (text.trim() === '') continue;
    return text.length - text.trimStart().length;
  }
  return 0;
}

export { isMap, isSeq };
