// The outbox worker: takes due callbacks from the Store and POSTs them to each tenant's CleverTap
// callback URLs. At-least-once: a callback is marked delivered only after a 2xx, so a crash between
// the POST and the mark sends it again (CleverTap tolerates a repeated status; losing one is worse).
import { Agent } from 'undici';
import pino, { type Logger } from 'pino';
import type { BackgroundGate } from './background-gate.js';
import { HttpCalls } from './http-call.js';
import type { CallbackRecord, Store } from '../stores/store.js';

export interface CallbackTarget {
  statusUrl: string;
  inboundUrl: string;
}

export type WorkerLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

export interface CallbackDeliveryOptions {
  store: Store;
  /** The tenant's CleverTap callback URLs; undefined when the tenant is unknown (removed from config). */
  target: (tenant: string) => CallbackTarget | undefined;
  /** How long after a callback entered the outbox it is still retried; then it is dead-lettered. */
  retryForMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  batchSize?: number;
  leaseMs?: number;
  requestTimeoutMs?: number;
  pollMs?: number;
  /** stop() waits at most this long for in-flight and due callbacks, then aborts what is left. */
  drainMs?: number;
  /** POSTs in flight at once; the rest of a round queues behind them. */
  concurrency?: number;
  logger?: WorkerLogger;
  onDelivered?: (records: readonly CallbackRecord[], durationMs: number) => void;
  onFailed?: (records: readonly CallbackRecord[], error: string, nextAttemptAt: number) => void;
  onDead?: (records: readonly CallbackRecord[], reason: string) => void;
  /** Every POST, whatever its outcome (message traces). `httpStatus` is absent when no answer came. */
  onAttempt?: (records: readonly CallbackRecord[], attempt: { at: number; ms: number; httpStatus?: number; error?: string; outcome: 'delivered' | 'retry' | 'refused' }) => void;
  now?: () => number;
  /** [0, 1) source for the jitter; tests pin it. */
  random?: () => number;
  /** Puts rounds off while CleverTap's sends need the event loop; default: never. */
  gate?: BackgroundGate;
}

/** Exponential back-off with jitter: uniform in [d/2, d] where d = min(max, base·2^attempts). */
export function backoffDelay(attempts: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const d = Math.min(maxMs, baseMs * 2 ** Math.min(attempts, 40));
  return Math.round(d / 2 + random() * (d / 2));
}

/** One POST: a tenant's status batch, or one incoming message. */
interface Post {
  tenant: string;
  kind: 'status' | 'incoming';
  url: string;
  body: unknown;
  records: CallbackRecord[];
}

type Outcome = { ok: true; status: number } | { ok: false; retry: boolean; error: string; status?: number };

/** Options minus keys given as undefined, so `{ retryForMs: config.maybe }` keeps the default. */
export function definedOnly<T extends object>(options: T): T {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as T;
}

const ids = (records: readonly CallbackRecord[]) => records.map((r) => r.id);

export class CallbackDelivery {
  private readonly o: Required<Omit<CallbackDeliveryOptions, 'onDelivered' | 'onFailed' | 'onDead' | 'onAttempt' | 'gate'>> & Pick<CallbackDeliveryOptions, 'onDelivered' | 'onFailed' | 'onDead' | 'onAttempt' | 'gate'>;
  private readonly agent: Agent;
  /** The POSTs in flight: once stop()'s drain time is over they are aborted, and so is any started after. */
  private readonly calls: HttpCalls;
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;

  constructor(options: CallbackDeliveryOptions) {
    this.o = {
      retryForMs: 24 * 60 * 60 * 1000,
      baseDelayMs: 1000,
      maxDelayMs: 600_000,
      batchSize: 100,
      leaseMs: 30_000,
      requestTimeoutMs: 10_000,
      pollMs: 250,
      drainMs: 5000,
      concurrency: 16,
      logger: pino({ level: 'silent' }),
      now: Date.now,
      random: Math.random,
      ...definedOnly(options),
    };
    // One keep-alive pool per worker: CleverTap's callback hosts are few, so connections are reused.
    this.agent = new Agent({ keepAliveTimeout: 30_000, connections: this.o.concurrency });
    this.calls = new HttpCalls(this.agent);
  }

  /** Polls until stop(); a full round is followed at once by the next, an emptier one after pollMs. */
  start(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    this.schedule(0);
  }

  /** One round: claim, POST, record outcomes. Returns how many callbacks were claimed. Rounds never overlap. */
  runOnce(): Promise<number> {
    const next = this.chain.then(() => this.round());
    this.chain = next.catch(() => undefined);
    return next;
  }

  /**
   * Finishes the round in flight, then delivers what is due, for at most drainMs; requests still
   * open then are aborted and retried by the next process. The worker cannot be started again.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    const deadline = setTimeout(() => {
      this.calls.abortAll(new Error(`worker stopping: drain time (${this.o.drainMs} ms) is over`));
    }, this.o.drainMs);
    try {
      await this.chain;
      while (!this.calls.reason) {
        const n = await this.runOnce().catch((err: unknown) => {
          this.o.logger.error({ err }, 'callback delivery: last round failed');
          return 0;
        });
        // A delivered status makes the next one of its msgId claimable: keep going until a round finds nothing.
        if (n === 0) break;
      }
    } finally {
      clearTimeout(deadline);
      await this.agent.close();
    }
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.o.gate?.hold()) return void (this.running && this.schedule(this.o.pollMs));
      this.runOnce().then(
        // Anything claimed may have unblocked the next callback of its msgId: look again at once.
        (n) => this.running && this.schedule(n > 0 ? 0 : this.o.pollMs),
        (err: unknown) => {
          this.o.logger.error({ err }, 'callback delivery round failed');
          if (this.running) this.schedule(this.o.pollMs);
        },
      );
    }, ms);
  }

  private async round(): Promise<number> {
    const due = await this.o.store.claimDue(this.o.now(), this.o.batchSize, this.o.leaseMs);
    if (due.length === 0) return 0;
    const byTenant = new Map<string, CallbackRecord[]>();
    for (const r of due) byTenant.set(r.tenant, [...(byTenant.get(r.tenant) ?? []), r]);
    const posts: Post[] = [];
    for (const [tenant, records] of byTenant) {
      const target = this.o.target(tenant);
      if (!target) {
        await this.dead(records, `tenant "${tenant}" has no callback URLs configured (unknown tenant); replay once it is configured`);
        continue;
      }
      const statuses = records.filter((r) => r.kind === 'status');
      // CleverTap's status callback takes a batch: one POST per tenant per round.
      if (statuses.length > 0) posts.push({ tenant, kind: 'status', url: target.statusUrl, body: { payloadVersion: '0.1', statuses: statuses.map((r) => r.payload) }, records: statuses });
      for (const r of records) if (r.kind === 'incoming') posts.push({ tenant, kind: 'incoming', url: target.inboundUrl, body: r.payload, records: [r] });
    }
    let next = 0;
    const delivered: { post: Post; ms: number }[] = [];
    const lane = async () => {
      while (next < posts.length) {
        const post = posts[next++] as Post;
        const ms = await this.deliver(post);
        if (ms !== undefined) delivered.push({ post, ms });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency, posts.length) }, lane));
    // One mark for the round's deliveries, not one per POST: the next round waits for this one
    // anyway, and a crash before the mark only sends them again (at-least-once).
    if (delivered.length > 0) await this.o.store.markDelivered(delivered.flatMap((d) => ids(d.post.records)), this.o.now());
    for (const { post, ms } of delivered) this.delivered(post, ms);
    return due.length;
  }

  private delivered(post: Post, ms: number): void {
    this.o.onDelivered?.(post.records, ms);
    const implied = post.records.filter((r) => r.implied);
    this.o.logger.debug({ tenant: post.tenant, kind: post.kind, count: post.records.length, implied: implied.length }, 'callbacks delivered');
    // Statuses CleverTap counted that the BSP had not (yet) reported: an operator reconciling counts needs them.
    if (implied.length > 0) this.o.logger.info({ tenant: post.tenant, implied: implied.map((r) => `${r.msgId} ${(r.payload as { status?: string }).status}`) }, 'implied statuses delivered');
  }

  /** POSTs one batch and records a failure; returns how long a successful POST took (its mark is the round's). */
  private async deliver(post: Post): Promise<number | undefined> {
    const started = performance.now();
    const at = this.o.now();
    const outcome = await this.post(post);
    if (this.o.onAttempt) {
      const attempt: Parameters<NonNullable<CallbackDeliveryOptions['onAttempt']>>[1] = { at, ms: Math.round(performance.now() - started), outcome: outcome.ok ? 'delivered' : outcome.retry ? 'retry' : 'refused' };
      if (outcome.status !== undefined) attempt.httpStatus = outcome.status;
      if (!outcome.ok) attempt.error = outcome.error;
      this.o.onAttempt(post.records, attempt);
    }
    if (outcome.ok) return performance.now() - started;
    if (!outcome.retry) await this.dead(post.records, outcome.error);
    else await this.failed(post, outcome.error);
    return undefined;
  }

  private async post(post: Post): Promise<Outcome> {
    try {
      // CleverTap's answer matters only by its status; its text (cut at 64 KB) goes into an error.
      const res = await this.calls.call(
        { method: 'POST', url: post.url, headers: { 'content-type': 'application/json' }, body: JSON.stringify(post.body) },
        this.o.requestTimeoutMs,
        `callback POST took longer than ${this.o.requestTimeoutMs} ms`,
        65_536,
      );
      if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
      const retry = res.status >= 500 || res.status === 408 || res.status === 429;
      // Any other 4xx: CleverTap refused the format; retrying cannot help, a fixed mapping and a replay can.
      return { ok: false, retry, status: res.status, error: retry ? `HTTP ${res.status}` : `HTTP ${res.status}: ${res.text.slice(0, 200)}` };
    } catch (err) {
      const e = err as Error;
      const error = e.name === 'TimeoutError' ? `timeout after ${this.o.requestTimeoutMs} ms` : `${e.name}: ${e.message}`;
      return { ok: false, retry: true, error };
    }
  }

  private async failed(post: Post, error: string): Promise<void> {
    const now = this.o.now();
    const expired = post.records.filter((r) => r.createdAt + this.o.retryForMs <= now);
    const retry = post.records.filter((r) => r.createdAt + this.o.retryForMs > now);
    if (expired.length > 0) await this.dead(expired, `retry window (${this.o.retryForMs} ms) over after ${expired[0]?.attempts ?? 0} retries; last error: ${error}`);
    if (retry.length === 0) return;
    // One delay for the whole POST: its callbacks share an endpoint, and splitting them by jitter
    // would only turn one batch into many.
    const attempts = Math.max(...retry.map((r) => r.attempts));
    const nextAttemptAt = now + backoffDelay(attempts, this.o.baseDelayMs, this.o.maxDelayMs, this.o.random);
    await this.o.store.markFailed(ids(retry), error, nextAttemptAt);
    this.o.onFailed?.(retry, error, nextAttemptAt);
    this.o.logger.warn({ tenant: post.tenant, kind: post.kind, count: retry.length, attempts: attempts + 1, error, retryInMs: nextAttemptAt - now }, 'callback delivery failed; will retry');
  }

  private async dead(records: CallbackRecord[], reason: string): Promise<void> {
    await this.o.store.markDead(ids(records), reason);
    this.o.onDead?.(records, reason);
    this.o.logger.error({ tenant: records[0]?.tenant, ids: ids(records), reason }, 'callbacks dead-lettered');
  }
}
