// The Redis store: the shared Store contract, plus what only a shared Redis has — several instances
// claiming at once, leases outliving a crashed instance, expiry by Redis itself, a connection that
// drops. Needs a Redis (REDIS_URL, default redis://127.0.0.1:6379); without one the file is skipped.
// Every store here gets its own random key prefix, and the keys are deleted at the end (SCAN +
// UNLINK under this run's prefix only: the Redis may be shared).
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { openRedisStore, redactRedisUrl } from '../../engine/stores/redis.js';
import type { CallbackRecord, NewCallback, Store } from '../../engine/stores/store.js';
import { storeContract } from './store-contract.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const run = `wabtest:${randomBytes(6).toString('hex')}:`;
let seq = 0;
const freshPrefix = () => `${run}${seq++}:`;
const T0 = 1_700_000_000_000;
const LEASE = 30_000;

/** A connection that gives up within 1 s, or undefined when Redis is not there. */
async function probe(): Promise<Redis | undefined> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 1000, commandTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await Promise.race([r.connect().then(() => r.ping()), sleep(1000).then(() => Promise.reject(new Error('timeout')))]);
    return r;
  } catch {
    r.disconnect();
    return undefined;
  }
}

async function deleteKeys(r: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) n += await r.unlink(...keys);
  } while (cursor !== '0');
  return n;
}

const status = (msgId: string, s: 'sent' | 'delivered' | 'read', rank: number): NewCallback => ({
  tenant: 'acme',
  kind: 'status',
  msgId,
  rank,
  payload: { msgId, status: s, timestamp: '1700000000' },
  dedupeKey: `acme|${msgId}|${s}`,
});
const incoming = (id: string): NewCallback => ({ tenant: 'acme', kind: 'incoming', rank: 0, payload: { text: { body: id } }, dedupeKey: `acme|in|${id}` });

const admin = await probe();
if (!admin) {
  t.plan(0, `Redis not reachable at ${redactRedisUrl(url)}: Redis store tests skipped`);
} else {
  t.teardown(async () => {
    await deleteKeys(admin, run);
    admin.disconnect();
  });

  storeContract(t, 'redis', () => openRedisStore(url, { prefix: freshPrefix() }));

  /** Stores sharing one prefix: instances of one fleet. */
  const fleet = async (t: Test, n: number, prefix = freshPrefix()): Promise<Store[]> => {
    const stores = await Promise.all(Array.from({ length: n }, () => openRedisStore(url, { prefix })));
    t.teardown(() => Promise.all(stores.map((s) => s.close())));
    return stores;
  };

  t.test('redis: instances ingesting the same webhooks at once accept each callback once', async (t) => {
    const [a, b] = (await fleet(t, 2)) as [Store, Store];
    const batches = Array.from({ length: 50 }, (_, i) => [status(`m${i}`, 'sent', 1), status(`m${i}`, 'delivered', 2), incoming(`x${i}`)]);
    const results = await Promise.all(batches.flatMap((callbacks) => [a.ingest({ callbacks, pending: [] }, T0), b.ingest({ callbacks, pending: [] }, T0)]));
    t.equal(results.reduce((n, r) => n + r.accepted, 0), 150, 'each callback accepted by exactly one instance');
    t.equal(results.reduce((n, r) => n + r.duplicates, 0), 150);
    t.ok(
      results.every((r) => r.accepted === 0 || r.accepted === 3),
      'a webhook is taken whole by one instance (dedupe check and enqueue are one step)',
    );
    t.match(await b.stats(), { outboxPending: 150 });
  });

  t.test('redis: instances claiming at once never get the same callback, and each msgId stays in order', async (t) => {
    const stores = await fleet(t, 3);
    const [a] = stores as [Store];
    const N = 150;
    // Ranks arrive backwards (read first), so only the store's ordering puts sent first.
    for (const s of ['read', 'delivered', 'sent'] as const) {
      const rank = { sent: 1, delivered: 2, read: 3 }[s];
      await a.ingest({ callbacks: Array.from({ length: N }, (_, i) => status(`m${i}`, s, rank)), pending: [] }, T0);
    }
    await a.ingest({ callbacks: Array.from({ length: 50 }, (_, i) => incoming(`in${i}`)), pending: [] }, T0);

    const order = new Map<string, string[]>();
    const seen = new Set<string>();
    let duplicates = 0;
    let sameMsgIdInFlight = 0;
    for (let round = 0, now = T0; round < 200; round++, now++) {
      // Two claimers per instance, all at once.
      const claims = await Promise.all(stores.flatMap((s) => [s.claimDue(now, 20, LEASE), s.claimDue(now, 20, LEASE)]));
      const all: CallbackRecord[] = claims.flat();
      if (all.length === 0) break;
      const inFlight = new Set<string>();
      for (const r of all) {
        if (seen.has(r.id)) duplicates++;
        seen.add(r.id);
        if (r.msgId !== undefined && r.rank > 0) {
          if (inFlight.has(r.msgId)) sameMsgIdInFlight++;
          inFlight.add(r.msgId);
          order.set(r.msgId, [...(order.get(r.msgId) ?? []), (r.payload as { status: string }).status]);
        }
      }
      // Each claimer reports through its own instance.
      await Promise.all(claims.map((got, i) => (stores[Math.floor(i / 2)] as Store).markDelivered(got.map((r) => r.id), now)));
    }
    t.equal(duplicates, 0, 'no callback claimed twice');
    t.equal(sameMsgIdInFlight, 0, 'never two callbacks of one msgId in flight');
    t.equal(seen.size, 3 * N + 50, 'everything delivered');
    t.ok(
      [...order.values()].every((o) => o.join() === 'sent,delivered,read'),
      'every msgId in rank order',
    );
    t.match(await a.stats(), { outboxPending: 0, delivered: 3 * N + 50 });
  });

  t.test('redis: a crashed instance loses its lease; another takes the callback over', async (t) => {
    const prefix = freshPrefix();
    const crashed = await openRedisStore(url, { prefix });
    const [survivor] = (await fleet(t, 1, prefix)) as [Store];
    await crashed.ingest({ callbacks: [status('m1', 'sent', 1), status('m1', 'delivered', 2), incoming('a')], pending: [] }, T0);
    const claimed = await crashed.claimDue(T0, 10, 5000);
    t.equal(claimed.length, 2);
    await crashed.close(); // never reports back
    t.same(await survivor.claimDue(T0 + 4999, 10, LEASE), [], 'nothing while the lease runs, not even the next status of m1');
    const taken = await survivor.claimDue(T0 + 5000, 10, LEASE);
    t.same(taken.map((r) => r.id).sort(), claimed.map((r) => r.id).sort(), 'the same callbacks, once the lease is over');
    await survivor.markDelivered(taken.map((r) => r.id), T0 + 5000);
    t.match(await survivor.claimDue(T0 + 5001, 10, LEASE), [{ msgId: 'm1', rank: 2 }]);
  });

  t.test('redis: correlations, dedupe keys and msgId progress expire by Redis TTL', async (t) => {
    const prefix = freshPrefix();
    const [s] = (await fleet(t, 1, prefix)) as [Store];
    await s.saveCorrelation('acme', 'wamid.long', 'm1', 100_000);
    const pttl = await admin.pttl(`${prefix}c:acme:wamid.long`);
    t.ok(pttl > 99_000 && pttl <= 100_000, `PTTL ${pttl}`);
    await s.saveCorrelation('acme', 'wamid.short', 'm2', 150);
    t.equal(await s.findMsgIds('acme', ['wamid.short']).then((m) => m[0]), 'm2');
    await sleep(250);
    t.equal(await s.findMsgIds('acme', ['wamid.short']).then((m) => m[0]), undefined, 'gone after its TTL');
    t.equal(await admin.exists(`${prefix}c:acme:wamid.short`), 0, 'removed by Redis, no sweep needed');
    await s.saveCorrelation('te:nant', 'x', 'm3', 60_000);
    t.equal(await s.findMsgIds('te:nant', ['x']).then((m) => m[0]), 'm3', 'a tenant with a colon gets its own keys');
    t.equal(await s.findMsgIds('te', ['nant:x']).then((m) => m[0]), undefined);

    const ttlStore = await openRedisStore(url, { prefix, dedupeTtlMs: 200 });
    t.teardown(() => ttlStore.close());
    await ttlStore.ingest({ callbacks: [status('m9', 'sent', 1)], pending: [] }, T0);
    const dttl = await admin.pttl(`${prefix}d:acme|m9|sent`);
    t.ok(dttl > 0 && dttl <= 200, `dedupe PTTL ${dttl}`);
    const got = await ttlStore.claimDue(T0, 1, LEASE);
    await ttlStore.markDelivered(got.map((r) => r.id), T0);
    t.ok((await admin.pttl(`${prefix}m:acme:m9`)) > 0, 'msgId progress has a TTL too');
    await sleep(250);
    t.same(await ttlStore.ingest({ callbacks: [status('m9', 'sent', 1)], pending: [] }, T0), { accepted: 1, duplicates: 0, implied: 0 }, 'an expired dedupe key is a new callback');
  });

  t.test('redis: ping fails fast while Redis is unreachable, commands wait a bounded time, both recover', async (t) => {
    // A loopback proxy to Redis that the test can cut: the shared Redis itself is never disturbed.
    const target = new URL(url);
    const sockets = new Set<Socket>();
    const listen = (port: number) =>
      new Promise<Server>((resolve) => {
        const server = createServer((client) => {
          const upstream = connect(Number(target.port || 6379), target.hostname);
          for (const s of [client, upstream]) {
            sockets.add(s);
            s.on('error', () => undefined);
            s.on('close', () => sockets.delete(s));
          }
          client.pipe(upstream).pipe(client);
        });
        server.listen(port, '127.0.0.1', () => resolve(server));
      });
    let proxy = await listen(0);
    const address = proxy.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const cut = () => new Promise<void>((resolve) => {
      proxy.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
    t.teardown(cut);
    const proxied = new URL(url);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(port);
    const s = await openRedisStore(proxied.toString(), { prefix: freshPrefix(), commandTimeoutMs: 400, pingTimeoutMs: 300 });
    t.teardown(() => s.close());
    await t.resolves(s.ping());

    await cut();
    await sleep(50);
    let started = performance.now();
    await t.rejects(s.ping(), /Redis not connected/);
    await t.rejects(s.claimDue(T0, 10, LEASE), /Redis not connected/, 'a poll is not queued either');
    t.ok(performance.now() - started < 50, 'ping and the poll answer at once');
    started = performance.now();
    await t.rejects(s.findMsgIds('acme', ['w1']).then((m) => m[0]), /timed out/i);
    const waited = performance.now() - started;
    t.ok(waited >= 350 && waited < 1500, `a command waited ${waited.toFixed(0)} ms, then failed`);

    proxy = await listen(port);
    for (let i = 0; i < 40; i++) {
      if (await s.ping().then(() => true, () => false)) break;
      await sleep(50);
    }
    await t.resolves(s.ping(), 'ready again once Redis is back');
    t.equal(await s.findMsgIds('acme', ['w1']).then((m) => m[0]), undefined);
  });

  t.test('redis: opening fails clearly when Redis is not there, without leaking the password', async (t) => {
    const closed = await new Promise<number>((resolve) => {
      const srv = createServer();
      srv.listen(0, '127.0.0.1', () => {
        const a = srv.address();
        srv.close(() => resolve(typeof a === 'object' && a ? a.port : 1));
      });
    });
    const started = performance.now();
    const error = await openRedisStore(`redis://:hunter2@127.0.0.1:${closed}`, { connectTimeoutMs: 500 }).then(
      (s) => s.close().then(() => undefined),
      (e: unknown) => e as Error,
    );
    t.match(error?.message, /^cannot connect to Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/?: /);
    t.notMatch(error?.message, /hunter2/);
    t.ok(performance.now() - started < 2000);
    t.equal(redactRedisUrl('redis://user:secret@h:6379/2'), 'redis://user:***@h:6379/2');
  });

  t.test('redis: throughput with 10k due callbacks', async (t) => {
    const [s] = (await fleet(t, 1)) as [Store];
    const N = 8000; // in batches; with the M below, 10k due callbacks
    let started = performance.now();
    for (let i = 0; i < N; i += 100) {
      await s.ingest({ callbacks: Array.from({ length: 100 }, (_, j) => status(`b${i + j}`, 'sent', 1)), pending: [] }, T0);
    }
    const batched = N / ((performance.now() - started) / 1000);
    // Webhook-sized: one callback per ingest, 16 in flight (a busy instance).
    const M = 2000;
    started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < M) {
          const i = next++;
          await s.ingest({ callbacks: [status(`w${i}`, 'delivered', 2)], pending: [] }, T0);
        }
      }),
    );
    const single = M / ((performance.now() - started) / 1000);
    t.match(await s.stats(), { outboxPending: N + M });

    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const got = await s.claimDue(T0 + 10, 100, LEASE);
      times.push(performance.now() - t0);
      t.equal(got.length, 100);
    }
    times.sort((x, y) => x - y);
    const median = times[10] ?? 0;
    const max = times[19] ?? 0;
    // Drain the rest as a worker would: claim 100, mark them delivered, again.
    started = performance.now();
    let drained = 0; // the 2000 claimed above too: their lease is over by then
    for (;;) {
      const got = await s.claimDue(T0 + LEASE + 10, 100, LEASE);
      if (got.length === 0) break;
      await s.markDelivered(got.map((r) => r.id), T0 + LEASE + 10);
      drained += got.length;
    }
    const drainRate = (N + M) / ((performance.now() - started) / 1000);
    t.equal(drained, N + M);
    t.match(await s.stats(), { outboxPending: 0, delivered: N + M });
    t.comment(`ingest: ${batched.toFixed(0)} callbacks/s in batches of 100; ${single.toFixed(0)} webhooks/s of one callback (16 concurrent)`);
    t.comment(`claimDue(100) with ${N + M} due: median ${median.toFixed(1)} ms, max ${max.toFixed(1)} ms; claim+deliver drain ${drainRate.toFixed(0)} callbacks/s`);
    t.ok(median < 100, `claimDue(100) median ${median.toFixed(1)} ms`);
  });

  t.test('redis: the test keys are removed afterwards (SCAN + UNLINK under this run only)', async (t) => {
    // Contract stores were closed by their own teardowns; nothing else of this run is open now.
    await deleteKeys(admin, run);
    const [, left] = await admin.scan('0', 'MATCH', `${run}*`, 'COUNT', 100_000);
    t.same(left, []);
  });
}
