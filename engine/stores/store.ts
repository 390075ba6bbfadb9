// What the host needs to remember, behind one interface so SQLite (one process) and Redis (a fleet)
// are interchangeable. Every method is async even where SQLite is synchronous: Redis is not.
import type { StatusEvent } from '../mapping/webhook.js';

/** CleverTap's status and incoming callbacks, in CleverTap's canonical form (schemas/clevertap/). */
export type CallbackKind = 'status' | 'incoming';

/** One CleverTap status entry as it goes inside `{"payloadVersion":"0.1","statuses":[...]}`. */
export interface StatusEntry {
  msgId: string;
  status: 'sent' | 'delivered' | 'read' | 'failed' | 'Clicked';
  timestamp?: string;
  error?: { code: number; title: string };
  url?: string;
  shortUrl?: string;
  userAgent?: string;
}

export interface NewCallback {
  tenant: string;
  kind: CallbackKind;
  /** CleverTap msgId: callbacks of one msgId are delivered in order (see `rank`). Absent for most incoming. */
  msgId?: string;
  /**
   * Order within one msgId (see statusRank): the chain sent 1 < delivered 2 < read 3, then failed 4;
   * 0 = unordered (incoming, clicks). A chain callback whose rank is below a chain rank already
   * delivered for its msgId is skipped, never sent late: CleverTap must not see `delivered` after
   * `read`. Each chain rank enters the outbox at most once per msgId (see `implied`).
   */
  rank: number;
  /** For kind status: a StatusEntry; for incoming: the whole incoming callback body. */
  payload: unknown;
  /** Same key twice = same callback: the second is dropped (BSPs retry webhooks). */
  dedupeKey: string;
  /** Version of the mapping that produced it (logs, admin). */
  mappingVersion?: string;
  /**
   * A chain status the BSP did not (yet) report, released because a higher one arrived first (read
   * implies delivered and sent). Kept in the store for operators; never part of the payload. An
   * implied callback is added only while its chain rank is not already in the outbox for its msgId,
   * and ignores dedupe keys; the real status arriving later is then a duplicate.
   */
  implied?: boolean;
}

export interface CallbackRecord extends NewCallback {
  id: string;
  createdAt: number; // epoch ms
  attempts: number;
  nextAttemptAt: number; // epoch ms
  lastError?: string;
}

/** A status whose BSP id is not (yet) correlated with a CleverTap msgId: the send may still be in flight. */
export interface NewPending {
  tenant: string;
  providerMessageId: string;
  event: StatusEvent;
  dedupeKey: string;
  mappingVersion?: string;
}

export interface PendingRecord extends NewPending {
  id: string;
  firstSeenAt: number;
  attempts: number;
  nextLookupAt: number;
  /** true once the look-up window is over: kept for inspection, counted in metrics, never dropped. */
  unmatched: boolean;
}

export interface IngestResult {
  /** Real callbacks and pending look-ups added. */
  accepted: number;
  duplicates: number;
  /** Implied callbacks added. */
  implied: number;
}

/**
 * A tracked link (docs/click-tracking.md): the token a dynamic-URL button's suffix was replaced by,
 * and the one URL `/c/<token>` may ever redirect to, recorded when the message was sent.
 */
export interface ClickLink {
  token: string;
  tenant: string;
  msgId: string;
  url: string;
  expiresAt: number; // epoch ms
}

/**
 * One entry of a message's timeline (docs/operations.md, "What happened to this message?"): kept for
 * operators, never part of what CleverTap or the BSP receive. Phone numbers are masked and secrets
 * left out before an event gets here; the store keeps `data` as it is given.
 */
export interface TraceEvent {
  at: number; // epoch ms
  tenant: string;
  /** CleverTap msgId, when known (a status whose BSP id is not correlated yet has none). */
  msgId?: string;
  /** BSP message id, when known. */
  providerMessageId?: string;
  /** The campaign of msgId (its second `|` part), when it has one: campaign reports read by it. */
  campaignId?: string;
  /**
   * send: the CleverTap request, the BSP call and the answer; status / incoming: a webhook event and
   * what it was mapped to; late: the BSP accepted after CleverTap was answered 2004; resolved: a held
   * status found its msgId; callback: one delivery attempt; dead: moved to the dead-letter list.
   */
  type: 'send' | 'status' | 'incoming' | 'late' | 'resolved' | 'callback' | 'dead';
  data: Record<string, unknown>;
  /**
   * Set by the recording flow when the store's correlations hold this msgId ↔ BSP id pair (saved by a
   * send, or found there by a webhook): a store may find the pair there instead of indexing it again.
   * Not kept with the event.
   */
  correlated?: true;
}

export interface StoreStats {
  outboxPending: number;
  outboxDead: number;
  pendingLookups: number;
  unmatched: number;
  delivered: number;
}

/**
 * An authenticated BSP webhook (or one item cut from its batch, see `part`) that the tenant's mapping
 * could not map. Acknowledged to the BSP, so it is kept here until a fixed mapping replays it.
 */
export interface NewQuarantined {
  tenant: string;
  /** The mapping's name and version that failed on it. */
  mapping: string;
  mappingVersion?: string;
  /** The request as received, except headers that carry secrets (the signature, credentials): those are redacted. */
  request: { url: string; headers: Record<string, string>; query: Record<string, string | string[]>; rawBody: string };
  /** Set when `request.rawBody` is one item of a batch, as the mapping's webhook.split cut it: which, and of how many. */
  part?: { index: number; of: number };
  error: { code: string; message: string; where?: string };
}

export interface QuarantineRecord extends NewQuarantined {
  id: string;
  receivedAt: number; // epoch ms
  /** Replays that failed too; `error` is the latest one's. */
  attempts: number;
  lastAttemptAt?: number;
}

export interface Store {
  readonly kind: 'sqlite' | 'redis';

  /** msgId ↔ BSP id, kept `ttlMs`. Re-saving the same pair is harmless. */
  saveCorrelation(tenant: string, providerMessageId: string, msgId: string, ttlMs: number): Promise<void>;
  /**
   * The msgIds of BSP ids of one tenant, in one store call (a webhook's batch, a round of pending
   * look-ups; one id is a batch of one): in the order asked, undefined where none is known.
   */
  findMsgIds(tenant: string, providerMessageIds: readonly string[]): Promise<(string | undefined)[]>;

  /**
   * Durably records everything one webhook produced, atomically: when this resolves the BSP may be
   * acknowledged. Items whose dedupeKey was seen before are dropped and counted as duplicates, and so
   * is a chain status (rank 1-3) whose rank its msgId already has in the outbox (real or implied).
   * Real callbacks are taken before implied ones, whatever the order given; an implied callback whose
   * rank is already there is dropped without being counted.
   */
  ingest(items: { callbacks: NewCallback[]; pending: NewPending[] }, now: number): Promise<IngestResult>;

  /** Pending look-ups due at `now` (not unmatched). */
  duePending(now: number, limit: number): Promise<PendingRecord[]>;
  /**
   * The pending status found its msgId: it becomes an outbox callback, with the implied ones it
   * brings, under ingest's rules (a chain rank already there makes it a duplicate), atomically.
   */
  resolvePending(id: string, callbacks: readonly NewCallback[], now: number): Promise<void>;
  /** Try again later, or give up (unmatched = true) and keep it visible. */
  reschedulePending(id: string, nextLookupAt: number, unmatched: boolean): Promise<void>;
  listUnmatched(limit: number): Promise<PendingRecord[]>;

  /**
   * Leases up to `limit` callbacks due at `now` for `leaseMs` (another worker will not get them
   * meanwhile), at most one per (tenant, msgId) — the lowest rank, oldest first — so a msgId's
   * callbacks go out in order. Chain callbacks superseded by a higher chain rank already delivered
   * (a dead-lettered `sent` replayed after `read` went) are marked skipped here and not returned.
   */
  claimDue(now: number, limit: number, leaseMs: number): Promise<CallbackRecord[]>;
  markDelivered(ids: readonly string[], now: number): Promise<void>;
  /** Delivery failed: try again at `nextAttemptAt`. */
  markFailed(ids: readonly string[], error: string, nextAttemptAt: number): Promise<void>;
  /** Retry window exhausted: move to the dead-letter list. */
  markDead(ids: readonly string[], error: string): Promise<void>;
  listDead(limit: number, tenant?: string): Promise<CallbackRecord[]>;
  /** Dead callbacks back into the outbox, due now; all of them when `ids` is absent. Returns how many. */
  replayDead(now: number, ids?: readonly string[]): Promise<number>;

  /** Durably records tracked links (before the message that carries their tokens goes to the BSP), at `now`. */
  saveClickLinks(links: readonly ClickLink[], now: number): Promise<void>;
  /** The link of `token` while `now` is before its expiry; undefined when unknown or expired. */
  findClickLink(token: string, now: number): Promise<ClickLink | undefined>;
  /**
   * Counts one click on a live link and returns its clicks so far, this one included (0: unknown or
   * expired, nothing counted). The first click puts `callback` in the outbox in the same atomic step
   * (dropped if its dedupeKey was seen, as in ingest); later clicks only count.
   */
  recordClick(token: string, now: number, callback: NewCallback): Promise<number>;

  /** Durably keeps unmappable webhooks (all or none), before the BSP is acknowledged. Returns their ids, in order. */
  addQuarantined(entries: readonly NewQuarantined[], now: number): Promise<string[]>;
  /** Oldest first. */
  listQuarantined(limit: number, tenant?: string): Promise<QuarantineRecord[]>;
  getQuarantined(id: string): Promise<QuarantineRecord | undefined>;
  /** A replay failed again: the entry stays, with this error and one more attempt. False when it is gone. */
  requarantine(id: string, error: NewQuarantined['error'], mappingVersion: string | undefined, now: number): Promise<boolean>;
  /** Replayed entries leave the quarantine. Returns how many were there. */
  removeQuarantined(ids: readonly string[]): Promise<number>;
  quarantineSize(): Promise<number>;
  /**
   * Adds trace events (diagnostics: callers do not wait on them in a hot path, see engine/host/trace.ts).
   * `keepMs` bounds how long what they bring with them (id aliases) is kept. Not part of the writes a
   * caller's answer waits for: a store may commit them on their own, without a sync of their own.
   */
  appendTrace(events: readonly TraceEvent[], keepMs: number): Promise<void>;
  /**
   * The timeline of the message `id` names, as a CleverTap msgId or a BSP message id: its events and
   * those of the ids they link it to (a send links both; a held status its BSP id), oldest first,
   * at most `limit`. Empty when nothing is known.
   */
  readTrace(id: string, limit: number): Promise<TraceEvent[]>;
  /** Removes trace events older than `now - keepMs`, then the oldest until at most `maxEvents` remain. Returns how many went. */
  sweepTrace(now: number, keepMs: number, maxEvents: number): Promise<number>;
  /**
   * One page of a campaign's trace events (every tenant): about `limit` events (SQLite: at most; Redis:
   * whole timelines, so a page may go over), and `next` to pass as `cursor` for the following page,
   * absent after the last. Pages keep a large campaign from holding the store up. Each event comes
   * once; events added while paging may be left out; order across pages is not promised.
   */
  campaignTrace(campaignId: string, limit: number, cursor?: string): Promise<{ events: TraceEvent[]; next?: string }>;
  /**
   * One page of a campaign's messages (every tenant), in msgId order: up to `limit` msgIds, each with
   * every trace event of it that belongs to the campaign, oldest first, and `next` to pass as `cursor`
   * for the following page, absent after the last. The console's drill-down behind each count: a
   * message's whole timeline is in one page, so what it contributes to each count can be told.
   */
  campaignMessages(campaignId: string, limit: number, cursor?: string): Promise<{ messages: { msgId: string; events: TraceEvent[] }[]; next?: string }>;
  /** Campaigns with trace events, most recently active first, per tenant. */
  listCampaigns(limit: number): Promise<{ campaignId: string; tenant: string; lastActivity: number }[]>;

  /** Removes expired correlations, dedupe keys and click links, and delivered callbacks older than `keepMs`. */
  sweep(now: number, keepMs: number): Promise<void>;
  stats(): Promise<StoreStats>;
  /** Throws when the store is unreachable (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Status order within one msgId; see NewCallback.rank. `failed` is outside the chain: BSPs report it
 * for messages never sent (so it implies nothing) and a device may still report `delivered` after it
 * (so it supersedes nothing); it goes after whatever of its msgId is queued. Clicks are unordered.
 */
export function statusRank(status: string): number {
  switch (status) {
    case 'sent':
      return 1;
    case 'delivered':
      return 2;
    case 'read':
      return 3;
    case 'failed':
      return FAILED_RANK;
    default:
      return 0;
  }
}

/** The highest rank of the sent < delivered < read chain; ranks 1..CHAIN_TOP are the chain. */
export const CHAIN_TOP = 3;
export const FAILED_RANK = 4;
