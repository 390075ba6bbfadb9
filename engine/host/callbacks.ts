// Webhook events → CleverTap callbacks as the outbox stores them: the exact bodies of
// schemas/clevertap/status-callback.schema.json (one entry) and incoming-callback.schema.json, plus
// the order rank and dedupe key. Shared by the webhook flow and the pending resolver so a status
// correlated late is byte-for-byte what it would have been on time.
import { createHash } from 'node:crypto';
import { CHAIN_TOP, statusRank, type NewCallback, type StatusEntry } from '../stores/store.js';
import type { IncomingEvent, StatusEvent } from '../mapping/webhook.js';
import type { TenantConfig } from './config.js';

/** Same webhook retried by the BSP = same key. */
export function statusDedupeKey(tenant: string, event: Pick<StatusEvent, 'providerMessageId' | 'status' | 'url' | 'shortUrl'>, msgId: string): string {
  const base = `${tenant}|${event.providerMessageId ?? msgId}|${event.status}`;
  // Two different links clicked in one message are two clicks; the same link reported twice is one.
  return event.status === 'clicked' ? `${base}|${event.url ?? event.shortUrl ?? ''}` : base;
}

export function statusCallbackFor(tenant: string, msgId: string, event: StatusEvent, mappingVersion?: string): NewCallback {
  const status: StatusEntry['status'] = event.status === 'clicked' ? 'Clicked' : event.status;
  const entry: StatusEntry = { msgId, status };
  // CleverTap requires a timestamp on sent/delivered/read/failed; a BSP that gives none gets the time
  // the event is turned into a callback (epoch seconds, as a string).
  if (event.timestamp !== undefined) entry.timestamp = event.timestamp;
  else if (status !== 'Clicked') entry.timestamp = String(Math.floor(Date.now() / 1000));
  if (status === 'failed') entry.error = event.error ?? { code: 1009, title: 'Other' };
  if (status === 'Clicked') {
    // CleverTap's click entry names url, shortUrl and userAgent; a BSP often has only one of the URLs.
    const url = event.url ?? event.shortUrl;
    const shortUrl = event.shortUrl ?? event.url;
    if (url !== undefined) entry.url = url;
    if (shortUrl !== undefined) entry.shortUrl = shortUrl;
    entry.userAgent = event.userAgent ?? '';
  }
  const cb: NewCallback = { tenant, kind: 'status', msgId, rank: statusRank(event.status), payload: entry, dedupeKey: statusDedupeKey(tenant, event, msgId) };
  if (mappingVersion !== undefined) cb.mappingVersion = mappingVersion;
  return cb;
}

const CHAIN: readonly StatusEntry['status'][] = ['sent', 'delivered', 'read'];

/** The chain statuses below `status` (read → sent, delivered; failed, clicked and sent → none): what it implies. */
export function impliedBy(status: string): StatusEntry['status'][] {
  const rank = statusRank(status);
  return rank > 1 && rank <= CHAIN_TOP ? CHAIN.slice(0, rank - 1) : [];
}

/**
 * What real status callbacks imply: per msgId, each chain rank below its highest that none of them
 * has (read ⇒ delivered ⇒ sent), marked implied and stamped with the nearest higher one's timestamp.
 * The store adds one only where its msgId does not already have that rank. `failed` and clicks
 * imply nothing (docs/operations.md says why).
 */
export function impliedCallbacks(callbacks: readonly NewCallback[]): NewCallback[] {
  const byMsgId = new Map<string, Map<number, NewCallback>>();
  for (const c of callbacks) {
    if (c.implied || c.kind !== 'status' || c.msgId === undefined || c.rank < 1 || c.rank > CHAIN_TOP) continue;
    const key = JSON.stringify([c.tenant, c.msgId]);
    const ranks = byMsgId.get(key) ?? new Map<number, NewCallback>();
    if (!ranks.has(c.rank)) ranks.set(c.rank, c);
    byMsgId.set(key, ranks);
  }
  const out: NewCallback[] = [];
  for (const ranks of byMsgId.values()) {
    let above: NewCallback | undefined;
    for (let rank = CHAIN_TOP; rank >= 1; rank--) {
      const real = ranks.get(rank);
      if (real) above = real;
      if (real || !above) continue;
      const status = CHAIN[rank - 1]!;
      const from = above.payload as StatusEntry;
      const payload: StatusEntry = { msgId: from.msgId, status };
      if (from.timestamp !== undefined) payload.timestamp = from.timestamp;
      // The key the real status will come with (the store does not dedupe implied ones by it).
      const dedupeKey = `${above.dedupeKey.slice(0, above.dedupeKey.lastIndexOf('|') + 1)}${status}`;
      const cb: NewCallback = { tenant: above.tenant, kind: 'status', msgId: above.msgId, rank, payload, dedupeKey, implied: true };
      if (above.mappingVersion !== undefined) cb.mappingVersion = above.mappingVersion;
      out.push(cb);
    }
  }
  return out;
}

type Media = { mediaURL?: string; mediaId?: string; mimeType?: string; caption?: string; filename?: string };

/** Keeps only the keys CleverTap's incoming schema allows for the typed object (drops mediaId etc.). */
function typedObject(type: string, value: unknown): Record<string, unknown> {
  const v = (value ?? {}) as Record<string, unknown>;
  const pick = (...keys: string[]) => Object.fromEntries(keys.filter((k) => v[k] !== undefined).map((k) => [k, v[k]]));
  switch (type) {
    case 'text':
      return pick('body');
    case 'location':
      return pick('latitude', 'longitude', 'name', 'address', 'url');
    case 'button':
      // CleverTap requires payload; a quick reply without one is identified by its text.
      return { payload: v.payload ?? v.text, text: v.text };
    default: {
      const m = v as Media;
      const out: Record<string, unknown> = { mediaURL: m.mediaURL, mimeType: m.mimeType ?? 'application/octet-stream' };
      if (type !== 'audio' && m.caption !== undefined) out.caption = m.caption;
      if (type === 'file' && m.filename !== undefined) out.filename = m.filename;
      return out;
    }
  }
}

/**
 * CleverTap's incoming callback for one inbound message. `contextId` is the CleverTap msgId of the
 * message the user answered (the event's replyTo, resolved through the correlations), when known.
 * Media must already carry a mediaURL CleverTap can fetch.
 */
export function incomingCallbackFor(tenant: Pick<TenantConfig, 'id' | 'incomingAudioType'>, event: IncomingEvent, contextId?: string, mappingVersion?: string): NewCallback {
  const m = event.message;
  const body: Record<string, unknown> = {
    payloadVersion: '0.1',
    from: m.from,
    // CleverTap wants bare digits; BSPs often send "+91…".
    wabaNumber: (m.wabaNumber ?? '').replace(/[^0-9]/g, ''),
    timestamp: m.timestamp,
    // Only the type is respelled: the doc has no "voice" object, its audio object is keyed "audio".
    type: m.type === 'audio' ? tenant.incomingAudioType : m.type,
  };
  if (contextId !== undefined) body.context = { id: contextId };
  body[m.type] = typedObject(m.type, m[m.type]);
  const cb: NewCallback = { tenant: tenant.id, kind: 'incoming', rank: 0, payload: body, dedupeKey: incomingDedupeKey(tenant.id, event) };
  if (mappingVersion !== undefined) cb.mappingVersion = mappingVersion;
  return cb;
}

/** BSP message id when there is one; otherwise a hash of the message, which a retried webhook repeats. */
export function incomingDedupeKey(tenant: string, event: IncomingEvent): string {
  if (event.providerMessageId) return `${tenant}|in|${event.providerMessageId}`;
  return `${tenant}|in|sha256:${createHash('sha256').update(JSON.stringify(event.message)).digest('hex').slice(0, 32)}`;
}
