// Admission to CleverTap's messaging endpoint when the process is past capacity. CleverTap gives each
// request one second; a request that waits for a saturated event loop is answered late whatever the
// BSP does, and every request admitted past capacity makes all the others later too. So the number of
// messaging requests in flight is capped, and the cap follows the event loop: it shrinks while the loop
// runs late and grows back while requests queue for it and the loop keeps time (AIMD, as TCP does with
// its window). A request over the cap waits in line for at most `maxWaitMs`, then gets CleverTap's 429
// so CleverTap retries later; a shed request costs a few microseconds and no work behind it.
//
// Lateness the admitted requests do not cause is no reason to admit fewer. Past capacity the loop
// also runs late from the 429s themselves (each waiter is answered and, from a client that retries at
// once, replaced every half second whatever the cap) and from other processes on the box taking the
// CPU. Cutting the cap then only turns successes into 429s: at -c 3000 on the demo it fell to its
// floor of 16 and successes to a fifth of -c 100's while the lag stayed where it was. So the cap
// never shrinks below half the most requests the loop carried on time (in flight, the cap in use,
// lag within the target) over the last 10-20 s: long enough to outlast a stretch of 429 storms, short
// enough that a box that really got slower sheds down to what it can carry now.
//
// The loop's lateness is measured with a 10 ms timer: how late it fires is how long any socket with a
// request waiting on it waits before wabridge reads it. (perf_hooks.monitorEventLoopDelay did not
// record a 200 ms block on Node 20 in a quick check, and @fastify/under-pressure, built on it, sheds
// every route with 503 by a mean over a second: CleverTap needs 429 on one route, decided within 100 ms.)

import { RecentMax } from './recent-max.js';

export interface AdmissionOptions {
  /** The loop may run this late (worst of a sample) before the cap shrinks. */
  targetLagMs: number;
  /** How long a request over the cap may wait for a slot before it is answered 429. */
  maxWaitMs: number;
  minLimit: number;
  maxLimit: number;
  initialLimit: number;
  /** How often the cap is adjusted. */
  sampleMs: number;
}

export const ADMISSION_DEFAULTS: AdmissionOptions = {
  targetLagMs: 150,
  maxWaitMs: 500,
  minLimit: 16,
  maxLimit: 10_000,
  initialLimit: 256,
  sampleMs: 100,
};

/** The cap's floor: this share of the requests the loop carried on time lately (see above). */
const CARRIED_SHARE = 0.5;
const CARRIED_WINDOW_MS = 10_000;

export type ShedReason = 'queue_timeout' | 'closing';

interface Waiter {
  until: number;
  resolve: (admitted: boolean) => void;
}

const PROBE_MS = 10;

export class Admission {
  readonly options: AdmissionOptions;
  limit: number;
  inFlight = 0;
  /** The worst lateness of the probe timer over the last full sample, in ms. */
  lagMs = 0;
  private windowLagMs = 0;
  /** When the probe should fire next. */
  private expected = 0;
  private readonly waiters: Waiter[] = [];
  private head = 0;
  private probe: NodeJS.Timeout | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private expiry: NodeJS.Timeout | undefined;
  private closed = false;
  /** Requests in flight while the cap was in use and the loop kept time, lately. */
  private readonly carried = new RecentMax(CARRIED_WINDOW_MS);

  constructor(
    options: Partial<AdmissionOptions> = {},
    private readonly onShed: (reason: ShedReason) => void = () => undefined,
    /** After each adjustment (every sampleMs): for gauges. */
    private readonly onSample: (a: Admission) => void = () => undefined,
  ) {
    this.options = { ...ADMISSION_DEFAULTS, ...options };
    this.limit = Math.min(this.options.maxLimit, Math.max(this.options.minLimit, this.options.initialLimit));
  }

  /**
   * How late the loop runs now: the worst of the last full sample, of the sample under way, and of the
   * probe that is due and has not fired (during one long turn of the loop, the samples are stale).
   */
  lagNowMs(now = performance.now()): number {
    return Math.max(this.lagMs, this.windowLagMs, this.probe ? now - this.expected : 0);
  }

  start(): void {
    if (this.probe || this.closed) return;
    this.expected = performance.now() + PROBE_MS;
    const tick = () => {
      const now = performance.now();
      const late = now - this.expected;
      if (late > this.windowLagMs) this.windowLagMs = late;
      this.expected = now + PROBE_MS;
      this.probe = setTimeout(tick, PROBE_MS);
      this.probe.unref();
    };
    this.probe = setTimeout(tick, PROBE_MS);
    this.probe.unref();
    this.sampler = setInterval(() => this.adjust(), this.options.sampleMs);
    this.sampler.unref();
  }

  get queued(): number {
    return this.waiters.length - this.head;
  }

  /** The state the admin status shows. */
  snapshot(): { limit: number; floor: number; inFlight: number; queued: number; eventLoopLagMs: number } {
    return { limit: this.limit, floor: this.floor(), inFlight: this.inFlight, queued: this.queued, eventLoopLagMs: Math.round(this.lagMs) };
  }

  /** True while sends wait for the loop: background work should hold back. */
  get pressed(): boolean {
    return this.queued > 0 || this.lagMs > this.options.targetLagMs;
  }

  /**
   * When a request that arrived at `arrivedAt` and finds no room is answered 429. Not at once: a client
   * that gets 429 at once sends again at once, and instant 429s then take the CPU the admitted requests
   * need; a waiting request costs nothing. But the loop's lateness is time the request already waited
   * unseen (its bytes sat on the socket until wabridge read them) and will wait again before its answer
   * is written, so it comes out of the wait, twice, down to half of `maxWaitMs`.
   */
  answerBy(arrivedAt: number): number {
    return arrivedAt + Math.max(this.options.maxWaitMs / 2, this.options.maxWaitMs - 2 * this.lagNowMs());
  }

  /** Takes a slot: true at once when one is free, else a promise of true (a slot) or false (shed). */
  enter(arrivedAt: number): boolean | Promise<boolean> {
    if (this.closed) {
      this.onShed('closing');
      return false;
    }
    if (this.inFlight < this.limit && this.queued === 0) {
      this.inFlight++;
      return true;
    }
    return new Promise<boolean>((resolve) => {
      this.waiters.push({ until: this.answerBy(arrivedAt), resolve });
      if (!this.expiry) this.armExpiry();
    });
  }

  /** Gives a slot back; the oldest waiter still in time takes it. */
  leave(): void {
    this.inFlight--;
    this.admitWaiting();
  }

  /** Answers every waiter 429 and every later request too: the server is stopping. */
  close(): void {
    this.closed = true;
    clearTimeout(this.probe);
    // No probe is due any more: a stopped timer must not read as a loop running later and later.
    this.probe = undefined;
    clearInterval(this.sampler);
    clearTimeout(this.expiry);
    this.expiry = undefined;
    while (this.queued > 0) this.shift().resolve(false);
  }

  /** One AIMD step from the sample that just ended. */
  adjust(lagMs = this.windowLagMs, now = performance.now()): void {
    this.lagMs = lagMs;
    this.windowLagMs = 0;
    const o = this.options;
    const inUse = this.queued > 0 || this.inFlight >= this.limit;
    if (inUse && lagMs <= o.targetLagMs) this.carried.note(this.inFlight, now);
    if (lagMs > o.targetLagMs) {
      // (a cap already under the floor, from its start, stays where it is)
      const floor = Math.min(this.limit, this.floor(now));
      this.limit = Math.max(floor, Math.floor(this.limit * 0.9));
    } else if (inUse && lagMs < o.targetLagMs / 2) {
      this.limit = Math.min(o.maxLimit, this.limit + Math.max(1, Math.ceil(this.limit * 0.05)));
      this.admitWaiting();
    }
    this.onSample(this);
  }

  /** The cap never shrinks below this now: minLimit, or half what the loop carried on time lately. */
  floor(now = performance.now()): number {
    return Math.max(this.options.minLimit, Math.floor(this.carried.value(now) * CARRIED_SHARE));
  }

  private admitWaiting(): void {
    const now = performance.now();
    while (this.inFlight < this.limit && this.queued > 0) {
      const w = this.shift();
      if (w.until <= now) {
        this.onShed('queue_timeout');
        w.resolve(false);
      } else {
        this.inFlight++;
        w.resolve(true);
      }
    }
  }

  private shift(): Waiter {
    const w = this.waiters[this.head]!;
    this.waiters[this.head++] = undefined as unknown as Waiter;
    // Compact once the consumed prefix is most of the array (amortized O(1) per waiter).
    if (this.head > 1024 && this.head * 2 > this.waiters.length) {
      this.waiters.splice(0, this.head);
      this.head = 0;
    }
    return w;
  }

  /** One timer for the whole line: it fires when the oldest waiter's time is up (they are in arrival order). */
  private armExpiry(): void {
    const first = this.waiters[this.head];
    if (!first) {
      this.expiry = undefined;
      return;
    }
    this.expiry = setTimeout(
      () => {
        const now = performance.now();
        while (this.queued > 0 && this.waiters[this.head]!.until <= now) {
          this.onShed('queue_timeout');
          this.shift().resolve(false);
        }
        this.armExpiry();
      },
      Math.max(1, first.until - performance.now()),
    );
  }
}
