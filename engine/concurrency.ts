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
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';

export interface ConcurrencyLimiter {
  /** Takes a slot of `tenant` when fewer than `limit` are taken; false = refuse (429). */
  acquire(tenant: string, limit: number): Promise<boolean>;
  /** Gives back a slot taken by acquire (call exactly once per successful acquire). */
  release(tenant: string): Promise<void>;
  /** Slots this process holds now, per tenant (admin status). */
  local(tenant: string): number;
  close(): Promise<void>;
}

/** One process: a Map, what engine/server.ts did before. */
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

type Scripts = {
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
      },
    };
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
