// The stores' cost per status over its whole life in the outbox: ingested (group commit, as a
// webhook's events are), claimed by a delivery round, marked delivered. An investigation tool for
// store changes, not part of `npm run bench`: SQLite (a file in the temp folder) and, when a Redis
// answers at REDIS_URL (default redis://127.0.0.1:6379), the Redis store under a throwaway key prefix,
// one after the other in this process. For Redis the server's own CPU (INFO cpu) is counted too.
//   node --import tsx bench/store.ts [statuses per round, default 3000] [--sqlite-only]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { openRedisStore } from '../engine/stores/redis.js';
import { openSqliteStore } from '../engine/stores/sqlite.js';
import type { Store } from '../engine/stores/store.js';

const args = process.argv.slice(2);
const perRound = Number(args.find((a) => /^[0-9]+$/.test(a)) ?? 3000);
// As a busy service sees them: webhooks arrive ~25 per turn of the event loop, a delivery round claims up to 100.
const WEBHOOKS_PER_TURN = 25;
const CLAIM = 100;
const ROUNDS = 3;

interface Figures {
  ingest_us: number;
  claim_us: number;
  delivered_us: number;
  cpu_us: number;
  wall_us: number;
  server_cpu_us?: number;
}

const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};

async function lifecycle(store: Store): Promise<Figures> {
  const spent = { ingest: 0, claim: 0, delivered: 0 };
  let now = Date.now();
  const started = performance.now();
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < perRound; i += WEBHOOKS_PER_TURN) {
      let t = cpuMs();
      const writes: Promise<unknown>[] = [];
      for (let k = 0; k < WEBHOOKS_PER_TURN; k++) {
        const msgId = `m${round}-${i + k}`;
        const payload = { msgId, status: 'sent', timestamp: '1700000000', wabaNumber: '15550001111' };
        writes.push(store.ingest({ callbacks: [{ tenant: 'demo', kind: 'status', msgId, rank: 1, payload, dedupeKey: `demo|${msgId}|sent`, mappingVersion: 'v1' }], pending: [] }, now));
      }
      await Promise.all(writes);
      spent.ingest += cpuMs() - t;
      t = cpuMs();
      const due = await store.claimDue(now, CLAIM, 30_000);
      spent.claim += cpuMs() - t;
      t = cpuMs();
      await store.markDelivered(
        due.map((d) => d.id),
        now,
      );
      spent.delivered += cpuMs() - t;
      now += 1;
    }
  }
  const wall = performance.now() - started;
  const n = ROUNDS * perRound;
  const stats = await store.stats();
  if (stats.delivered !== n) throw new Error(`expected ${n} delivered, the store has ${stats.delivered}`);
  const us = (ms: number) => Math.round((ms * 1000 * 10) / n) / 10;
  return { ingest_us: us(spent.ingest), claim_us: us(spent.claim), delivered_us: us(spent.delivered), cpu_us: us(spent.ingest + spent.claim + spent.delivered), wall_us: us(wall) };
}

async function serverCpuMs(r: Redis): Promise<number> {
  const info = await r.info('cpu');
  const read = (k: string) => Number(new RegExp(`^${k}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0);
  return (read('used_cpu_sys') + read('used_cpu_user')) * 1000;
}

const line = (name: string, f: Figures) =>
  `${name.padEnd(6)} per status: ingest ${f.ingest_us} µs, claim ${f.claim_us} µs, delivered ${f.delivered_us} µs CPU here = ${f.cpu_us} µs` +
  `${f.server_cpu_us !== undefined ? ` + ${f.server_cpu_us} µs in redis-server` : ''}; ${f.wall_us} µs wall`;

const out: Record<string, unknown> = { statuses: ROUNDS * perRound };
const dir = mkdtempSync(join(tmpdir(), 'wabridge-store-bench-'));
try {
  const sqlite = openSqliteStore(join(dir, 'bench.db'));
  try {
    out.sqlite = await lifecycle(sqlite);
    console.log(line('sqlite', out.sqlite as Figures));
  } finally {
    await sqlite.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

if (!args.includes('--sqlite-only')) {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const probe = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  const reachable = await probe.connect().then(
    () => true,
    () => false,
  );
  if (!reachable) {
    console.log(`redis: skipped, nothing answers at ${url}`);
  } else {
    const prefix = `wabridge-store-bench:${randomBytes(6).toString('hex')}:`;
    const store = await openRedisStore(url, { prefix });
    try {
      const before = await serverCpuMs(probe);
      const f = await lifecycle(store);
      f.server_cpu_us = Math.round(((await serverCpuMs(probe)) - before) * 10000 / (ROUNDS * perRound)) / 10;
      out.redis = f;
      console.log(line('redis', f));
    } finally {
      await store.close();
      // this run's keys only: the Redis may be shared
      let cursor = '0';
      do {
        const [next, keys] = await probe.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await probe.unlink(...keys);
      } while (cursor !== '0');
    }
  }
  probe.disconnect();
}
console.log(JSON.stringify(out));
