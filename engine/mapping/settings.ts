// Tenant settings checked against what a mapping declares; ${ENV_VAR} references resolved.
import { WabError } from './errors.js';

export interface SettingDecl {
  type: 'string' | 'number' | 'integer' | 'boolean' | 'object';
  description?: string;
  default?: unknown;
  secret?: boolean;
  pattern?: string;
  enum?: unknown[];
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces every ${NAME} in strings (deeply) with the environment's value; a missing variable is an
 * error unless the reference carries a shell-style fallback, ${NAME:-fallback}.
 */
export function resolveEnvRefs(value: unknown, env: NodeJS.ProcessEnv, path = 'settings'): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
      const v = env[name] ?? fallback;
      if (v === undefined) throw new WabError('WAB_SETTINGS_INVALID', `${path}: environment variable ${name} is not set`);
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => resolveEnvRefs(v, env, `${path}[${i}]`));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveEnvRefs(v, env, `${path}.${k}`)]));
  }
  return value;
}

function typeOk(type: SettingDecl['type'], v: unknown): boolean {
  switch (type) {
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'integer':
      return Number.isInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
  }
}

/**
 * Applies defaults and checks every declared setting; unknown keys are errors too, since a typo
 * in a tenant file would otherwise silently fall back to a default.
 */
export function checkSettings(decls: Record<string, SettingDecl>, given: Record<string, unknown>, where = 'settings'): Record<string, unknown> {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [name, d] of Object.entries(decls)) {
    const v = given[name] ?? d.default;
    if (v === undefined) {
      problems.push(`${name}: required (${d.type}${d.description ? `, ${d.description}` : ''})`);
      continue;
    }
    if (!typeOk(d.type, v)) problems.push(`${name}: must be ${d.type === 'integer' ? 'an integer' : `a ${d.type}`}`);
    else if (d.pattern && typeof v === 'string' && !new RegExp(d.pattern).test(v)) problems.push(`${name}: must match ${d.pattern}`);
    else if (d.enum && !d.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) problems.push(`${name}: must be one of ${d.enum.map((e) => JSON.stringify(e)).join(', ')}`);
    out[name] = v;
  }
  for (const name of Object.keys(given)) {
    if (!(name in decls)) problems.push(`${name}: not a setting of this mapping (known: ${Object.keys(decls).join(', ') || 'none'})`);
  }
  if (problems.length > 0) throw new WabError('WAB_SETTINGS_INVALID', problems.join('; '), where);
  return out;
}

/** Names of settings whose values must never appear in logs or CLI output. */
export function secretNames(decls: Record<string, SettingDecl>): string[] {
  return Object.entries(decls)
    .filter(([, d]) => d.secret)
    .map(([n]) => n);
}
