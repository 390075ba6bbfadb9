// The SQLite store's CPU per status over its whole life in the outbox: ingested (group commit, as a
// webhook's events are), claimed by a delivery round, marked delivered. An investigation tool for
// store changes, not part of `npm run bench` (it measures one component, in absolute µs; compare two
// builds run one after the other on the same machine).
//   node --import tsx bench/store.ts [statuses per round, default 3000] [--memory]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../engine/store-sqlite.js';

const args = process.argv.slice(2);
const perRound = Number(args.find((a) => /^[0-9]+$/.test(a)) ?? 3000);
const dir = mkdtempSync(join(tmpdir(), 'wabridge-store-bench-'));
const store = openSqliteStore(args.includes('--memory') ? ':memory:' : join(dir, 'bench.db'));
// As a busy service sees them: webhooks arrive ~25 per turn of the event loop, a delivery round claims up to 100.
const WEBHOOKS_PER_TURN = 25;
const CLAIM = 100;
const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};
const spent = { ingest: 0, claim: 0, delivered: 0 };
let now = Date.now();
const ROUNDS = 3;
try {
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
  const n = ROUNDS * perRound;
  const us = (ms: number) => Math.round((ms * 1000 * 10) / n) / 10;
  const figures = { store_ingest_us: us(spent.ingest), store_claim_us: us(spent.claim), store_delivered_us: us(spent.delivered), store_status_us: us(spent.ingest + spent.claim + spent.delivered), statuses: n };
  const stats = await store.stats();
  if (stats.delivered !== n) throw new Error(`expected ${n} delivered, the store has ${stats.delivered}`);
  console.log(`SQLite store, CPU per status: ingest ${figures.store_ingest_us} µs, claim ${figures.store_claim_us} µs, delivered ${figures.store_delivered_us} µs, total ${figures.store_status_us} µs (${n} statuses)`);
  console.log(JSON.stringify(figures));
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
