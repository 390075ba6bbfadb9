// The admin routes the console reads besides the ones in server.ts: the live overview, the messages
// behind a campaign's counts, and a quarantined webhook as fixture files to look at or download (the
// console never writes mapping files: `wabridge quarantine to-fixture` does). Plus the audit line every
// state-changing admin action leaves in the log.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest, RawServerDefault } from 'fastify';
import type { Logger } from 'pino';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClusterView } from './host.js';
import type { Config } from './config.js';
import type { Metrics } from './metrics.js';
import type { MappingRegistry } from './registry.js';
import type { Store } from '../stores/store.js';
import { COUNT_PATH, campaignMessages } from './campaigns.js';
import { tenantOverview } from './overview.js';
import { loadBaseSettings } from '../mapping/golden.js';
import { fixtureError, quarantineFixture } from '../mapping/quarantine-fixture.js';

export interface OpsDeps {
  config: Config;
  registry: MappingRegistry;
  store: Store;
  metrics: Metrics;
  logger: Logger;
  cluster?: ClusterView;
}

type Guard = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/** Who did it, without the token: the first 12 hex digits of its SHA-256 (tells tokens apart after a rotation). */
export function tokenFingerprint(authorization: string | undefined): string {
  const token = authorization?.startsWith('Bearer ') ? authorization.slice(7) : '';
  return `sha256:${createHash('sha256').update(token).digest('hex').slice(0, 12)}`;
}

/** One log line per admin action that changes or exports something: who, from where, what, on which ids, and the outcome. */
export function audit(logger: Logger, req: FastifyRequest, action: string, ids: readonly string[] | 'all', result: Record<string, unknown>): void {
  logger.info({ audit: { who: tokenFingerprint(req.headers.authorization), ip: req.ip, action, ids, result } }, `admin ${action}`);
}

const bad = (reply: FastifyReply, message: string) => reply.code(400).send({ message, code: 'WAB_INPUT_INVALID' });

/**
 * `{"ids": [...]}` of a replay request: undefined for all (an empty body or no ids), the list, or an
 * error message for the 400.
 */
export function replayIds(body: unknown, what: string): { ids?: string[] } | { error: string } {
  if (typeof body !== 'string' || !/\S/.test(body)) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (e) {
    return { error: `body is not valid JSON: ${(e as Error).message}` };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { error: `body must be a JSON object like {"ids": ["1", "2"]}` };
  const given = (parsed as { ids?: unknown }).ids;
  if (given !== undefined && !(Array.isArray(given) && given.every((id) => typeof id === 'string'))) return { error: `ids must be an array of ${what} ids (strings); leave it out to replay every entry` };
  return given === undefined ? {} : { ids: given as string[] };
}

export function registerOpsRoutes(app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>, deps: OpsDeps, admin: Guard): void {
  const { config, registry, store } = deps;

  app.get('/v1/admin/overview', { preHandler: admin }, async () => {
    const text = deps.cluster ? (await deps.cluster.metrics()).text : await deps.metrics.registry.metrics();
    const mappings = new Map(registry.list().map((m) => [m.name, m]));
    const [stats, quarantine] = await Promise.all([store.stats(), store.quarantineSize()]);
    const tenants = tenantOverview(
      text,
      [...config.tenants.values()].map((t) => ({ id: t.id, provider: t.provider })),
    ).map((t) => ({ ...t, mapping: mappings.get(t.provider) ?? { name: t.provider } }));
    // Per tenant only when there is something to split: listing is dearer than counting.
    const perTenant = async (total: number, list: (tenant: string) => Promise<unknown[]>) =>
      total === 0 ? Object.fromEntries(tenants.map((t) => [t.id, 0])) : Object.fromEntries(await Promise.all(tenants.map(async (t) => [t.id, (await list(t.id)).length] as const)));
    const [dead, quarantined] = await Promise.all([perTenant(stats.outboxDead, (t) => store.listDead(1001, t)), perTenant(quarantine, (t) => store.listQuarantined(1001, t))]);
    return {
      at: Date.now(),
      store: { kind: store.kind, ...stats, quarantine },
      tenants: tenants.map((t) => ({ ...t, dead: dead[t.id] ?? 0, quarantined: quarantined[t.id] ?? 0 })),
      mappings: registry.list(),
    };
  });

  app.get<{ Params: { id: string }; Querystring: { tenant?: string; batch?: string; count?: string; limit?: string; cursor?: string } }>('/v1/admin/campaigns/:id/messages', { preHandler: admin }, async (req, reply) => {
    const q = req.query;
    const limit = q.limit === undefined ? 100 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return bad(reply, `limit must be an integer from 1 to 1000, got '${q.limit}'`);
    if (q.count !== undefined && !COUNT_PATH.test(q.count)) return bad(reply, `count must name a count of the report (messages, answers.<code>, statuses.<status>, failures.<code>, replies, callbacksPending, callbacksDead), got '${q.count}'`);
    return campaignMessages(store, req.params.id, { limit, ...(q.tenant ? { tenant: q.tenant } : {}), ...(q.batch ? { batchId: q.batch } : {}), ...(q.count ? { count: q.count } : {}), ...(q.cursor ? { cursor: q.cursor } : {}) });
  });

  // An export, not a write: the files come back in the answer. POST because it is an audited action.
  app.post<{ Params: { id: string }; Body: string }>('/v1/admin/quarantine/:id/fixture', { preHandler: admin }, async (req, reply) => {
    let name = `webhook-quarantined-${req.params.id}`;
    if (typeof req.body === 'string' && /\S/.test(req.body)) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(req.body);
      } catch (e) {
        return bad(reply, `body is not valid JSON: ${(e as Error).message}`);
      }
      const given = (parsed as { case?: unknown } | null)?.case;
      if (given !== undefined && (typeof given !== 'string' || !/^[A-Za-z0-9_.-]{1,100}$/.test(given) || given.startsWith('.'))) return bad(reply, `case must be a fixture folder name (letters, digits, . _ -), got ${JSON.stringify(given)}`);
      if (typeof given === 'string') name = given;
    }
    const rec = await store.getQuarantined(req.params.id);
    if (!rec) return reply.code(404).send({ message: `no quarantined webhook ${req.params.id}`, code: 'WAB_NOT_FOUND' });
    const mapping = registry.get(rec.mapping);
    const made = quarantineFixture(rec, mapping);
    let error: { code: string; message: string } | undefined;
    if (mapping) {
      try {
        error = await fixtureError(mapping, `${rec.mapping}/${name}`, made, loadBaseSettings(join(config.server.mappingsDir, rec.mapping)));
      } catch (e) {
        error = { code: 'WAB_FIXTURE', message: (e as Error).message };
      }
    }
    const redNow = mapping ? (error ? { red: true, error } : { red: false }) : { red: null, note: `mapping ${rec.mapping} is not loaded` };
    audit(deps.logger, req, 'quarantine to-fixture export', [rec.id], { case: `${rec.mapping}/${name}`, red: redNow.red });
    return { id: rec.id, path: `mappings/${rec.mapping}/fixtures/${name}/`, files: made.files, loadedVersion: mapping?.version, ...redNow };
  });
}
