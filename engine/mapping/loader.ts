// Reads mappings/<name>/mapping.yaml, validates it against schemas/mapping.schema.json and compiles
// every expression once. Problems are collected, not thrown one by one, so `lint` can show them all.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { WabError } from './errors.js';
import { checkSyntax, compile, DEFAULT_LIMITS, type Compiled, type FunctionSource, type Limits, type SourceRef } from './expression.js';
import { compileFresh, describeError, pointerToPath, projectSchema, usefulErrors, validatorFor } from './schema-validator.js';
import type { RequestGuard } from './contract.js';
import { dotted, locate, locateSchemaError, nodeAt, offsetToPosition, parseYamlSource, type KeyPath, type YamlSource } from './yaml-source.js';
import type { SettingDecl } from './settings.js';
import type { RedactKeys } from './redact-fixture.js';

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
  algorithm: 'hmac-sha256' | 'hmac-sha1' | 'jwt-hs256';
  encoding?: 'hex' | 'base64';
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
  /** sha256 of the file's text and its parents' (first 12 hex digits): which version produced a given output. */
  version: string;
  /** The mappings this one extends, nearest first: editing one of them reloads this one too. */
  extends: string[];
  loadedAt: Date;
  settings: Record<string, SettingDecl>;
  contracts: { requestBody?: string; webhookBody?: string; enforce?: boolean };
  /** fixtures.redact: this BSP's key names for the redaction of `quarantine to-fixture`. */
  fixtures: { redact?: RedactKeys };
  send: {
    reject?: Compiled;
    /** contracts.enforce: the compiled requestBody every send body is checked against. */
    guard?: RequestGuard;
    request: CompiledRequest;
    response: { success: Compiled; providerMessageId?: Compiled; error: Compiled };
    transportError?: Compiled;
  };
  webhook?: {
    handshake?: { match: Compiled; accept: Compiled; respond: Compiled };
    signature?: SignatureDecl;
    events: Compiled;
    /** Cuts a batch body into bodies of one item each, re-mapped alone when the whole fails (docs/mapping-format.md). */
    split?: Compiled;
    /** file:line:col of webhook.events, for errors in what it produced (they have no position of their own). */
    eventsAt: string;
  };
  media?: { request?: CompiledRequest; downloadUrl?: Compiled; downloadHeaders: [string, Compiled][] };
  auth?: { token?: { when?: Compiled; request: CompiledRequest; value: Compiled; expiresIn?: Compiled } };
  /** Every compiled expression, by slot name, for tooling (lint --explain, differential tests). */
  expressions: Compiled[];
  /** How many functions the mapping declares (compiled into the expressions that use them). */
  functions: number;
}

export type LoadResult = { ok: true; mapping: Mapping } | { ok: false; errors: WabError[] };

export const MAPPING_FILE = 'mapping.yaml';

/* eslint-disable @typescript-eslint/no-explicit-any -- the YAML value is schema-validated before it is read */
type Raw = any;

interface Layer {
  src: YamlSource;
  dir: string;
  text: string;
}

const HEADER = /^# yaml-language-server: \$schema=\S*mapping\.schema\.json/;

/** The mapping and every mapping it extends, the mapping itself first; `ownText` replaces the first file's text. */
function readLayers(absDir: string, errors: WabError[], ownText?: string): Layer[] | undefined {
  const layers: Layer[] = [];
  let dir = absDir;
  for (;;) {
    const file = join(dir, MAPPING_FILE);
    const shown = relative(process.cwd(), file) || file;
    if (!(ownText !== undefined && layers.length === 0) && !existsSync(file)) {
      const from = layers.at(-1);
      errors.push(new WabError('WAB_MAPPING_NOT_FOUND', `no ${MAPPING_FILE} in ${relative(process.cwd(), dir) || dir}`, from ? locate(from.src, ['extends']) : shown));
      return undefined;
    }
    const text = ownText !== undefined && layers.length === 0 ? ownText : readFileSync(file, 'utf8');
    let src: YamlSource;
    try {
      src = parseYamlSource(shown, text);
    } catch (e) {
      if (e instanceof WabError) errors.push(e);
      else throw e;
      return undefined;
    }
    // Without this line editors cannot autocomplete or flag mistakes; cheap to require, costly to miss.
    if (!HEADER.test(text)) errors.push(new WabError('WAB_MAPPING_SCHEMA', 'the first line must be `# yaml-language-server: $schema=../../schemas/mapping.schema.json`', `${shown}:1:1`));
    layers.push({ src, dir, text });
    const parent = (src.value as Raw)?.extends;
    if (typeof parent !== 'string') return layers;
    const next = join(dirname(dir), parent);
    if (layers.some((l) => l.dir === next) || layers.length > 8) {
      errors.push(new WabError('WAB_MAPPING_SCHEMA', `extends: '${parent}' makes a cycle (${layers.map((l) => basename(l.dir)).join(' → ')} → ${parent})`, locate(src, ['extends'])));
      return undefined;
    }
    dir = next;
  }
}

/** Child over parent: objects merge key by key, anything else replaces, null removes the key. */
function overlay(base: Raw, top: Raw): Raw {
  if (top === undefined) return base;
  if (!top || typeof top !== 'object' || Array.isArray(top) || !base || typeof base !== 'object' || Array.isArray(base)) return top;
  const out: Raw = { ...base };
  for (const [k, v] of Object.entries(top)) {
    if (v === null) delete out[k];
    else out[k] = overlay(base[k], v);
  }
  return out;
}

/** For tooling (the console playground), never for the host. */
export interface LoadOptions {
  /** Stands for the folder's mapping.yaml (an unsaved edit): positions still name that file, and what it extends and its contracts are read beside it. */
  text?: string;
  /** Rewrites each function's text before it is compiled (after its syntax is checked): a traced copy that records calls. */
  rewriteFunction?: (name: string, text: string) => string;
}

export function loadMapping(dir: string, limits: Limits = DEFAULT_LIMITS, opts: LoadOptions = {}): LoadResult {
  const absDir = resolve(dir);
  const errors: WabError[] = [];
  const layers = readLayers(absDir, errors, opts.text);
  if (!layers) return { ok: false, errors };
  const own = layers[0]!;
  const shown = own.src.file;
  const raw = layers.reduceRight<Raw>((acc, l) => overlay(acc, l.src.value), undefined);
  delete raw.extends;
  // Positions come from the layer that actually wrote the value: an error in an inherited
  // expression points into the parent's file.
  const layerOf = (path: KeyPath): Layer => layers.find((l) => nodeAt(l.src, path) !== undefined) ?? own;
  const src = own.src;

  const validate = validatorFor(projectSchema('mapping.schema.json'));
  const valid: boolean = validate(raw);
  if (!valid) {
    for (const e of usefulErrors(validate.errors ?? [])) {
      const instance = pointerToPath(e.instancePath);
      const { where, path } = locateSchemaError(layerOf(instance).src, instance, e.keyword, e.params as Record<string, unknown>);
      errors.push(new WabError('WAB_MAPPING_SCHEMA', `${dotted(path) || '(top level)'}: ${describeError(e)}`, where));
    }
    return { ok: false, errors };
  }
  const ownName = (own.src.value as Raw)?.name;
  if (ownName !== basename(absDir)) {
    errors.push(new WabError('WAB_MAPPING_SCHEMA', `name: '${ownName ?? ''}' must equal the folder name '${basename(absDir)}'`, locate(src, ['name'])));
  }
  const contracts: Mapping['contracts'] = {};
  let guard: RequestGuard | undefined;
  for (const key of ['requestBody', 'webhookBody'] as const) {
    const p = raw.contracts?.[key];
    if (!p) continue;
    const file = join(layerOf(['contracts', key]).dir, p);
    if (!existsSync(file)) errors.push(new WabError('WAB_MAPPING_SCHEMA', `contracts.${key}: no file ${p} beside the mapping`, locate(layerOf(['contracts', key]).src, ['contracts', key])));
    contracts[key] = relative(absDir, file);
  }
  if (raw.contracts?.enforce === true) {
    const at = locate(layerOf(['contracts', 'enforce']).src, ['contracts', 'enforce']);
    contracts.enforce = true;
    if (contracts.requestBody === undefined) errors.push(new WabError('WAB_MAPPING_SCHEMA', 'contracts.enforce: needs contracts.requestBody, the schema send bodies are held to', at));
    else if (raw.send?.request?.encoding === 'form') errors.push(new WabError('WAB_MAPPING_SCHEMA', 'contracts.enforce: checks JSON bodies; send.request.encoding is form', at));
    else if (existsSync(join(absDir, contracts.requestBody))) {
      try {
        guard = { schema: contracts.requestBody, validate: compileFresh(join(absDir, contracts.requestBody)) };
      } catch (e) {
        errors.push(new WabError('WAB_MAPPING_SCHEMA', `contracts.requestBody: ${contracts.requestBody} does not compile: ${(e as Error).message}`, locate(layerOf(['contracts', 'requestBody']).src, ['contracts', 'requestBody'])));
      }
    }
  }
  raw.contracts = contracts;

  const ref = (path: KeyPath): SourceRef => ({
    name: dotted(path),
    locate: (offset) => {
      const from = layerOf(path).src;
      const p = offsetToPosition(from, path, offset);
      return `${from.file}:${p.line}:${p.col}`;
    },
  });

  const functions: FunctionSource[] = [];
  for (const [name, fnText] of Object.entries<string>(raw.functions ?? {})) {
    const r = ref(['functions', name]);
    const err = checkSyntax(fnText, r);
    if (err) errors.push(err);
    else functions.push({ name, text: opts.rewriteFunction ? opts.rewriteFunction(name, fnText) : fnText, ref: r });
  }

  const expressions: Compiled[] = [];
  const valueAt = (path: KeyPath): Raw => path.reduce<Raw>((v, k) => v?.[k], raw);
  const expr = (path: KeyPath): Compiled => {
    const value: unknown = valueAt(path);
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
    return valueAt(path) === undefined ? undefined : expr(path);
  };
  const exprMap = (path: KeyPath): [string, Compiled][] => {
    return Object.keys(valueAt(path) ?? {}).map((k) => [k, expr([...path, k])]);
  };
  const request = (path: KeyPath): CompiledRequest => {
    const r = valueAt(path);
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
    version: layers.reduce((h, l) => h.update(l.text), createHash('sha256')).digest('hex').slice(0, 12),
    extends: layers.slice(1).map((l) => basename(l.dir)),
    loadedAt: new Date(),
    settings: raw.settings ?? {},
    contracts: raw.contracts ?? {},
    fixtures: raw.fixtures ?? {},
    send: {
      reject: opt(['send', 'reject']),
      ...(guard === undefined ? {} : { guard }),
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
      split: opt(['webhook', 'split']),
      eventsAt: ref(['webhook', 'events']).locate(0),
    };
    if (sig && !(sig.secret in mapping.settings)) {
      errors.push(new WabError('WAB_MAPPING_SCHEMA', `webhook.signature.secret: '${sig.secret}' is not a declared setting`, locate(src, ['webhook', 'signature', 'secret'])));
    }
  }
  if (raw.auth?.token) {
    mapping.auth = {
      token: {
        when: opt(['auth', 'token', 'when']),
        request: request(['auth', 'token', 'request']),
        value: expr(['auth', 'token', 'value']),
        expiresIn: opt(['auth', 'token', 'expiresIn']),
      },
    };
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
