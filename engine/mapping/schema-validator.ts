// ajv set up once for the whole process: JSON Schema 2020-12 with formats.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv2020) => Ajv2020;

const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);

const cache = new Map<string, ValidateFunction>();

/**
 * A schema file compiled on an Ajv of its own, stopping at the first error: for a check that runs on
 * every message and must follow the file when it is edited (the shared Ajv keeps the first version of
 * each $id for the life of the process).
 */
export function compileFresh(schemaPath: string): ValidateFunction {
  const own = new Ajv2020({ allErrors: false, strict: false });
  addFormats(own);
  return own.compile(JSON.parse(readFileSync(schemaPath, 'utf8')) as Record<string, unknown>);
}

/** Validator for a schema file, compiled on first use. */
export function validatorFor(schemaPath: string): ValidateFunction {
  let v = cache.get(schemaPath);
  if (!v) {
    const schema = JSON.parse(readFileSync(schemaPath, 'utf8')) as Record<string, unknown>;
    const id = typeof schema.$id === 'string' ? schema.$id : undefined;
    const known = id ? ajv.getSchema(id) : undefined;
    v = known ?? ajv.compile(schema);
    cache.set(schemaPath, v);
  }
  return v;
}

const schemaPaths = new Map<string, string>();

/** The path of a schema in schemas/ (memoized: the webhook flow asks for one per request). */
export function projectSchema(relative: string): string {
  let p = schemaPaths.get(relative);
  if (p === undefined) schemaPaths.set(relative, (p = fileURLToPath(new URL(`../../schemas/${relative}`, import.meta.url))));
  return p;
}

/** "/a/b/0" → ["a", "b", 0] */
export function pointerToPath(pointer: string): (string | number)[] {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/** One readable line per ajv error, e.g. "send.request: must have required property 'url'". */
export function describeError(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  if (e.keyword === 'additionalProperties') return `unknown key '${String(p.additionalProperty)}'`;
  if (e.keyword === 'required') return `missing required key '${String(p.missingProperty)}'`;
  if (e.keyword === 'enum') return `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  return e.message ?? e.keyword;
}

/** ajv reports a failing oneOf/anyOf/if branch once per branch; keep the most specific errors. */
export function usefulErrors(errors: readonly ErrorObject[]): ErrorObject[] {
  const out = errors.filter((e) => !['oneOf', 'anyOf', 'if', 'not'].includes(e.keyword));
  return out.length > 0 ? out : [...errors];
}
