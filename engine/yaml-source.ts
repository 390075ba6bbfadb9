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
 * Maps a character offset inside the string value at `path` to a file position.
 * Block scalars (`|`) keep lines one to one, so line i of the value is source line
 * (header + 1 + i) shifted by the block's indentation; quoted scalars shift by the quote.
 */
export function offsetToPosition(src: YamlSource, path: KeyPath, offset: number): Position {
  const node = nodeAt(src, path);
  if (!node || !isScalar(node) || !node.range || typeof node.value !== 'string') return positionOf(src, path);
  const start = node.range[0];
  const value = node.value;
  const before = value.slice(0, Math.max(0, Math.min(offset, value.length)));
  const lineInValue = before.split('\n').length - 1;
  const colInLine = before.length - (before.lastIndexOf('\n') + 1);
  const type = node.type;
  if (type === Scalar.BLOCK_LITERAL || type === Scalar.BLOCK_FOLDED) {
    const header = src.lines.linePos(start);
    const firstContentLine = header.line + 1;
    const indent = blockIndent(src, firstContentLine);
    return { line: firstContentLine + lineInValue, col: indent + colInLine + 1 };
  }
  const p = src.lines.linePos(start);
  const quote = type === Scalar.QUOTE_DOUBLE || type === Scalar.QUOTE_SINGLE ? 1 : 0;
  if (lineInValue === 0) return { line: p.line, col: p.col + quote + colInLine };
  return { line: p.line + lineInValue, col: colInLine + 1 };
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
