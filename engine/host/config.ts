// wabridge.yaml: validated against schemas/config.schema.json with file:line:col errors, ${ENV}
// references resolved, durations parsed, defaults applied. The rest of the host reads only Config.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { WabError } from '../mapping/errors.js';
import { ADMISSION_DEFAULTS, type AdmissionOptions } from './admission.js';
import { describeError, pointerToPath, projectSchema, usefulErrors, validatorFor } from '../mapping/schema-validator.js';
import { resolveEnvRefs } from '../mapping/settings.js';
import { dotted, locate, locateSchemaError, parseYamlSource } from '../mapping/yaml-source.js';

export type TenantAuth = { basic: { username: string; password: string } } | { header: { name: string; value: string } };

export interface TenantConfig {
  id: string;
  provider: string;
  settings: Record<string, unknown>;
  auth: TenantAuth;
  callbacks: { status: string; inbound: string };
  concurrency: number;
  deadlineMs: number;
  /** BSP messages per second for this tenant, fleet-wide; undefined = unlimited. */
  bspRate?: number;
  /** The incoming callback's `type` for audio: CleverTap's doc says both (docs/clevertap-model.md). */
  incomingAudioType: 'audio' | 'voice';
  /** wabridge's own click tracking (docs/click-tracking.md); absent = off. */
  clickTracking?: ClickTracking;
}

export interface ClickTracking {
  linkTtlMs: number;
  /** Template name → the button's original base URL: one for all its dynamic-URL buttons, or per button index. */
  templates: Map<string, string | Map<number, string>>;
}

export interface Config {
  file: string;
  server: {
    host: string;
    port: number;
    bodyLimit: number;
    logLevel: string;
    publicUrl: string;
    adminToken?: string;
    mediaSecret?: string;
    mediaLinkTtlMs: number;
    mappingsDir: string;
    watch: boolean;
    drainMs: number;
    overload: AdmissionOptions;
    /** Clicks per minute per client address on /c/. */
    clickRate: number;
    /** fastify's trustProxy: where the client address comes from behind a load balancer. */
    trustProxy: boolean | string;
  };
  /** `redis` set: the shared Redis store (several instances); `sqlite` is then unused. */
  store: { sqlite: string; redis?: string; redisPrefix: string; correlationTtlMs: number };
  callbacks: { retryForMs: number; baseDelayMs: number; maxDelayMs: number; batchSize: number; lookupWindowMs: number };
  /** Message timelines (docs/operations.md): kept keepMs (0 = off), at most maxEvents events. */
  trace: { keepMs: number; maxEvents: number };
  tenants: Map<string, TenantConfig>;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string): number {
  const m = /^([0-9]+)(ms|s|m|h|d)$/.exec(text);
  if (!m) throw new WabError('WAB_INPUT_INVALID', `not a duration: '${text}' (use e.g. 900ms, 30s, 10m, 24h, 30d)`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

function clickTrackingOf(c: { linkTtl?: string; templates: Record<string, string | Record<string, string>> }): ClickTracking {
  const templates = new Map<string, string | Map<number, string>>();
  for (const [name, v] of Object.entries(c.templates)) templates.set(name, typeof v === 'string' ? v : new Map(Object.entries(v).map(([i, url]) => [Number(i), url])));
  return { linkTtlMs: parseDuration(c.linkTtl ?? '7d'), templates };
}

/* eslint-disable @typescript-eslint/no-explicit-any -- the YAML value is schema-validated before it is read */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const abs = resolve(file);
  const shown = relative(process.cwd(), abs) || abs;
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new WabError('WAB_INPUT_INVALID', `cannot read configuration: ${(e as Error).message}`, shown);
  }
  const src = parseYamlSource(shown, text);
  const validate = validatorFor(projectSchema('config.schema.json'));
  const valid: boolean = validate(src.value);
  if (!valid) {
    const problems = usefulErrors(validate.errors ?? []).map((e) => {
      const { where, path } = locateSchemaError(src, pointerToPath(e.instancePath), e.keyword, e.params as Record<string, unknown>);
      return `${where}: ${dotted(path) || '(top level)'}: ${describeError(e)}`;
    });
    throw new WabError('WAB_INPUT_INVALID', `invalid configuration:\n${[...new Set(problems)].join('\n')}`);
  }
  const raw = src.value as any;
  const base = dirname(abs);
  const at = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const resolveRefs = <T>(value: T, path: (string | number)[]): T => {
    try {
      return resolveEnvRefs(value, env, dotted(path)) as T;
    } catch (e) {
      throw new WabError('WAB_SETTINGS_INVALID', (e as Error).message, locate(src, path));
    }
  };
  const s = resolveRefs(raw.server ?? {}, ['server']);
  const port = env.PORT !== undefined && env.PORT !== '' ? Number(env.PORT) : (s.port ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new WabError('WAB_INPUT_INVALID', `PORT must be 0-65535, got '${env.PORT}'`);
  const host = s.host ?? '0.0.0.0';
  const cb = raw.callbacks ?? {};
  const tenants = new Map<string, TenantConfig>();
  for (const [id, t] of Object.entries<any>(raw.tenants)) {
    tenants.set(id, {
      id,
      provider: t.provider,
      settings: resolveRefs(t.settings ?? {}, ['tenants', id, 'settings']),
      auth: resolveRefs(t.auth, ['tenants', id, 'auth']),
      callbacks: resolveRefs(t.callbacks, ['tenants', id, 'callbacks']),
      concurrency: t.concurrency ?? 1500,
      deadlineMs: parseDuration(t.deadline ?? '900ms'),
      incomingAudioType: t.incomingAudioType ?? 'audio',
      ...(t.bspRate !== undefined ? { bspRate: t.bspRate as number } : {}),
      ...(t.clickTracking !== undefined ? { clickTracking: clickTrackingOf(resolveRefs(t.clickTracking, ['tenants', id, 'clickTracking'])) } : {}),
    });
  }
  const o = s.overload ?? {};
  if (o.minInFlight !== undefined && o.maxInFlight !== undefined && o.minInFlight > o.maxInFlight) {
    throw new WabError('WAB_INPUT_INVALID', `${shown}: server.overload.minInFlight (${o.minInFlight}) is above server.overload.maxInFlight (${o.maxInFlight})`);
  }
  return {
    file: shown,
    server: {
      host,
      port,
      bodyLimit: s.bodyLimit ?? 1_048_576,
      logLevel: env.LOG_LEVEL || s.logLevel || 'info',
      publicUrl: (s.publicUrl ?? `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`).replace(/\/+$/, ''),
      adminToken: s.adminToken,
      mediaSecret: s.mediaSecret,
      mediaLinkTtlMs: parseDuration(s.mediaLinkTtl ?? '7d'),
      mappingsDir: at(s.mappings ?? 'mappings'),
      watch: s.watch ?? true,
      drainMs: parseDuration(s.drain ?? '10s'),
      clickRate: s.clickRate ?? 600,
      trustProxy: s.trustProxy ?? false,
      overload: {
        ...ADMISSION_DEFAULTS,
        ...(o.targetLag !== undefined ? { targetLagMs: parseDuration(s.overload.targetLag) } : {}),
        ...(o.maxWait !== undefined ? { maxWaitMs: parseDuration(s.overload.maxWait) } : {}),
        ...(o.minInFlight !== undefined ? { minLimit: s.overload.minInFlight } : {}),
        ...(o.maxInFlight !== undefined ? { maxLimit: s.overload.maxInFlight } : {}),
        ...(o.initialInFlight !== undefined ? { initialLimit: s.overload.initialInFlight } : {}),
      },
    },
    store: {
      sqlite: raw.store?.sqlite === ':memory:' ? ':memory:' : at(resolveRefs(raw.store?.sqlite ?? 'data/wabridge.db', ['store', 'sqlite'])),
      redis: raw.store?.redis === undefined ? undefined : resolveRefs(raw.store.redis, ['store', 'redis']),
      redisPrefix: raw.store?.redisPrefix === undefined ? 'wabridge:' : resolveRefs(raw.store.redisPrefix, ['store', 'redisPrefix']),
      correlationTtlMs: parseDuration(raw.store?.correlationTtl ?? '30d'),
    },
    callbacks: {
      retryForMs: parseDuration(cb.retryFor ?? '24h'),
      baseDelayMs: parseDuration(cb.baseDelay ?? '1s'),
      maxDelayMs: parseDuration(cb.maxDelay ?? '10m'),
      batchSize: cb.batchSize ?? 100,
      lookupWindowMs: parseDuration(cb.lookupWindow ?? '10m'),
    },
    trace: {
      keepMs: parseDuration(raw.trace?.keep ?? '7d'),
      maxEvents: raw.trace?.maxEvents ?? 5_000_000,
    },
    tenants,
  };
}
