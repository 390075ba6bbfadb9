// The HTTP host: CleverTap's messaging endpoint, BSP webhooks, media links, health, metrics, admin.
// Bodies are read raw (the CleverTap payload goes through a lenient parser, webhooks need the exact
// bytes for signatures); every error answer is JSON with a message and a stable code.
import Fastify, { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Admission } from './admission.js';
import type { ClusterView } from './host.js';
import type { BspClient } from './bsp-client.js';
import { ClickRateLimiter, clickRoute } from './click-tracking.js';
import { LocalConcurrencyLimiter, LocalRateLimiter, type ConcurrencyLimiter, type RateLimiter } from './concurrency.js';
import type { Config, TenantConfig } from './config.js';
import { planMediaDownload, planMediaLookup } from '../mapping/media.js';
import type { MediaLinks } from './media-links.js';
import type { Metrics } from './metrics.js';
import type { MappingRegistry } from './registry.js';
import { RecentMax } from './recent-max.js';
import { codeOf, handleSend } from './send-flow.js';
import type { Store } from '../stores/store.js';
import { handshake } from '../mapping/webhook.js';
import { handleWebhook, replayQuarantined } from './webhook-flow.js';
import { TokenCache } from '../mapping/token-cache.js';
import type { Tracer } from './trace.js';
import { campaignReport } from './campaigns.js';
import { audit, registerOpsRoutes, replayIds } from './admin-ops.js';
import { registerConsole } from './console-route.js';
import { registerPlayground } from './playground.js';
import { heldSince } from './connection-bursts.js';
import { interceptors, request as undiciRequest } from 'undici';

export interface HostDeps {
  config: Config;
  registry: MappingRegistry;
  store: Store;
  client: BspClient;
  metrics: Metrics;
  logger: Logger;
  media: MediaLinks;
  /** Per-tenant in-flight limit on the messaging endpoint; shared through Redis in a fleet. Default: this process only. */
  limiter?: ConcurrencyLimiter;
  /** The tenants' bspRate; shared through Redis in a fleet. Default: this process only. */
  rate?: RateLimiter;
  /** Outbox depth etc. for /v1/admin/status; provided by the delivery worker. */
  queueStats?: () => Promise<Record<string, number>>;
  /** Admission to the messaging endpoint past capacity (started and closed by the host). */
  admission: Admission;
  /** Under --workers: /metrics and the admin status cover every worker. */
  cluster?: ClusterView;
  /** Message timelines (started and flushed by the host). */
  tracer: Tracer;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** performance.now() when the request reached wabridge: CleverTap's deadline counts from here. */
    arrivedAt: number;
    /** Holds an admission slot, given back once (whichever of the answer, the handler's end or an abort comes first). */
    admitted: boolean;
    /** The answer as wabridge_answer_seconds labels it ('success', '2001'-'2004', '429'); '' for none CleverTap reads as one. */
    answerLabel: string;
  }
}

const TOO_MANY = JSON.stringify({ message: 'Too many requests to process' });

type TenantParams = { Params: { tenant: string } };

/**
 * Whether `given` is `expected`, in a time that depends on `given`'s length alone: neither the place
 * of the first difference nor `expected`'s length shows. Credentials are checked on every message;
 * SHA-256 digests of both sides compared with timingSafeEqual (what this replaced) were 2 % of the
 * event loop at -c 1500.
 */
function equalText(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  let diff = given.length ^ expected.length;
  for (let i = 0; i < given.length; i++) diff |= given.charCodeAt(i) ^ expected.charCodeAt(i % expected.length);
  return diff === 0;
}

// A tenant's credential as clients send it, once per tenant configuration (a reload brings new objects).
const credentialHeaders = new WeakMap<TenantConfig['auth'], string>();

function credentialHeader(auth: TenantConfig['auth']): string {
  let h = credentialHeaders.get(auth);
  if (h === undefined) {
    h = 'basic' in auth ? `Basic ${Buffer.from(`${auth.basic.username}:${auth.basic.password}`, 'utf8').toString('base64')}` : auth.header.value;
    credentialHeaders.set(auth, h);
  }
  return h;
}

function authorized(req: FastifyRequest, tenant: TenantConfig): boolean {
  const auth = tenant.auth;
  if ('basic' in auth) {
    const h = req.headers.authorization;
    // The header as every HTTP client writes it; other spellings (any case of the scheme, which is
    // case-insensitive, padding left out, spaces) decoded.
    if (equalText(h, credentialHeader(auth))) return true;
    if (h === undefined || h.slice(0, 6).toLowerCase() !== 'basic ') return false;
    return equalText(Buffer.from(h.slice(6).trim(), 'base64').toString('utf8'), `${auth.basic.username}:${auth.basic.password}`);
  }
  const v = req.headers[auth.header.name.toLowerCase()];
  return equalText(Array.isArray(v) ? v[0] : v, credentialHeader(auth));
}

function headerRecord(req: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

export function buildServer(deps: HostDeps) {
  const { config, registry, store, metrics } = deps;
  const app = Fastify({
    loggerInstance: deps.logger,
    // The send and webhook flows log one line per request with what matters; fastify's own lines would double that.
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request (fastify's default, a visible cost per message): nothing logs
    // through req.log but the error handler, which names the request itself.
    childLoggerFactory: (logger) => logger,
    bodyLimit: config.server.bodyLimit,
    return503OnClosing: true,
    // Media tokens carry their claims; the default 100-character limit on a path parameter is too small.
    routerOptions: { maxParamLength: 2048 },
    forceCloseConnections: false,
    // The client address behind a load balancer; only the /c/ rate limit reads it.
    trustProxy: config.server.trustProxy,
  });
  const limiter = deps.limiter ?? new LocalConcurrencyLimiter();
  const admission = deps.admission;
  app.decorateRequest('arrivedAt', 0);
  app.decorateRequest('admitted', false);
  app.decorateRequest('answerLabel', '');
  const release = (req: FastifyRequest) => {
    if (!req.admitted) return;
    req.admitted = false;
    admission.leave();
  };
  // The contract's second as wabridge sees it: from arrival (the connection's accept for a held one)
  // to the answer handed to the socket, for every answer CleverTap reads as one (not 401s, 415s...).
  const answered = (req: FastifyRequest<TenantParams>) => {
    if (req.answerLabel !== '') metrics.answerTime.observe({ tenant: req.params.tenant, answer: req.answerLabel }, (performance.now() - req.arrivedAt) / 1000);
  };
  const shed = (req: FastifyRequest<TenantParams>, reply: FastifyReply) => {
    if (config.tenants.has(req.params.tenant)) {
      metrics.requests.inc({ tenant: req.params.tenant, answer: '429' });
      req.answerLabel = '429';
    }
    // Pre-serialized: past capacity this answer is the most frequent one and must cost next to nothing.
    return reply.code(429).header('content-type', 'application/json; charset=utf-8').header('retry-after', '1').send(TOO_MANY);
  };
  // Before the body is read: a shed request costs its headers and this answer, nothing more.
  const admit = async (req: FastifyRequest<TenantParams>, reply: FastifyReply) => {
    req.arrivedAt = heldSince(req.raw.socket) ?? performance.now();
    const slot = admission.enter(req.arrivedAt);
    if (slot === true || (slot !== false && (await slot))) {
      req.admitted = true;
      if (req.raw.destroyed) release(req);
      return;
    }
    return shed(req, reply);
  };
  const mediaDispatcher = deps.client.agent.compose(interceptors.redirect({ maxRedirections: 3 }));
  const tokens = new TokenCache((req) => deps.client.send(req, 10_000));
  const tracer = deps.tracer;
  // A 429 for the tenant's concurrency comes after the body was read: its msgId (found without parsing
  // the whole payload, as this is the busy path) puts it on the message's timeline and in its
  // campaign's answers. Admission's 429 comes before the body and cannot be attributed.
  const traceTooMany = (tenant: TenantConfig, mapping: { name: string; version: string }, body: string) => {
    const msgId = /"msgId"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(body)?.[1];
    if (msgId === undefined) return;
    tracer.record({ at: Date.now(), tenant: tenant.id, msgId, type: 'send', data: { mapping: mapping.name, mappingVersion: mapping.version, answer: { status: 'failure', error: { code: 429, message: 'Too many requests to process' } }, ms: 0 } });
  };
  const sendDeps = { store, tokens, client: deps.client, metrics, logger: deps.logger, correlationTtlMs: config.store.correlationTtlMs, lateWindowMs: 30_000, rate: deps.rate ?? new LocalRateLimiter(), tracer, lagMs: () => admission.lagNowMs(), commits: new RecentMax() };
  const webhookDeps = { store, metrics, logger: deps.logger, media: deps.media, tracer };

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: { statusCode?: number; code?: string; message: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err, reqId: req.id }, 'unhandled error');
    const message = err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? `body larger than ${config.server.bodyLimit} bytes` : status === 500 ? 'internal error' : err.message;
    void reply.code(status).send({ message, code: err.code ?? 'WAB_INTERNAL' });
  });
  app.setNotFoundHandler((req, reply) => void reply.code(404).send({ message: `no route ${req.method} ${req.url.split('?')[0]}`, code: 'WAB_NOT_FOUND' }));

  const tenantOf = (req: FastifyRequest<TenantParams>, reply: FastifyReply): TenantConfig | undefined => {
    const tenant = config.tenants.get(req.params.tenant);
    if (!tenant) void reply.code(404).send({ message: `unknown tenant '${req.params.tenant}'`, code: 'WAB_TENANT_UNKNOWN' });
    return tenant;
  };
  const mappingOf = (tenant: TenantConfig, reply: FastifyReply) => {
    const m = registry.get(tenant.provider);
    if (!m) void reply.code(503).send({ message: `mapping '${tenant.provider}' is not loaded`, code: 'WAB_MAPPING_NOT_FOUND' });
    return m;
  };

  const messaging = {
    onRequest: admit,
    onResponse: async (req: FastifyRequest<TenantParams>) => {
      answered(req);
      release(req);
    },
    onRequestAbort: async (req: FastifyRequest) => release(req),
  };
  app.post<TenantParams & { Body: string }>('/v1/tenants/:tenant/messages', messaging, async (req, reply) => {
    const tenant = tenantOf(req, reply);
    if (!tenant) return reply;
    if (!authorized(req, tenant)) return reply.code(401).send({ message: 'Invalid credentials', code: 'WAB_UNAUTHORIZED' });
    const type = req.headers['content-type'] ?? '';
    if (!type.toLowerCase().includes('json')) return reply.code(415).send({ message: `content-type must be application/json, got '${type || 'none'}'`, code: 'WAB_UNSUPPORTED_MEDIA_TYPE' });
    const mapping = mappingOf(tenant, reply);
    if (!mapping) return reply;
    if (!(await limiter.acquire(tenant.id, tenant.concurrency))) {
      metrics.requests.inc({ tenant: tenant.id, answer: '429' });
      req.answerLabel = '429';
      if (tracer.enabled) traceTooMany(tenant, mapping, typeof req.body === 'string' ? req.body : '');
      // Past the tenant's concurrency the client is past CleverTap's contract. Its 429 is held like
      // admission's (without the slot, which goes to the next request), so a client that retries at
      // once cannot turn the excess into a storm of 429s that starves the requests within the contract.
      release(req);
      const wait = admission.answerBy(req.arrivedAt) - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      return reply.code(429).send({ message: 'Too many requests to process' });
    }
    try {
      const out = await handleSend(sendDeps, tenant, mapping, typeof req.body === 'string' ? req.body : '', req.arrivedAt);
      req.answerLabel = codeOf(out.answer);
      return reply.code(out.httpStatus).send(out.answer);
    } finally {
      release(req);
      await limiter.release(tenant.id);
    }
  });

  app.get<TenantParams & { Querystring: Record<string, string> }>('/v1/tenants/:tenant/webhook', async (req, reply) => {
    const tenant = tenantOf(req, reply);
    if (!tenant) return reply;
    const mapping = mappingOf(tenant, reply);
    if (!mapping) return reply;
    const result = await handshake(mapping, { headers: headerRecord(req), query: req.query }, tenant.settings);
    if (!result) return reply.code(400).send({ message: `${mapping.name} does not recognise this GET as a webhook verification request`, code: 'WAB_NOT_A_HANDSHAKE' });
    return reply.code(result.status).type('text/plain').send(result.body);
  });

  app.post<TenantParams & { Body: string; Querystring: Record<string, string> }>('/v1/tenants/:tenant/webhook', async (req, reply) => {
    const tenant = tenantOf(req, reply);
    if (!tenant) return reply;
    const mapping = mappingOf(tenant, reply);
    if (!mapping) return reply;
    const url = `${config.server.publicUrl}${req.url}`;
    const out = await handleWebhook(webhookDeps, tenant, mapping, { url, headers: headerRecord(req), query: req.query, rawBody: typeof req.body === 'string' ? req.body : '' });
    return reply.code(out.httpStatus).send(out.body);
  });

  app.get<{ Params: { token: string } }>('/v1/media/:token', async (req, reply) => {
    const v = deps.media.verify(req.params.token);
    if (!v.ok) return reply.code(v.reason === 'media link expired' ? 410 : 403).send({ message: v.reason, code: 'WAB_MEDIA_LINK' });
    const tenant = config.tenants.get(v.ref.tenant);
    const mapping = tenant && registry.get(tenant.provider);
    if (!tenant || !mapping) return reply.code(404).send({ message: 'tenant or mapping no longer configured', code: 'WAB_MEDIA_LINK' });
    const token = await tokens.get(mapping, tenant.id, tenant.settings);
    const lookup = await planMediaLookup(mapping, v.ref.mediaId, tenant.settings, token);
    let lookupBody: unknown;
    if (lookup) {
      const r = await deps.client.send(lookup, 10_000);
      if (r.status < 200 || r.status >= 300) return reply.code(502).send({ message: `BSP media look-up answered HTTP ${r.status}`, code: 'WAB_MEDIA_UPSTREAM' });
      lookupBody = JSON.parse(r.text);
    }
    const download = await planMediaDownload(mapping, v.ref.mediaId, tenant.settings, lookupBody, token);
    // BSPs often answer a media URL with a redirect to signed storage; undici drops the
    // Authorization header when the redirect leaves the BSP's origin.
    const res = await undiciRequest(download.url, { method: 'GET', headers: download.headers, dispatcher: mediaDispatcher });
    if (res.statusCode < 200 || res.statusCode >= 300) {
      res.body.resume();
      return reply.code(502).send({ message: `BSP media download answered HTTP ${res.statusCode}`, code: 'WAB_MEDIA_UPSTREAM' });
    }
    const type = res.headers['content-type'];
    reply.header('content-type', (Array.isArray(type) ? type[0] : type) ?? v.ref.mimeType ?? 'application/octet-stream');
    const length = res.headers['content-length'];
    if (length) reply.header('content-length', String(length));
    return reply.send(res.body);
  });

  app.get('/c/:token', clickRoute({ store, publicUrl: () => config.server.publicUrl, limiter: new ClickRateLimiter(config.server.clickRate), metrics, logger: deps.logger }));

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const problems: string[] = [];
    try {
      await store.ping();
    } catch (e) {
      problems.push(`store: ${(e as Error).message}`);
    }
    for (const t of config.tenants.values()) if (!registry.get(t.provider)) problems.push(`mapping ${t.provider} (tenant ${t.id}) not loaded`);
    return problems.length === 0 ? { status: 'ready' } : reply.code(503).send({ status: 'not ready', problems });
  });
  app.get('/metrics', async (_req, reply) => {
    if (!deps.cluster) return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    const all = await deps.cluster.metrics();
    return reply.type(all.contentType).send(all.text);
  });

  const admin = async (req: FastifyRequest, reply: FastifyReply) => {
    const token = config.server.adminToken;
    if (!token) return reply.code(404).send({ message: 'admin API disabled (set server.adminToken)', code: 'WAB_NOT_FOUND' });
    const h = req.headers.authorization;
    if (!equalText(h?.startsWith('Bearer ') ? h.slice(7) : undefined, token)) return reply.code(401).send({ message: 'admin token required', code: 'WAB_UNAUTHORIZED' });
  };
  app.get('/v1/admin/status', { preHandler: admin }, async () => ({
    mappings: registry.list(),
    tenants: [...config.tenants.values()].map((t) => ({ id: t.id, provider: t.provider, inFlight: limiter.local(t.id), concurrency: t.concurrency })),
    admission: admission.snapshot(),
    ...(deps.cluster ? { workers: await deps.cluster.workers() } : {}),
    store: { kind: store.kind, ...(await store.stats()) },
    queues: deps.queueStats ? await deps.queueStats() : undefined,
    unmatched: await store.listUnmatched(20),
  }));
  registerPlayground(app, registry, admin);
  app.post('/v1/admin/reload', { preHandler: admin }, async (req) => {
    const results = await registry.reload();
    audit(deps.logger, req, 'reload', 'all', { results: results.map((r) => ({ name: r.name, ok: r.ok })) });
    return { results };
  });
  app.get<{ Querystring: { limit?: string; tenant?: string } }>('/v1/admin/dlq', { preHandler: admin }, async (req) => ({ dead: await store.listDead(Number(req.query.limit ?? 100), req.query.tenant) }));
  app.post<{ Body: string }>('/v1/admin/dlq/replay', { preHandler: admin }, async (req, reply) => {
    const asked = replayIds(req.body, 'dead-letter');
    if ('error' in asked) return reply.code(400).send({ message: asked.error, code: 'WAB_INPUT_INVALID' });
    const replayed = await store.replayDead(Date.now(), asked.ids);
    audit(deps.logger, req, 'dlq replay', asked.ids ?? 'all', { replayed });
    return { replayed };
  });
  app.get<{ Querystring: { limit?: string; tenant?: string } }>('/v1/admin/quarantine', { preHandler: admin }, async (req) => ({
    size: await store.quarantineSize(),
    quarantined: await store.listQuarantined(Math.min(Math.max(Math.trunc(Number(req.query.limit ?? 100)) || 100, 1), 1000), req.query.tenant),
  }));
  app.get<{ Params: { id: string } }>('/v1/admin/quarantine/:id', { preHandler: admin }, async (req, reply) => {
    const rec = await store.getQuarantined(req.params.id);
    return rec ?? reply.code(404).send({ message: `no quarantined webhook ${req.params.id}`, code: 'WAB_NOT_FOUND' });
  });
  // Re-maps with the mapping loaded in this process now (after a fixed one was hot-reloaded).
  app.post<{ Body: string }>('/v1/admin/quarantine/replay', { preHandler: admin }, async (req, reply) => {
    const asked = replayIds(req.body, 'quarantine');
    if ('error' in asked) return reply.code(400).send({ message: asked.error, code: 'WAB_INPUT_INVALID' });
    const results = await replayQuarantined(webhookDeps, config.tenants, (t) => registry.get(t.provider), asked.ids);
    const count = (o: string) => results.filter((r) => r.outcome === o).length;
    const answer = { replayed: count('replayed') + count('split'), failed: count('failed'), missing: count('missing'), skipped: count('skipped'), results, size: await store.quarantineSize() };
    audit(deps.logger, req, 'quarantine replay', asked.ids ?? 'all', { replayed: answer.replayed, failed: answer.failed, missing: answer.missing, skipped: answer.skipped, outcomes: results.map((r) => `${r.id} ${r.outcome}`) });
    return answer;
  });
  app.get<{ Params: { id: string }; Querystring: { limit?: string } }>('/v1/admin/trace/:id', { preHandler: admin }, async (req, reply) => {
    const limit = req.query.limit === undefined ? 1000 : Number(req.query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) return reply.code(400).send({ message: `limit must be an integer from 1 to 10000, got '${req.query.limit}'`, code: 'WAB_INPUT_INVALID' });
    const events = await store.readTrace(req.params.id, limit);
    if (events.length === 0) {
      const why = config.trace.keepMs === 0 ? 'tracing is off (trace.keep: 0s)' : `nothing known: not a msgId or BSP message id seen in the last ${config.trace.keepMs / 86_400_000} days, or removed by the size cap`;
      return reply.code(404).send({ message: `no trace for '${req.params.id}': ${why}`, code: 'WAB_NOT_FOUND' });
    }
    return { id: req.params.id, events };
  });
  const limitOf = (given: string | undefined, fallback: number, max: number): number | string => {
    const n = given === undefined ? fallback : Number(given);
    return Number.isInteger(n) && n >= 1 && n <= max ? n : `limit must be an integer from 1 to ${max}, got '${given}'`;
  };
  app.get<{ Querystring: { limit?: string } }>('/v1/admin/campaigns', { preHandler: admin }, async (req, reply) => {
    const limit = limitOf(req.query.limit, 100, 10_000);
    if (typeof limit === 'string') return reply.code(400).send({ message: limit, code: 'WAB_INPUT_INVALID' });
    return { campaigns: (await store.listCampaigns(limit)).map((c) => ({ ...c, lastActivity: new Date(c.lastActivity).toISOString() })) };
  });
  app.get<{ Params: { id: string }; Querystring: { batch?: string } }>('/v1/admin/campaigns/:id', { preHandler: admin }, async (req, reply) => {
    const report = await campaignReport(store, req.params.id, req.query.batch);
    if (Object.keys(report.tenants).length === 0) return reply.code(404).send({ message: `no trace of campaign '${req.params.id}'${req.query.batch !== undefined ? ` batch '${req.query.batch}'` : ''} in the last ${config.trace.keepMs / 86_400_000} days`, code: 'WAB_NOT_FOUND' });
    return report;
  });
  registerOpsRoutes(app, { config, registry, store, metrics, logger: deps.logger, ...(deps.cluster ? { cluster: deps.cluster } : {}) }, admin);
  registerConsole(app);
  return app;
}
