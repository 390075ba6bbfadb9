// Reads mappings/<name>/mapping.yaml, validates it against schemas/mapping.schema.json and compiles
// every expression once. Problems are collected, not thrown one by one, so `lint` can show them all.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { WabError } from './errors.js';
import { checkSyntax, compile, DEFAULT_LIMITS, type Compiled, type FunctionSource, type Limits, type SourceRef } from './expression.js';
import { describeError, pointerToPath, projectSchema, usefulErrors, validatorFor } from './schema-validator.js';
import { dotted, locate, locateSchemaError, offsetToPosition, parseYamlSource, type KeyPath, type YamlSource } from './yaml-source.js';
import type { SettingDecl } from './settings.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface CompiledRequest {
  method: Method;
  url: Compiled;
  query: [string, Compiled][];
  headers: [string, Compiled][];
  body?: Compiled;
  encoding: 'json' | 'form';
}

export interface SignatureDecl {
  header: string;
  algorithm: 'hmac-sha256' | 'hmac-sha1';
  encoding: 'hex' | 'base64';
  prefix?: string;
  secret: string;
  payload?: Compiled;
}

export interface Mapping {
  name: string;
  title: string;
  docs?: string;
  dir: string;
  file: string;
  /** sha256 of the file's text (first 12 hex digits): which version produced a given output. */
  version: string;
  loadedAt: Date;
  settings: Record<string, SettingDecl>;
  contracts: { requestBody?: string; webhookBody?: string };
  send: {
    reject?: Compiled;
    request: CompiledRequest;
    response: { success: Compiled; providerMessageId?: Compiled; error: Compiled };
    transportError?: Compiled;
  };
  webhook?: {
    handshake?: { match: Compiled; accept: Compiled; respond: Compiled };
    signature?: SignatureDecl;
    events: Compiled;
  };
  media?: { request?: CompiledRequest; downloadUrl?: Compiled; downloadHeaders: [string, Compiled][] };
  /** Every compiled expression, by slot name, for tooling (lint --explain, differential tests). */
  expressions: Compiled[];
  /** How many functions the mapping declares (compiled into the expressions that use them). */
  functions: number;
}

export type LoadResult = { ok: true; mapping: Mapping } | { ok: false; errors: WabError[] };

export const MAPPING_FILE = 'mapping.yaml';

/* eslint-disable @typescript-eslint/no-explicit-any -- the YAML value is schema-validated before it is read */
type Raw = any;

export function loadMapping(dir: string, limits: Limits = DEFAULT_LIMITS): LoadResult {
  const absDir = resolve(dir);
  const file = join(absDir, MAPPING_FILE);
  const shown = relative(process.cwd(), file) || file;
  if (!existsSync(file)) return { ok: false, errors: [new WabError('WAB_MAPPING_NOT_FOUND', `no ${MAPPING_FILE} in ${dir}`, shown)] };
  const text = readFileSync(file, 'utf8');
  let src: YamlSource;
  try {
    src = parseYamlSource(shown, text);
  } catch (e) {
    if (e instanceof WabError) return { ok: false, errors: [e] };
    throw e;
  }
  const errors: WabError[] = [];
  const raw = src.value as Raw;
  // Without this line editors cannot autocomplete or flag mistakes; cheap to require, costly to miss.
  if (!/^# yaml-language-server: \$schema=\S*mapping\.schema\.json/.test(text)) {
    errors.push(new WabError('WAB_MAPPING_SCHEMA', 'the first line must be `# yaml-language-server: $schema=../../schemas/mapping.schema.json`', `${shown}:1:1`));
  }

  const validate = validatorFor(projectSchema('mapping.schema.json'));
  const valid: boolean = validate(raw);
  if (!valid) {
    for (const e of usefulErrors(validate.errors ?? [])) {
      const { where, path } = locateSchemaError(src, pointerToPath(e.instancePath), e.keyword, e.params as Record<string, unknown>);
      errors.push(new WabError('WAB_MAPPING_SCHEMA', `${dotted(path) || '(top level)'}: ${describeError(e)}`, where));
    }
    return { ok: false, errors };
  }
  if (raw.name !== basename(absDir)) {
    errors.push(new WabError('WAB_MAPPING_SCHEMA', `name: '${raw.name}' must equal the folder name '${basename(absDir)}'`, locate(src, ['name'])));
  }
  for (const key of ['requestBody', 'webhookBody'] as const) {
    const p = raw.contracts?.[key];
    if (p && !existsSync(join(absDir, p))) {
      errors.push(new WabError('WAB_MAPPING_SCHEMA', `contracts.${key}: no file ${p} beside the mapping`, locate(src, ['contracts', key])));
    }
  }

  const ref = (path: KeyPath): SourceRef => ({
    name: dotted(path),
    locate: (offset) => {
      const p = offsetToPosition(src, path, offset);
      return `${src.file}:${p.line}:${p.col}`;
    },
  });

  const functions: FunctionSource[] = [];
  for (const [name, fnText] of Object.entries<string>(raw.functions ?? {})) {
    const r = ref(['functions', name]);
    const err = checkSyntax(fnText, r);
    if (err) errors.push(err);
    else functions.push({ name, text: fnText, ref: r });
  }

  const expressions: Compiled[] = [];
  const expr = (path: KeyPath): Compiled => {
    let value: unknown = raw;
    for (const k of path) value = (value as Raw)?.[k];
    const r = ref(path);
    try {
      const c = compile(String(value), r, functions, limits);
      expressions.push(c);
      return c;
    } catch (e) {
      if (!(e instanceof WabError)) throw e;
      errors.push(e);
      return { name: r.name, text: String(value), evaluate: () => Promise.reject(e) };
    }
  };
  const opt = (path: KeyPath): Compiled | undefined => {
    let value: unknown = raw;
    for (const k of path) value = (value as Raw)?.[k];
    return value === undefined ? undefined : expr(path);
  };
  const exprMap = (path: KeyPath): [string, Compiled][] => {
    let value: unknown = raw;
    for (const k of path) value = (value as Raw)?.[k];
    return Object.keys((value as Record<string, string> | undefined) ?? {}).map((k) => [k, expr([...path, k])]);
  };
  const request = (path: KeyPath): CompiledRequest => {
    let r: Raw = raw;
    for (const k of path) r = r?.[k];
    return {
      method: r.method,
      url: expr([...path, 'url']),
      query: exprMap([...path, 'query']),
      headers: exprMap([...path, 'headers']),
      body: opt([...path, 'body']),
      encoding: r.encoding ?? 'json',
    };
  };

  const mapping: Mapping = {
    name: raw.name,
    title: raw.title,
    docs: raw.docs,
    dir: absDir,
    file: shown,
    version: createHash('sha256').update(text).digest('hex').slice(0, 12),
    loadedAt: new Date(),
    settings: raw.settings ?? {},
    contracts: raw.contracts ?? {},
    send: {
      reject: opt(['send', 'reject']),
      request: request(['send', 'request']),
      response: {
        success: expr(['send', 'response', 'success']),
        providerMessageId: opt(['send', 'response', 'providerMessageId']),
        error: expr(['send', 'response', 'error']),
      },
      transportError: opt(['send', 'transportError']),
    },
    expressions,
    functions: functions.length,
  };
  if (raw.webhook) {
    const sig = raw.webhook.signature;
    mapping.webhook = {
      handshake: raw.webhook.handshake
        ? {
            match: expr(['webhook', 'handshake', 'match']),
            accept: expr(['webhook', 'handshake', 'accept']),
            respond: expr(['webhook', 'handshake', 'respond']),
          }
        : undefined,
      signature: sig ? { ...sig, payload: opt(['webhook', 'signature', 'payload']) } : undefined,
      events: expr(['webhook', 'events']),
    };
    if (sig && !(sig.secret in mapping.settings)) {
      errors.push(new WabError('WAB_MAPPING_SCHEMA', `webhook.signature.secret: '${sig.secret}' is not a declared setting`, locate(src, ['webhook', 'signature', 'secret'])));
    }
  }
  if (raw.media) {
    mapping.media = {
      request: raw.media.request ? request(['media', 'request']) : undefined,
      downloadUrl: opt(['media', 'downloadUrl']),
      downloadHeaders: exprMap(['media', 'downloadHeaders']),
    };
  }
  for (const [name, decl] of Object.entries(mapping.settings)) {
    if (decl.pattern !== undefined) {
      try {
        new RegExp(decl.pattern);
      } catch (e) {
        errors.push(new WabError('WAB_MAPPING_SCHEMA', `settings.${name}.pattern: ${(e as Error).message}`, locate(src, ['settings', name, 'pattern'])));
      }
    }
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, mapping };
}

/** Every folder under `root` that holds a mapping.yaml, sorted by name. */
export function mappingDirs(root: string): string[] {
  if (existsSync(join(root, MAPPING_FILE))) return [root];
  if (!existsSync(root) || !statSync(root).isDirectory()) return [];
  return readdirSync(root)
    .sort()
    .map((d) => join(root, d))
    .filter((d) => statSync(d).isDirectory() && existsSync(join(d, MAPPING_FILE)));
}
