// One BSP webhook, end to end: signature → events → msgIds → durable outbox. The BSP is acknowledged
// only after the store has everything, so a crash before that makes the BSP retry instead of losing data.
// What the mapping cannot map (an authenticated webhook only) is acknowledged too, once it is in the
// quarantine: a BSP's retries would not fix a mapping, and some BSPs disable a webhook that keeps
// failing. A fixed mapping replays it (replayQuarantined, docs/operations.md).
import type { Logger } from 'pino';
import type { TenantConfig } from './config.js';
import { WabError } from '../mapping/errors.js';
import { impliedCallbacks, incomingCallbackFor, statusCallbackFor, statusDedupeKey } from './callbacks.js';
import type { Mapping } from '../mapping/loader.js';
import type { MediaLinks } from './media-links.js';
import type { Metrics } from './metrics.js';
import { CHAIN_TOP, statusRank, type NewCallback, type NewPending, type NewQuarantined, type QuarantineRecord, type StatusEntry, type Store, type TraceEvent } from '../stores/store.js';
import { maskPhone } from './logger.js';
import { REDACTED, safeHeaders, type Tracer } from './trace.js';
import { mapWebhook, splitWebhook, verifySignature, type IncomingEvent, type WebhookEvent, type WebhookRequest } from '../mapping/webhook.js';
import { lowerCaseKeys } from '../mapping/send.js';

export interface WebhookDeps {
  store: Store;
  metrics: Metrics;
  logger: Logger;
  media: MediaLinks;
  tracer?: Tracer;
}

export interface WebhookOutcome {
  httpStatus: number;
  body: Record<string, unknown>;
}

const MEDIA_KINDS = ['image', 'video', 'audio', 'file'] as const;

/** Swaps BSP media ids for signed links to this service, so CleverTap gets a fetchable mediaURL. */
function withMediaLinks(tenant: string, event: IncomingEvent, media: MediaLinks): IncomingEvent {
  const msg = { ...event.message };
  for (const kind of MEDIA_KINDS) {
    const m = msg[kind] as { mediaId?: string; mediaURL?: string; mimeType?: string } | undefined;
    if (m?.mediaId && !m.mediaURL) {
      const { mediaId, ...rest } = m;
      msg[kind] = { ...rest, mediaURL: media.url({ tenant, mediaId, mimeType: m.mimeType }) };
    }
  }
  return { ...event, message: msg };
}

/** The headers with the mapping's signature header and every credential-bearing one redacted (as a trace keeps them). */
export function headersWithoutSecrets(mapping: Mapping, headers: Record<string, string>): Record<string, string> {
  const out = safeHeaders(lowerCaseKeys(headers));
  const sig = mapping.webhook?.signature?.header.toLowerCase();
  if (sig !== undefined && sig in out) out[sig] = REDACTED;
  return out;
}

interface Unmapped {
  request: WebhookRequest;
  part?: { index: number; of: number };
  error: WabError;
}

/**
 * The webhook's events, and what could not be mapped. When `webhook.events` fails on the whole body
 * and the mapping declares `webhook.split`, each piece is mapped alone: one bad item no longer holds
 * back the good ones of its batch. When no piece maps, or the body does not split, the whole body is
 * what is kept (the BSP's own bytes). WAB_INPUT_INVALID (a body that is not JSON) is thrown: it is a
 * bad request, not a mapping to fix.
 */
export async function mapOrSplit(mapping: Mapping, req: WebhookRequest, settings: Record<string, unknown>): Promise<{ events: WebhookEvent[]; unmapped: Unmapped[] }> {
  let whole: WabError;
  try {
    return { events: await mapWebhook(mapping, req, settings), unmapped: [] };
  } catch (e) {
    if (!(e instanceof WabError) || e.code === 'WAB_INPUT_INVALID') throw e;
    whole = e;
  }
  let pieces: WebhookRequest[] | undefined;
  try {
    pieces = await splitWebhook(mapping, req, settings);
  } catch (e) {
    if (!(e instanceof WabError)) throw e;
  }
  if (!pieces || pieces.length < 2) return { events: [], unmapped: [{ request: req, error: whole }] };
  const events: WebhookEvent[] = [];
  const unmapped: Unmapped[] = [];
  for (const [index, piece] of pieces.entries()) {
    try {
      events.push(...(await mapWebhook(mapping, piece, settings)));
    } catch (e) {
      if (!(e instanceof WabError)) throw e;
      unmapped.push({ request: piece, part: { index, of: pieces.length }, error: e });
    }
  }
  if (unmapped.length === pieces.length) return { events: [], unmapped: [{ request: req, error: whole }] };
  return { events, unmapped };
}

function quarantineEntry(tenant: string, mapping: Mapping, u: Unmapped): NewQuarantined {
  const { url, query, rawBody } = u.request;
  const e = u.error;
  return {
    tenant,
    mapping: mapping.name,
    mappingVersion: mapping.version,
    request: { url, query, rawBody, headers: headersWithoutSecrets(mapping, u.request.headers) },
    ...(u.part ? { part: u.part } : {}),
    error: { code: e.code, message: e.where ? e.message.slice(e.where.length + 2) : e.message, ...(e.where ? { where: e.where } : {}) },
  };
}

/**
 * The msgIds of every BSP id the events need (statuses the mapping did not give one, the messages
 * replies answer), in one store call for the whole webhook: a batch of statuses must not cost a
 * round trip each.
 */
async function correlated(store: Store, tenant: string, events: readonly WebhookEvent[]): Promise<Map<string, string>> {
  const wanted = new Set<string>();
  for (const ev of events) {
    const id = ev.event === 'status' ? (ev.msgId === undefined ? ev.providerMessageId : undefined) : ev.replyTo;
    if (id) wanted.add(id);
  }
  const out = new Map<string, string>();
  if (wanted.size === 0) return out;
  const ids = [...wanted];
  const found = await store.findMsgIds(tenant, ids);
  ids.forEach((id, i) => {
    const msgId = found[i];
    if (typeof msgId === 'string') out.set(id, msgId);
  });
  return out;
}

/** Events → callbacks and pending look-ups, durably in the store. */
async function ingestEvents(deps: WebhookDeps, tenant: TenantConfig, mapping: Mapping, events: readonly WebhookEvent[], now: number) {
  const callbacks: NewCallback[] = [];
  const pending: NewPending[] = [];
  const tracing = deps.tracer?.enabled === true;
  const traces: TraceEvent[] = [];
  const msgIdOf = await correlated(deps.store, tenant.id, events);
  for (const ev of events) {
    deps.metrics.events.inc({ tenant: tenant.id, event: ev.event === 'status' ? ev.status : 'incoming' });
    if (ev.event === 'status') {
      const msgId = ev.msgId ?? (ev.providerMessageId ? msgIdOf.get(ev.providerMessageId) : undefined);
      if (msgId) callbacks.push(statusCallbackFor(tenant.id, msgId, ev, mapping.version));
      else if (ev.providerMessageId) pending.push({ tenant: tenant.id, providerMessageId: ev.providerMessageId, event: ev, dedupeKey: statusDedupeKey(tenant.id, ev, ev.providerMessageId), mappingVersion: mapping.version });
      if (tracing && (msgId || ev.providerMessageId)) {
        const data: Record<string, unknown> = { status: ev.status, mappingVersion: mapping.version };
        if (!msgId) data.held = true;
        if (ev.timestamp !== undefined) data.timestamp = ev.timestamp;
        if (ev.error) data.error = ev.error;
        const t: TraceEvent = { at: now, tenant: tenant.id, type: 'status', data };
        if (msgId) t.msgId = msgId;
        if (ev.providerMessageId) t.providerMessageId = ev.providerMessageId;
        if (msgId && ev.msgId === undefined) t.correlated = true; // found by its BSP id
        traces.push(t);
      }
    } else {
      const contextMsgId = ev.replyTo ? msgIdOf.get(ev.replyTo) : undefined;
      callbacks.push(incomingCallbackFor(tenant, withMediaLinks(tenant.id, ev, deps.media), contextMsgId, mapping.version));
      if (tracing && (contextMsgId || ev.providerMessageId)) {
        const data: Record<string, unknown> = { messageType: ev.message.type, from: maskPhone(ev.message.from), mappingVersion: mapping.version };
        if (ev.replyTo) data.replyTo = ev.replyTo;
        const t: TraceEvent = { at: now, tenant: tenant.id, type: 'incoming', data };
        if (contextMsgId) t.msgId = contextMsgId;
        if (ev.providerMessageId) t.providerMessageId = ev.providerMessageId;
        traces.push(t);
      }
    }
  }
  // A higher status that came first releases the lower ones it implies (BSPs do not keep order).
  const impliedOnes = impliedCallbacks(callbacks);
  callbacks.push(...impliedOnes);
  const result = await deps.store.ingest({ callbacks, pending }, now);
  if (result.implied > 0) deps.metrics.implied.inc({ tenant: tenant.id }, result.implied);
  if (tracing) {
    // Offered with the status that implied them; the store adds only ranks its msgId did not have yet,
    // and the callback attempts in the timeline show which went.
    for (const c of impliedOnes) {
      // The highest chain status of its msgId in this webhook is the one that implies it.
      let t: TraceEvent | undefined;
      for (const x of traces) if (x.type === 'status' && x.msgId === c.msgId && statusRank(x.data.status as string) <= CHAIN_TOP && statusRank(x.data.status as string) > statusRank((t?.data.status as string | undefined) ?? '')) t = x;
      if (t) ((t.data.implies ??= []) as string[]).push((c.payload as StatusEntry).status);
    }
    for (const t of traces) {
      t.data.webhook = { events: events.length, accepted: result.accepted, duplicates: result.duplicates };
      deps.tracer!.record(t);
    }
  }
  return { ...result, held: pending.length };
}

/** The gauge is also refreshed with the other store gauges (host.ts); here it follows a change at once. */
async function refreshSize(deps: WebhookDeps): Promise<void> {
  deps.metrics.quarantineSize.set(await deps.store.quarantineSize());
}

/** Keeps what did not map; resolves once it is durable. */
async function quarantine(deps: WebhookDeps, tenant: TenantConfig, mapping: Mapping, unmapped: readonly Unmapped[], now: number): Promise<string[]> {
  if (unmapped.length === 0) return [];
  const ids = await deps.store.addQuarantined(
    unmapped.map((u) => quarantineEntry(tenant.id, mapping, u)),
    now,
  );
  deps.metrics.quarantined.inc({ tenant: tenant.id }, ids.length);
  await refreshSize(deps);
  for (const [i, u] of unmapped.entries()) {
    deps.logger.error({ tenant: tenant.id, mapping: mapping.name, mappingVersion: mapping.version, quarantineId: ids[i], part: u.part, code: u.error.code, err: u.error.message }, 'webhook not mapped: quarantined');
  }
  return ids;
}

export async function handleWebhook(deps: WebhookDeps, tenant: TenantConfig, mapping: Mapping, req: WebhookRequest, now = Date.now()): Promise<WebhookOutcome> {
  const verdict = await verifySignature(mapping, req, tenant.settings);
  if (!verdict.ok) {
    deps.metrics.webhooks.inc({ tenant: tenant.id, outcome: 'bad_signature' });
    deps.logger.warn({ tenant: tenant.id, reason: verdict.reason }, 'webhook signature rejected');
    return { httpStatus: 401, body: { message: `signature rejected: ${verdict.reason}` } };
  }
  let mapped;
  try {
    mapped = await mapOrSplit(mapping, req, tenant.settings);
  } catch (e) {
    if (!(e instanceof WabError)) throw e;
    deps.metrics.webhooks.inc({ tenant: tenant.id, outcome: 'bad_request' });
    deps.logger.error({ tenant: tenant.id, mapping: mapping.name, mappingVersion: mapping.version, code: e.code, err: e.message }, 'webhook body unreadable');
    return { httpStatus: e.status, body: { message: e.message, code: e.code } };
  }
  const { events, unmapped } = mapped;
  // The events first: a crash between the two writes makes the BSP retry, and its events are then duplicates.
  const { accepted, duplicates, implied, held } = await ingestEvents(deps, tenant, mapping, events, now);
  const ids = await quarantine(deps, tenant, mapping, unmapped, now);
  deps.metrics.webhooks.inc({ tenant: tenant.id, outcome: ids.length > 0 ? 'quarantined' : 'accepted' });
  deps.logger.info({ tenant: tenant.id, mapping: mapping.name, mappingVersion: mapping.version, events: events.length, accepted, duplicates, implied, held, quarantined: ids.length }, 'webhook');
  const body: Record<string, unknown> = { received: events.length, accepted, duplicates };
  if (ids.length > 0) {
    body.quarantined = ids;
    const what = unmapped[0]!.part ? `${ids.length} of its ${unmapped[0]!.part.of} items` : 'it';
    body.message = `${mapping.name} could not map ${what} (${unmapped[0]!.error.code}): kept in quarantine for a replay once the mapping is fixed`;
  }
  return { httpStatus: 200, body };
}

export interface ReplayResult {
  id: string;
  /** replayed: mapped and delivered, gone from the quarantine; failed: still not mapped, kept with the new error; split: part of it mapped, the rest kept as new entries; missing: no such entry; skipped: its tenant or mapping is gone. */
  outcome: 'replayed' | 'failed' | 'split' | 'missing' | 'skipped';
  accepted?: number;
  duplicates?: number;
  error?: QuarantineRecord['error'];
  /** split: the entries that replace it. */
  quarantined?: string[];
  reason?: string;
}

/**
 * Maps quarantined webhooks again with the mapping loaded now and delivers them as a webhook would be
 * (no signature check: it was checked when the webhook arrived, and the header is not kept).
 */
export async function replayQuarantined(deps: WebhookDeps, tenants: ReadonlyMap<string, TenantConfig>, mappingFor: (tenant: TenantConfig) => Mapping | undefined, ids: readonly string[] | undefined, now = Date.now()): Promise<ReplayResult[]> {
  const records = ids === undefined ? await deps.store.listQuarantined(1000) : await Promise.all(ids.map((id) => deps.store.getQuarantined(id)));
  const results: ReplayResult[] = [];
  for (const [i, rec] of records.entries()) {
    if (!rec) {
      results.push({ id: ids![i]!, outcome: 'missing' });
      continue;
    }
    const tenant = tenants.get(rec.tenant);
    const mapping = tenant && mappingFor(tenant);
    if (!tenant || !mapping) {
      results.push({ id: rec.id, outcome: 'skipped', reason: tenant ? `mapping '${tenant.provider}' is not loaded` : `tenant '${rec.tenant}' is no longer configured` });
      continue;
    }
    let mapped: Awaited<ReturnType<typeof mapOrSplit>>;
    try {
      mapped = await mapOrSplit(mapping, rec.request, tenant.settings);
    } catch (e) {
      if (!(e instanceof WabError)) throw e;
      mapped = { events: [], unmapped: [{ request: rec.request, error: e }] };
    }
    const whole = mapped.unmapped.length === 1 && !mapped.unmapped[0]!.part;
    if (whole) {
      const { error } = quarantineEntry(tenant.id, mapping, mapped.unmapped[0]!);
      await deps.store.requarantine(rec.id, error, mapping.version, now);
      deps.logger.warn({ tenant: tenant.id, mapping: mapping.name, mappingVersion: mapping.version, quarantineId: rec.id, code: error.code, err: error.message }, 'quarantined webhook still not mapped');
      results.push({ id: rec.id, outcome: 'failed', error });
      continue;
    }
    const { accepted, duplicates } = await ingestEvents(deps, tenant, mapping, mapped.events, now);
    // The leftovers are kept before the entry goes: a crash in between leaves both, and replaying both is harmless (duplicates).
    const again = await quarantine(deps, tenant, mapping, mapped.unmapped, now);
    const removed = await deps.store.removeQuarantined([rec.id]);
    if (removed > 0) await refreshSize(deps);
    deps.logger.info({ tenant: tenant.id, mapping: mapping.name, mappingVersion: mapping.version, quarantineId: rec.id, events: mapped.events.length, accepted, duplicates, quarantined: again.length }, 'quarantined webhook replayed');
    results.push(again.length > 0 ? { id: rec.id, outcome: 'split', accepted, duplicates, quarantined: again } : { id: rec.id, outcome: 'replayed', accepted, duplicates });
  }
  return results;
}
