// What the status path costs the store, as counts (bench/status-path.ts): every status of every
// message still reaches the sink once, a webhook's statuses share one look-up and one ingest, a
// resolver round's writes share one SQLite sync, and a delivery round's deliveries share one mark.
// Needs Redis for the Redis half (REDIS_URL, default redis://127.0.0.1:6379); skipped without one.
import t from 'tap';
import { measureRedis, measureSqlite, type PathCost, type Scenario } from '../../bench/status-path.js';
import { probeRedis } from '../support/fleet.js';

const N = 8;
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const total = (c: PathCost, method: string) => Math.round((c.calls[method] ?? 0) * c.messages);


const stores: [string, (s: Scenario, n: number) => Promise<PathCost>][] = [['sqlite', measureSqlite]];
const redis = await probeRedis(url);
redis?.disconnect();
if (redis) stores.push(['redis', (s, n) => measureRedis(s, n, url)]);
else t.comment(`no Redis at ${url}: the Redis half is skipped`);

for (const [name, measure] of stores) {
  t.test(`${name}: one status per webhook`, async (t) => {
    const c = await measure('one-per-webhook', N);
    t.equal(c.delivered, 3 * N, 'sent, delivered and read of every message at the sink');
    t.equal(total(c, 'findMsgIds'), 3 * N, 'one look-up per webhook');
    t.equal(total(c, 'findMsgId'), 0, 'none per status');
    t.equal(total(c, 'ingest'), 3 * N);
    t.equal(total(c, 'markDelivered'), 3, 'one mark per delivery round (sent, then delivered, then read of every message)');
    if (name === 'sqlite') t.equal(Math.round(c.syncs! * N), 3 * N + 3, 'one WAL sync per webhook and per delivery round');
  });

  t.test(`${name}: every status in one webhook`, async (t) => {
    const c = await measure('batched', N);
    t.equal(c.delivered, 3 * N);
    t.equal(total(c, 'findMsgIds'), 1, 'the whole batch looked up in one call');
    t.equal(total(c, 'ingest'), 1);
    if (name === 'redis') t.equal(Math.round(c.redisCommands! * N), total(c, 'findMsgIds') + total(c, 'ingest') + total(c, 'claimDue') + total(c, 'markDelivered'), 'one Redis command per store call');
  });

  t.test(`${name}: read before the others`, async (t) => {
    const c = await measure('read-first', N);
    t.equal(c.delivered, 3 * N, 'the implied sent and delivered, then read; the real ones later are duplicates');
  });

  t.test(`${name}: every status before its correlation`, async (t) => {
    const c = await measure('held', N);
    t.equal(c.delivered, 3 * N, 'held, resolved, delivered');
    t.equal(total(c, 'findMsgIds'), 3 * N + 1, 'one look-up per webhook, one for the whole resolver round');
    t.equal(total(c, 'resolvePending'), 3 * N);
    if (name === 'sqlite') t.equal(Math.round(c.syncs! * N), 3 * N + 1 + 3, 'the resolver round’s resolutions share one WAL sync');
  });
}
