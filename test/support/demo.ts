// "The demo's mapping": the BSP the demo tenant of examples/wabridge.yaml uses, found the way
// `wabridge demo` (`npm start`) finds it, so a test that needs some mapping names no BSP and follows the
// demo when it moves to another one.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../engine/host/config.js';
import { loadMapping, type Mapping } from '../../engine/mapping/loader.js';
import { sign } from '../../engine/mapping/webhook.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface DemoMapping {
  /** The mapping's folder name under mappings/ (the tenant's `provider`). */
  provider: string;
  /** mappings/<provider>, absolute. */
  dir: string;
  /** The demo tenant's settings with every `${VAR:-default}` at its default, baseUrl left out. */
  settings: Record<string, unknown>;
}

let cached: DemoMapping | undefined;

/** The demo tenant's mapping; the environment is ignored, so a developer's own secrets never leak in. */
export function demoMapping(): DemoMapping {
  if (cached) return cached;
  const cfg = loadConfig(join(ROOT, 'examples', 'wabridge.yaml'), {});
  // the same choice as `wabridge demo`: the tenant called demo, else the first
  const tenant = cfg.tenants.get('demo') ?? [...cfg.tenants.values()][0]!;
  const { baseUrl: _baseUrl, ...settings } = tenant.settings;
  cached = { provider: tenant.provider, dir: join(cfg.server.mappingsDir, tenant.provider), settings };
  return cached;
}

/** The demo's mapping, loaded (throws with every problem when it does not load). */
export function loadDemoMapping(): Mapping {
  const loaded = loadMapping(demoMapping().dir);
  if (!loaded.ok) throw new Error(`the demo's mapping does not load: ${loaded.errors.map((e) => e.message).join('; ')}`);
  return loaded.mapping;
}

/**
 * The header a mapping's BSP signs a webhook body with, as that BSP would send it: header name, algorithm
 * and secret setting all from `webhook.signature`, so the test knows none of them. Signs the raw body
 * (a mapping whose signature.payload is an expression signs something else).
 */
export function signatureHeaders(mapping: Mapping, rawBody: string, settings: Record<string, unknown>): Record<string, string> {
  const sig = mapping.webhook?.signature;
  if (!sig) return {};
  return { [sig.header.toLowerCase()]: sign(mapping, rawBody, String(settings[sig.secret])) };
}

/** The values of the settings the mapping declares secret: what no log, trace or answer may show. */
export function secretValues(mapping: Mapping, settings: Record<string, unknown>): [string, string][] {
  return Object.entries(mapping.settings)
    .filter(([name, decl]) => decl.secret === true && typeof settings[name] === 'string' && settings[name] !== '')
    .map(([name]) => [name, settings[name] as string]);
}
