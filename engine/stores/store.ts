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
   * Order within one msgId: sent 1, delivered 2, read 3, failed 3; 0 = unordered (incoming, clicks).
   * A callback whose rank is below one already delivered for its msgId is skipped, never sent late:
   * CleverTap must not see `delivered` after `read`.
   */
  rank: number;
  /** For kind status: a StatusEntry; for incoming: the whole incoming callback body. */
  payload: unknown;
  /** Same key twice = same callback: the second is dropped (BSPs retry webhooks). */
  dedupeKey: string;
  /** Version of the mapping that produced it (logs, admin). */
  mappingVersion?: string;
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

export interface StoreStats {
  outboxPending: number;
  outboxDead: number;
  pendingLookups: number;
  unmatched: number;
  delivered: number;
}

export interface Store {
  readonly kind: 'sqlite' | 'redis';

  /** msgId ↔ BSP id, kept `ttlMs`. Re-saving the same pair is harmless. */
  saveCorrelation(tenant: string, providerMessageId: string, msgId: string, ttlMs: number): Promise<void>;
  findMsgId(tenant: string, providerMessageId: string): Promise<string | undefined>;

  /**
   * Durably records everything one webhook produced, atomically: when this resolves the BSP may be
   * acknowledged. Items whose dedupeKey was seen before are dropped and counted as duplicates.
   */
  ingest(items: { callbacks: NewCallback[]; pending: NewPending[] }, now: number): Promise<{ accepted: number; duplicates: number }>;

  /** Pending look-ups due at `now` (not unmatched). */
  duePending(now: number, limit: number): Promise<PendingRecord[]>;
  /** The pending status found its msgId: it becomes an outbox callback (atomically). */
  resolvePending(id: string, callback: NewCallback, now: number): Promise<void>;
  /** Try again later, or give up (unmatched = true) and keep it visible. */
  reschedulePending(id: string, nextLookupAt: number, unmatched: boolean): Promise<void>;
  listUnmatched(limit: number): Promise<PendingRecord[]>;

  /**
   * Leases up to `limit` callbacks due at `now` for `leaseMs` (another worker will not get them
   * meanwhile), at most one per (tenant, msgId) — the lowest rank, oldest first — so a msgId's
   * callbacks go out in order. Callbacks superseded by a higher rank already delivered are marked
   * skipped here and not returned.
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

  /** Removes expired correlations and dedupe keys, and delivered callbacks older than `keepMs`. */
  sweep(now: number, keepMs: number): Promise<void>;
  stats(): Promise<StoreStats>;
  /** Throws when the store is unreachable (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Status order within one msgId; see NewCallback.rank. */
export function statusRank(status: string): number {
  switch (status) {
    case 'sent':
      return 1;
    case 'delivered':
      return 2;
    case 'read':
    case 'failed':
      return 3;
    default:
      return 0;
  }
}
