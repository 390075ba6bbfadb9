// Per-tenant concurrency on the messaging endpoint: at most `limit` requests of a tenant in flight,
// the rest answered 429. In one process a Map; in a fleet the count must be shared, or N instances
// would admit N × limit.
//
// Redis design (keys under the store's prefix; T = tenant with '%' and ':' escaped):
//   cc:T          hash   field = instance id, value = slots that instance holds for the tenant
//   cci:<id>      string "1" with PX = instanceTtlMs: the instance is alive
// acquire is one Lua script: it sums the fields of cc:T whose instance is still alive, deletes the
// fields of dead instances (their slots are reclaimed there and then), and takes a slot with HINCRBY
// only when the sum is below the limit. release is HINCRBY -1 (never below 0).
// Every heartbeatMs the instance refreshes cci:<id> and re-writes its own fields from its local,
// authoritative count (what it really holds), so a release lost to a Redis blip, or slots counted
// against an instance that Redis thought dead, heal within one heartbeat.
// A kill -9 cannot leak slots for longer than instanceTtlMs: nobody refreshes cci:<id>, it expires,
// and the next acquire for that tenant drops the dead instance's field.
// While Redis does not answer (a restart, a failover), acquire falls back to this instance's own
// count against the full limit: the endpoint keeps serving (and its answers are bounded per
// process) instead of turning every message into a 429 or a hang.
//
// Next to it, the per-tenant BSP rate limit (`bspRate`, messages per second): a fixed 1-second window
// counter. In Redis one Lua script INCRs `rate:T:<epoch second>` (PEXPIRE 2 s) on the same connection
// and prefix, with the second taken from Redis's own clock (TIME) so instances with skewed clocks still
// share one window. A send over the limit waits for the next window and tries again, as long as the
// wait fits in what is left of the tenant's deadline: a burst is smoothed into the next seconds, and
// only what cannot be sent in time is refused (the caller answers 2004). Without Redis, or while Redis
// does not answer, the same counter is kept in this process.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleepMs } from 'node:timers/promises';
// ioredis is loaded when a Redis limiter is opened: a SQLite deployment never pays for it at start.
import type { Redis, RedisOptions } from 'ioredis';

export interface ConcurrencyLimiter {
  /** Takes a slot of `tenant` when fewer than `limit` are taken; false = refuse (429). */
  acquire(tenant: string, limit: number): Promise<boolean>;
  /** Gives back a slot taken by acquire (call exactly once per successful acquire). */
  release(tenant: string): Promise<void>;
  /** Slots this process holds now, per tenant (admin status). */
  local(tenant: string): number;
  close(): Promise<void>;
}

export interface RateLimiter {
  /**
   * Takes one of `tenant`'s `perSecond` tokens of the current second; when they are gone, waits for the
   * next second and tries again, as long as the total wait stays within `maxWaitMs`. false = not in time.
   */
  take(tenant: string, perSecond: number, maxWaitMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** One attempt: the count in the current window after this take, and the ms until the next window. */
type RateAttempt = { n: number; msLeft: number };

async function takeLoop(attempt: () => Promise<RateAttempt>, perSecond: number, maxWaitMs: number, now: () => number, sleep: (ms: number) => Promise<unknown>): Promise<boolean> {
  const start = now();
  for (;;) {
    const { n, msLeft } = await attempt();
    if (n <= perSecond) return true;
    // +1 ms: wake up inside the next window, never at the very end of this one.
    const wait = Math.max(1, msLeft) + 1;
    if (now() - start + wait > maxWaitMs) return false;
    await sleep(wait);
  }
}

export interface LocalRateOptions {
  /** Epoch milliseconds (tests inject a clock). */
  now?: () => number;
  sleep?: (ms: number) => Promise<unknown>;
}

/** One process: a counter per tenant for the current epoch second. */
export class LocalRateLimiter implements RateLimiter {
  private readonly windows = new Map<string, { sec: number; n: number }>();
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<unknown>;

  constructor(options: LocalRateOptions = {}) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? sleepMs;
  }

  /** Counts one take in the current window (no waiting). */
  count(tenant: string): RateAttempt {
    const t = this.now();
    const sec = Math.floor(t / 1000);
    const w = this.windows.get(tenant);
    const n = w && w.sec === sec ? w.n + 1 : 1;
    this.windows.set(tenant, { sec, n });
    return { n, msLeft: (sec + 1) * 1000 - t };
  }

  take(tenant: string, perSecond: number, maxWaitMs: number): Promise<boolean> {
    return takeLoop(async () => this.count(tenant), perSecond, maxWaitMs, this.now, this.sleep);
  }

  async close(): Promise<void> {}
}

/** One process: a Map, what engine/host/server.ts did before. */
export class LocalConcurrencyLimiter implements ConcurrencyLimiter {
  private readonly held = new Map<string, number>();

  async acquire(tenant: string, limit: number): Promise<boolean> {
    const busy = this.held.get(tenant) ?? 0;
    if (busy >= limit) return false;
    this.held.set(tenant, busy + 1);
    return true;
  }

  async release(tenant: string): Promise<void> {
    const busy = (this.held.get(tenant) ?? 1) - 1;
    if (busy <= 0) this.held.delete(tenant);
    else this.held.set(tenant, busy);
  }

  local(tenant: string): number {
    return this.held.get(tenant) ?? 0;
  }

  async close(): Promise<void> {}
}

export interface RedisLimiterOptions {
  /** Key prefix, the store's (default "wabridge:"). */
  prefix?: string;
  /** A crashed instance's slots are reclaimed this long after its last heartbeat (default 10 s). */
  instanceTtlMs?: number;
  /** How often the instance refreshes its liveness and counts (default instanceTtlMs / 4). */
  heartbeatMs?: number;
  /** An acquire that Redis does not answer within this falls back to the local count (default 300 ms). */
  commandTimeoutMs?: number;
  /** For tests; default random. */
  instanceId?: string;
  onFallback?: (tenant: string, error: Error) => void;
  /** The BSP rate limit fell back to this instance's own count (Redis did not answer). */
  onRateFallback?: (tenant: string, error: Error) => void;
}

const escTenant = (tenant: string) => tenant.replace(/%/g, '%25').replace(/:/g, '%3A');

// ARGV: prefix, tenant (escaped), instance id, limit, instanceTtlMs
const ACQUIRE = `
local P, T, me, limit, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local key = P .. 'cc:' .. T
redis.call('SET', P .. 'cci:' .. me, '1', 'PX', ttl)
local a = redis.call('HGETALL', key)
local used = 0
for i = 1, #a, 2 do
  if a[i] == me or redis.call('EXISTS', P .. 'cci:' .. a[i]) == 1 then
    used = used + math.max(0, tonumber(a[i + 1]))
  else
    redis.call('HDEL', key, a[i])
  end
end
if used >= limit then return 0 end
redis.call('HINCRBY', key, me, 1)
return 1
`;

// ARGV: prefix, tenant (escaped), instance id
const RELEASE = `
local key = ARGV[1] .. 'cc:' .. ARGV[2]
local n = redis.call('HINCRBY', key, ARGV[3], -1)
if n <= 0 then redis.call('HDEL', key, ARGV[3]) end
return n
`;

// ARGV: prefix, instance id, instanceTtlMs, then (tenant escaped, count) pairs
const HEARTBEAT = `
local P, me = ARGV[1], ARGV[2]
redis.call('SET', P .. 'cci:' .. me, '1', 'PX', tonumber(ARGV[3]))
for i = 4, #ARGV, 2 do
  local key = P .. 'cc:' .. ARGV[i]
  if tonumber(ARGV[i + 1]) > 0 then redis.call('HSET', key, me, ARGV[i + 1]) else redis.call('HDEL', key, me) end
end
return 1
`;

// ARGV: prefix, tenant (escaped). Returns { count in this second after the take, ms until the next second }.
const RATE_TAKE = `
local t = redis.call('TIME')
local ms = math.floor(tonumber(t[2]) / 1000)
local key = ARGV[1] .. 'rate:' .. ARGV[2] .. ':' .. t[1]
local n = redis.call('INCR', key)
redis.call('PEXPIRE', key, 2000)
return { n, 1000 - ms }
`;

type Scripts = {
  wabRateTake(prefix: string, tenant: string): Promise<[number, number]>;
  wabCcAcquire(prefix: string, tenant: string, me: string, limit: number, ttl: number): Promise<number>;
  wabCcRelease(prefix: string, tenant: string, me: string): Promise<number>;
  wabCcHeartbeat(prefix: string, me: string, ttl: number, ...pairs: (string | number)[]): Promise<number>;
};

/** The fleet-wide limiter on its own connection (so a slow outbox script never delays a 429). */
export class RedisConcurrencyLimiter implements ConcurrencyLimiter {
  readonly instanceId: string;
  private readonly held = new Map<string, number>();
  private readonly prefix: string;
  private readonly ttl: number;
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  private constructor(
    private readonly redis: Redis & Scripts,
    private readonly options: RedisLimiterOptions,
  ) {
    this.instanceId = options.instanceId ?? randomBytes(8).toString('hex');
    this.prefix = options.prefix ?? 'wabridge:';
    this.ttl = options.instanceTtlMs ?? 10_000;
    this.timer = setInterval(() => void this.heartbeat().catch(() => undefined), options.heartbeatMs ?? Math.max(100, Math.floor(this.ttl / 4)));
    this.timer.unref();
  }

  static async open(url: string, options: RedisLimiterOptions = {}): Promise<RedisConcurrencyLimiter> {
    const redisOptions: RedisOptions = {
      lazyConnect: true,
      connectTimeout: 5000,
      commandTimeout: options.commandTimeoutMs ?? 300,
      // Not queued while disconnected: an acquire then fails at once and falls back to the local count.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(50 * 2 ** times, 1000),
      scripts: {
        wabCcAcquire: { lua: ACQUIRE, numberOfKeys: 0 },
        wabCcRelease: { lua: RELEASE, numberOfKeys: 0 },
        wabCcHeartbeat: { lua: HEARTBEAT, numberOfKeys: 0 },
        wabRateTake: { lua: RATE_TAKE, numberOfKeys: 0 },
      },
    };
    const { Redis } = await import('ioredis');
    const redis = new Redis(url, redisOptions) as Redis & Scripts;
    redis.on('error', () => undefined);
    await redis.connect();
    const limiter = new RedisConcurrencyLimiter(redis, options);
    await limiter.heartbeat();
    return limiter;
  }

  async acquire(tenant: string, limit: number): Promise<boolean> {
    const mine = this.held.get(tenant) ?? 0;
    // Counted locally first: a heartbeat in between then writes at least what Redis is about to hold.
    this.held.set(tenant, mine + 1);
    let ok: boolean;
    try {
      ok = (await this.redis.wabCcAcquire(this.prefix, escTenant(tenant), this.instanceId, limit, this.ttl)) === 1;
    } catch (e) {
      this.options.onFallback?.(tenant, e as Error);
      ok = mine < limit;
    }
    if (!ok) this.dec(tenant);
    return ok;
  }

  async release(tenant: string): Promise<void> {
    this.dec(tenant);
    // A failed release is healed by the next heartbeat, which writes the local count.
    await this.redis.wabCcRelease(this.prefix, escTenant(tenant), this.instanceId).catch(() => undefined);
  }

  local(tenant: string): number {
    return this.held.get(tenant) ?? 0;
  }

  /** The fleet-wide BSP rate limit, on this limiter's connection and prefix (closed with it). */
  readonly rate: RateLimiter = {
    take: (tenant, perSecond, maxWaitMs) => {
      const attempt = async (): Promise<RateAttempt> => {
        if (this.closed) return this.localRate.count(tenant);
        try {
          const [n, msLeft] = await this.redis.wabRateTake(this.prefix, escTenant(tenant));
          return { n: Number(n), msLeft: Number(msLeft) };
        } catch (e) {
          this.options.onRateFallback?.(tenant, e as Error);
          return this.localRate.count(tenant);
        }
      };
      return takeLoop(attempt, perSecond, maxWaitMs, Date.now, sleepMs);
    },
    close: async () => undefined,
  };

  private readonly localRate = new LocalRateLimiter();

  private dec(tenant: string): void {
    const n = (this.held.get(tenant) ?? 1) - 1;
    if (n <= 0) this.held.delete(tenant);
    else this.held.set(tenant, n);
  }

  private known = new Set<string>();

  /** Refreshes liveness and re-writes this instance's counts (0 for tenants it no longer holds). */
  async heartbeat(): Promise<void> {
    if (this.closed) return;
    const pairs: (string | number)[] = [];
    for (const tenant of new Set([...this.known, ...this.held.keys()])) pairs.push(escTenant(tenant), this.held.get(tenant) ?? 0);
    await this.redis.wabCcHeartbeat(this.prefix, this.instanceId, this.ttl, ...pairs);
    this.known = new Set(this.held.keys());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    // Leaving: our slots are no longer ours (requests still in flight are past the drain anyway).
    await this.redis.del(`${this.prefix}cci:${this.instanceId}`).catch(() => undefined);
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}
