// Statuses that arrived before their send's correlation was saved (the BSP can call back before it
// answers the send): looked up again with a growing delay, turned into outbox callbacks when the msgId
// shows up, and after the window kept as "unmatched" for an operator to see (never silently dropped).
import pino from 'pino';
import type { BackgroundGate } from './background-gate.js';
import { impliedCallbacks, statusCallbackFor } from './callbacks.js';
import { definedOnly, type WorkerLogger } from './callback-delivery.js';
import { statusRank, type PendingRecord, type Store } from '../stores/store.js';

export interface PendingResolverOptions {
  store: Store;
  /** How long after the status arrived its msgId is still looked for. */
  windowMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  batchSize?: number;
  pollMs?: number;
  logger?: WorkerLogger;
  /** `at`: the time the callback entered the outbox (before any attempt to deliver it). */
  onResolved?: (pending: PendingRecord, msgId: string, at: number) => void;
  onUnmatched?: (pending: PendingRecord) => void;
  now?: () => number;
  /** Puts rounds off while CleverTap's sends need the event loop; default: never. */
  gate?: BackgroundGate;
}

export class PendingResolver {
  private readonly o: Required<Omit<PendingResolverOptions, 'onResolved' | 'onUnmatched' | 'gate'>> & Pick<PendingResolverOptions, 'onResolved' | 'onUnmatched' | 'gate'>;
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(options: PendingResolverOptions) {
    this.o = { windowMs: 600_000, baseDelayMs: 250, maxDelayMs: 30_000, batchSize: 100, pollMs: 250, logger: pino({ level: 'silent' }), now: Date.now, ...definedOnly(options) };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** Waits for the round in flight; pending look-ups are durable, so nothing needs flushing. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.chain;
  }

  /** One round; returns how many pending statuses were looked at. Rounds never overlap. */
  runOnce(): Promise<number> {
    const next = this.chain.then(() => this.round());
    this.chain = next.catch(() => undefined);
    return next;
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.o.gate?.hold()) return void (this.running && this.schedule(this.o.pollMs));
      this.runOnce().then(
        (n) => this.running && this.schedule(n >= this.o.batchSize ? 0 : this.o.pollMs),
        (err: unknown) => {
          this.o.logger.error({ err }, 'pending look-up round failed');
          if (this.running) this.schedule(this.o.pollMs);
        },
      );
    }, ms);
  }

  /** The msgId of each look-up, in order: one store call per tenant in the round, not one per status. */
  private async lookUp(due: readonly PendingRecord[]): Promise<(string | undefined)[]> {
    const byTenant = new Map<string, Set<string>>();
    for (const p of due) {
      const ids = byTenant.get(p.tenant) ?? new Set<string>();
      ids.add(p.providerMessageId);
      byTenant.set(p.tenant, ids);
    }
    const found = new Map<string, Map<string, string>>();
    await Promise.all(
      [...byTenant].map(async ([tenant, set]) => {
        const ids = [...set];
        const msgIds = await this.o.store.findMsgIds(tenant, ids);
        const m = new Map<string, string>();
        ids.forEach((id, i) => {
          const msgId = msgIds[i];
          if (typeof msgId === 'string') m.set(id, msgId);
        });
        found.set(tenant, m);
      }),
    );
    return due.map((p) => found.get(p.tenant)?.get(p.providerMessageId));
  }

  private async round(): Promise<number> {
    const now = this.o.now();
    const due = await this.o.store.duePending(now, this.o.batchSize);
    // Lower statuses of a message first: a `read` resolved before its own `sent` would release an
    // implied `sent` with read's timestamp, and the real one would then be a duplicate.
    const group = (p: PendingRecord) => `${p.tenant}\u0000${p.providerMessageId}`;
    due.sort((a, b) => (group(a) < group(b) ? -1 : group(a) > group(b) ? 1 : statusRank(a.event.status) - statusRank(b.event.status)));
    const msgIds = await this.lookUp(due);
    // Every write of the round goes out at once, in the order above: on SQLite they share one group
    // commit and one sync, on Redis one pipeline, instead of a commit and a round trip each.
    const writes: Promise<void>[] = [];
    for (const [i, p] of due.entries()) {
      const msgId = msgIds[i];
      if (msgId !== undefined) {
        const callback = statusCallbackFor(p.tenant, msgId, p.event, p.mappingVersion);
        writes.push(
          this.o.store.resolvePending(p.id, [callback, ...impliedCallbacks([callback])], now).then(() => {
            this.o.onResolved?.(p, msgId, now);
            this.o.logger.debug({ tenant: p.tenant, providerMessageId: p.providerMessageId, msgId, waitedMs: now - p.firstSeenAt }, 'late correlation resolved');
          }),
        );
        continue;
      }
      const windowEnd = p.firstSeenAt + this.o.windowMs;
      if (now >= windowEnd) {
        writes.push(
          this.o.store.reschedulePending(p.id, now, true).then(() => {
            this.o.onUnmatched?.(p);
            this.o.logger.warn({ tenant: p.tenant, providerMessageId: p.providerMessageId, status: p.event.status, attempts: p.attempts + 1 }, 'status never matched a sent message; kept as unmatched');
          }),
        );
        continue;
      }
      // The last look-up lands exactly at the end of the window, not up to maxDelayMs past it.
      const delay = Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** Math.min(p.attempts, 30));
      writes.push(this.o.store.reschedulePending(p.id, Math.min(now + delay, windowEnd), false));
    }
    // Each write settles on its own; the round fails (and is logged) if one did.
    const failed = (await Promise.allSettled(writes)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return due.length;
  }
}
