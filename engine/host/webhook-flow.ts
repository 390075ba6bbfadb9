// One BSP webhook, end to end: signature → events → msgIds → durable outbox. The BSP is acknowledged
// only after the store has everything, so a crash before that makes the BSP retry instead of losing data.
import type { Logger } from 'pino';
import type { TenantConfig } from './config.js';
import { WabError } from '../mapping/errors.js';
import { impliedCallbacks, incomingCallbackFor, statusCallbackFor, statusDedupeKey } from './callbacks.js';
import type { Mapping } from '../mapping/loader.js';
import type { MediaLinks } from './media-links.js';
import type { Metrics } from './metrics.js';
import type { NewCallback, NewPending, Store } from '../stores/store.js';
import { mapWebhook, verifySignature, type IncomingEvent, type WebhookRequest } from '../mapping/webhook.js';

export interface WebhookDeps {
  store: Store;
  metrics: Metrics;
  logger: Logger;
  media: MediaLinks;
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

export async function handleWebhook(deps: WebhookDeps, tenant: TenantConfig, mapping: Mapping, req: WebhookRequest, now = Date.now()): Promise<WebhookOutcome> {
  const verdict = await verifySignature(mapping, req, tenant.settings);
  if (!verdict.ok) {
    deps.metrics.webhooks.inc({ tenant: tenant.id, outcome: 'bad_signature' });
    deps.logger.warn({ tenant: tenant.id, reason: verdict.reason }, 'webhook signature rejected');
    return { httpStatus: 401, body: { message: `signature rejected: ${verdict.reason}` } };
  }
  let events;
  try {
    events = await mapWebhook(mapping, req, tenant.settings);
  } catch (e) {
    if (!(e instanceof WabError)) throw e;
    // Not acknowledged: the BSP retries, and a fixed mapping will then process what this one could not.
    deps.metrics.webhooks.inc({ tenant: tenant.id, outcome: 'unmappable' });
    deps.logger.error({ tenant: tenant.id, mapping: mapping.name, mappingVersion: mapping.version, code: e.code, err: e.message }, 'webhook not mapped');
    return { httpStatus: e.code === 'WAB_INPUT_INVALID' ? 400 : 422, body: { message: e.message, code: e.code } };
  }
  const callbacks: NewCallback[] = [];
  const pending: NewPending[] = [];
  for (const ev of events) {
    deps.metrics.events.inc({ tenant: tenant.id, event: ev.event === 'status' ? ev.status : 'incoming' });
    if (ev.event === 'status') {
      const msgId = ev.msgId ?? (ev.providerMessageId ? await deps.store.findMsgId(tenant.id, ev.providerMessageId) : undefined);
      if (msgId) callbacks.push(statusCallbackFor(tenant.id, msgId, ev, mapping.version));
      else if (ev.providerMessageId) pending.push({ tenant: tenant.id, providerMessageId: ev.providerMessageId, event: ev, dedupeKey: statusDedupeKey(tenant.id, ev, ev.providerMessageId), mappingVersion: mapping.version });
    } else {
      const contextMsgId = ev.replyTo ? await deps.store.findMsgId(tenant.id, ev.replyTo) : undefined;
      callbacks.push(incomingCallbackFor(tenant, withMediaLinks(tenant.id, ev, deps.media), contextMsgId, mapping.version));
    }
  }
  // A higher status that came first releases the lower ones it implies (BSPs do not keep order).
  callbacks.push(...impliedCallbacks(callbacks));
  const { accepted, duplicates, implied } = await deps.store.ingest({ callbacks, pending }, now);
  if (implied > 0) deps.metrics.implied.inc({ tenant: tenant.id }, implied);
  deps.metrics.webhooks.inc({ tenant: tenant.id, outcome: 'accepted' });
  deps.logger.info({ tenant: tenant.id, mapping: mapping.name, mappingVersion: mapping.version, events: events.length, accepted, duplicates, implied, held: pending.length }, 'webhook');
  return { httpStatus: 200, body: { received: events.length, accepted, duplicates } };
}
