// One CleverTap messaging request, end to end: canonical message → mapping → BSP call under the
// tenant's deadline → CleverTap answer, with the msgId ↔ BSP id pair stored before answering.
import type { Logger } from 'pino';
import { hotLine } from './logger.js';
import { TransportError, type BspClient } from './bsp-client.js';
import type { RateLimiter } from './concurrency.js';
import type { TenantConfig } from './config.js';
import { WabError } from '../mapping/errors.js';
import type { Mapping } from '../mapping/loader.js';
import type { Metrics } from './metrics.js';
import { toCanonical } from '../mapping/pipeline.js';
import { failure, mapResponse, mapTransportError, planSend, type Answer, type BspResponse, type HttpRequest } from '../mapping/send.js';
import type { Store, TraceEvent } from '../stores/store.js';
import type { TokenCache } from '../mapping/token-cache.js';
import type { CanonicalMessage } from '../clevertap/model.js';
import { trackLinks } from './click-tracking.js';
import { maskPhone } from './logger.js';
import type { RecentMax } from './recent-max.js';
import { safeHeaders, safeUrl, type Tracer } from './trace.js';

export interface SendDeps {
  store: Store;
  tokens: TokenCache;
  client: BspClient;
  metrics: Metrics;
  logger: Logger;
  correlationTtlMs: number;
  /** How long a BSP call may go on after CleverTap was answered, so a late success is still correlated. */
  lateWindowMs: number;
  /** The tenants' bspRate (fleet-wide with Redis); without it bspRate is not enforced. */
  rate?: RateLimiter;
  /** Where each message's timeline goes (docs/operations.md); absent: not traced. */
  tracer?: Tracer;
  /** How late the event loop runs now (ms); absent: not measured, taken as 0. */
  lagMs?: () => number;
  /** How long the correlation commit took lately; absent: not measured, taken as 0. */
  commits?: RecentMax;
}

/**
 * How long the BSP may take for a request that arrived at `started`. The tenant's deadline leaves
 * CleverTap's second a margin for reading the request, writing the answer and the network. While the
 * event loop runs late, the reading and the writing each take about the lag, so the BSP's share
 * shrinks by twice it (down to half the deadline): a 2004 decided at 900 ms and written 150 ms later
 * reached the client after its second. (Shrinking it only by what twice the lag takes past the 100 ms
 * margin, `npm start` at -c 3000 read a p99 of 1,107 ms, against 904-1,002 ms.) A success also waits
 * for its correlation's commit after the BSP answered, so the BSP's share shrinks by the recent
 * commit time too: under load that round trip to the store's thread took 100-450 ms, and successes
 * the BSP gave in time reached the client after its second.
 */
export function bspBudgetMs(deadlineMs: number, lagMs: number, commitMs = 0): number {
  return Math.round(Math.max(deadlineMs / 2, deadlineMs - 2 * lagMs - commitMs));
}

/** What the trace will keep of the BSP call: references now, redacted when the event is written. */
interface BspTrace {
  request: HttpRequest;
  status?: number;
  responseHeaders?: Record<string, string>;
  providerMessageId?: string;
  ms?: number;
  error?: string;
}

/**
 * The message's `send` trace event, handed to the tracer as a builder: the headers' redaction, the
 * URL's and the phone's masking and the event's objects cost nothing until the Tracer writes, after
 * CleverTap's answer was sent (the objects it reads are not changed after the answer).
 */
function traceSend(deps: SendDeps, tenant: TenantConfig, mapping: Mapping, message: CanonicalMessage, arrivedAt: number, answer: Answer, bsp: BspTrace | undefined): void {
  const tracer = deps.tracer;
  if (!tracer?.enabled) return;
  const ms = Math.round(performance.now() - arrivedAt);
  const at = Date.now() - ms;
  tracer.record(() => {
    const data: Record<string, unknown> = {
      to: maskPhone(message.to),
      messageType: message.type,
      campaignId: message.msgIdParts.campaignId,
      mapping: mapping.name,
      mappingVersion: mapping.version,
      answer,
      ms,
    };
    if (message.template) data.template = `${message.template.name} (${message.template.language})`;
    if (message.isValidation) data.validation = true;
    if (bsp) {
      const b: Record<string, unknown> = { method: bsp.request.method, url: safeUrl(bsp.request.url) };
      // The headers both ways only where something went wrong: they were ~60% of a send event's bytes,
      // and the trace's cost per event (serializing it to its thread, writing it) follows its size.
      if (answer.status !== 'success' || bsp.status === undefined || bsp.status >= 300) {
        b.headers = safeHeaders(bsp.request.headers);
        if (bsp.responseHeaders) b.responseHeaders = safeHeaders(bsp.responseHeaders);
      }
      if (bsp.status !== undefined) b.status = bsp.status;
      if (bsp.providerMessageId) b.providerMessageId = bsp.providerMessageId;
      if (bsp.ms !== undefined) b.ms = bsp.ms;
      if (bsp.error !== undefined) b.error = bsp.error;
      data.bsp = b;
    }
    const e: TraceEvent = { at, tenant: tenant.id, msgId: message.msgId, type: 'send', data };
    // Known already: the tracer need not parse the msgId again.
    if (message.msgIdParts.campaignId) e.campaignId = message.msgIdParts.campaignId;
    if (bsp?.providerMessageId) {
      e.providerMessageId = bsp.providerMessageId;
      e.correlated = true; // saved before the answer
    }
    return e;
  });
}

export interface SendOutcome {
  /** HTTP status for CleverTap: 200 for every answer CleverTap should read, 400/422 for unreadable payloads. */
  httpStatus: number;
  answer: Answer;
}

const DEADLINE = Symbol('deadline');

/** The call's outcome, or DEADLINE when it takes longer than `ms` (the call goes on). */
function within<T>(call: Promise<T>, ms: number): Promise<{ r: T } | { e: unknown } | typeof DEADLINE> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms, DEADLINE);
    call.then(
      (r) => {
        clearTimeout(timer);
        resolve({ r });
      },
      (e: unknown) => {
        clearTimeout(timer);
        resolve({ e });
      },
    );
  });
}

// One child logger per tenant and mapping version: pino serializes a child's bindings once, where the
// same fields in each line's object were serialized again for every message (about a fifth of the
// bytes a message's log line allocated). Keyed by the root logger, as hosts in one process have their
// own; a reloaded mapping replaces its tenants' entries.
const messageLoggers = new WeakMap<Logger, WeakMap<TenantConfig, { mapping: Mapping; log: Logger }>>();

function messageLogger(root: Logger, tenant: TenantConfig, mapping: Mapping): Logger {
  let byTenant = messageLoggers.get(root);
  if (!byTenant) messageLoggers.set(root, (byTenant = new WeakMap()));
  const cached = byTenant.get(tenant);
  if (cached?.mapping === mapping) return cached.log;
  const log = root.child({ tenant: tenant.id, mapping: mapping.name, mappingVersion: mapping.version });
  byTenant.set(tenant, { mapping, log });
  return log;
}

// The line every message leaves in the log (written straight to bytes: see hotLine).
const messageLine = hotLine(['msgId', 'campaignId', 'to', 'providerMessageId', 'answer', 'bspMs', 'ms'], 'message');

/** An answer as the metrics label it: 'success', or its failure code. */
export function codeOf(a: Answer): string {
  return a.status === 'success' ? 'success' : String(a.error.code);
}

/** `arrivedAt`: performance.now() when the request reached the host; the tenant's deadline counts from there. */
export async function handleSend(deps: SendDeps, tenant: TenantConfig, mapping: Mapping, bodyText: string, arrivedAt = performance.now()): Promise<SendOutcome> {
  const started = arrivedAt;
  const budgetMs = bspBudgetMs(tenant.deadlineMs, deps.lagMs?.() ?? 0, deps.commits?.value() ?? 0);
  const canonical = toCanonical(bodyText);
  if (!canonical.ok) {
    // Unreadable JSON is a transport-level problem (400); a payload we read but cannot send gets the
    // CleverTap code its problem deserves, on HTTP 200 when CleverTap can count it (2001/2002).
    const httpStatus = canonical.reason === 'json' ? 400 : canonical.answer.status === 'failure' && canonical.answer.error.code === 2004 ? 422 : 200;
    deps.metrics.requests.inc({ tenant: tenant.id, answer: codeOf(canonical.answer) });
    deps.logger.info({ tenant: tenant.id, answer: codeOf(canonical.answer), reason: canonical.reason, detail: canonical.answer.status === 'failure' ? canonical.answer.error.message : undefined }, 'message refused');
    return { httpStatus, answer: canonical.answer };
  }
  const message = canonical.message;
  const logger = messageLogger(deps.logger, tenant, mapping);
  const log = { msgId: message.msgId, campaignId: message.msgIdParts.campaignId, to: message.to };
  let answer: Answer;
  let providerMessageId: string | undefined;
  let bspMs: number | undefined;
  let bsp: BspTrace | undefined;
  try {
    // Tracked buttons carry a token instead of their suffix, for every mapping alike (click-tracking.ts).
    let sendable = message;
    let refused: Answer | undefined;
    if (tenant.clickTracking) {
      const tracked = await trackLinks(deps.store, tenant, message, logger);
      if ('answer' in tracked) refused = tracked.answer;
      else sendable = tracked.message;
    }
    const token = refused ? undefined : await deps.tokens.get(mapping, tenant.id, tenant.settings);
    const plan = refused ? ({ kind: 'answer', answer: refused } as const) : await planSend(mapping, sendable, tenant.settings, token);
    if (plan.kind === 'answer') {
      answer = plan.answer;
    } else if (tenant.bspRate !== undefined && deps.rate && !(await deps.rate.take(tenant.id, tenant.bspRate, budgetMs - (performance.now() - started)))) {
      // Over the rate, and the next free second comes after the deadline: CleverTap retries later.
      answer = failure(2004, `BSP rate limit of ${tenant.bspRate}/s reached`);
      deps.metrics.rateLimited.inc({ tenant: tenant.id });
    } else {
      const remaining = Math.max(1, budgetMs - (performance.now() - started));
      const t0 = performance.now();
      const call = deps.client.send(plan.request, Math.ceil(remaining + deps.lateWindowMs));
      if (deps.tracer?.enabled) bsp = { request: plan.request };
      const first = await within(call, Math.ceil(remaining));
      if (first === DEADLINE) {
        answer = failure(2004, `BSP did not answer within ${budgetMs} ms`);
        void correlateLate(deps, tenant, mapping, message, call);
      } else {
        bspMs = performance.now() - t0;
        if (bsp) {
          bsp.ms = Math.round(bspMs);
          if ('e' in first) bsp.error = (first.e as Error).message;
          else {
            bsp.status = first.r.status;
            bsp.responseHeaders = first.r.headers;
          }
        }
        deps.metrics.bspLatency.observe({ tenant: tenant.id, provider: mapping.name }, bspMs / 1000);
        if ('e' in first) {
          if (!(first.e instanceof TransportError)) throw first.e;
          answer = await mapTransportError(mapping, message, tenant.settings, first.e.failure);
        } else {
          // A refused token is dropped so the next message fetches a fresh one (it may have been revoked).
          if (first.r.status === 401 && token !== undefined) deps.tokens.invalidate(mapping, tenant.id);
          const mapped = await mapResponse(mapping, message, tenant.settings, first.r);
          answer = mapped.answer;
          providerMessageId = mapped.providerMessageId;
          if (bsp && providerMessageId) bsp.providerMessageId = providerMessageId;
          // Stored before CleverTap hears "success": a status webhook may already be on its way.
          if (providerMessageId) {
            const c0 = performance.now();
            await deps.store.saveCorrelation(tenant.id, providerMessageId, message.msgId, deps.correlationTtlMs);
            deps.commits?.note(performance.now() - c0);
          }
        }
      }
    }
  } catch (e) {
    if (e instanceof TransportError) {
      // Only the token fetch gets here: the BSP call's own failures are mapped above.
      answer = failure(2004, `could not obtain an access token: ${e.message}`);
      logger.error({ ...log, err: e.message }, 'token fetch failed');
      deps.metrics.requests.inc({ tenant: tenant.id, answer: codeOf(answer) });
      traceSend(deps, tenant, mapping, message, started, answer, bsp);
      return { httpStatus: 200, answer };
    }
    if (!(e instanceof WabError)) throw e;
    if (e.code === 'WAB_TOKEN') {
      answer = failure(/HTTP 40[13]/.test(e.message) ? 2000 : 2004, `could not obtain an access token: ${e.message}`);
      logger.error({ ...log, code: e.code, err: e.message }, 'token fetch failed');
      deps.metrics.requests.inc({ tenant: tenant.id, answer: codeOf(answer) });
      traceSend(deps, tenant, mapping, message, started, answer, bsp);
      return { httpStatus: 200, answer };
    }
    logger.error({ ...log, code: e.code, err: e.message }, 'mapping failed');
    answer = failure(2004, `wabridge could not map this message (${e.code}): ${e.where ? e.message.slice(e.where.length + 2) : e.message}`);
  }
  deps.metrics.requests.inc({ tenant: tenant.id, answer: codeOf(answer) });
  messageLine(logger, [log.msgId, log.campaignId, log.to, providerMessageId, codeOf(answer), bspMs === undefined ? undefined : Math.round(bspMs), Math.round(performance.now() - started)]);
  traceSend(deps, tenant, mapping, message, started, answer, bsp);
  return { httpStatus: 200, answer };
}

/** CleverTap was told 2004, but the BSP may still accept: record the pair so its statuses are not ghosts. */
async function correlateLate(deps: SendDeps, tenant: TenantConfig, mapping: Mapping, message: CanonicalMessage, call: Promise<BspResponse>): Promise<void> {
  try {
    const r = await call;
    const mapped = await mapResponse(mapping, message, tenant.settings, r);
    if (mapped.answer.status === 'success' && mapped.providerMessageId) {
      await deps.store.saveCorrelation(tenant.id, mapped.providerMessageId, message.msgId, deps.correlationTtlMs);
      deps.metrics.lateSuccess.inc({ tenant: tenant.id });
      deps.tracer?.record({ at: Date.now(), tenant: tenant.id, msgId: message.msgId, providerMessageId: mapped.providerMessageId, type: 'late', data: { status: r.status }, correlated: true });
      deps.logger.warn({ tenant: tenant.id, msgId: message.msgId, providerMessageId: mapped.providerMessageId }, 'BSP accepted after the deadline; correlated anyway');
    }
  } catch (e) {
    deps.logger.info({ tenant: tenant.id, msgId: message.msgId, err: (e as Error).message }, 'late BSP call ended without success');
  }
}
