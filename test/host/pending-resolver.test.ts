// Late correlations: a status whose BSP id has no msgId yet is looked up again with a doubling delay,
// becomes the same outbox callback it would have been on time, or ends as "unmatched" after the window.
import t, { type Test } from 'tap';
import { statusCallbackFor } from '../../engine/host/callbacks.js';
import { PendingResolver } from '../../engine/host/pending-resolver.js';
import { projectSchema, validatorFor } from '../../engine/mapping/schema-validator.js';
import { openSqliteStore } from '../../engine/stores/sqlite.js';
import type { NewPending, Store } from '../../engine/stores/store.js';
import type { StatusEvent } from '../../engine/mapping/webhook.js';

const validStatus = validatorFor(projectSchema('clevertap/status-callback.schema.json'));
const T0 = 1_700_000_000_000;

function pending(providerMessageId: string, extra: Partial<StatusEvent> = {}): NewPending {
  const event: StatusEvent = { event: 'status', providerMessageId, status: 'delivered', timestamp: '1700000000', ...extra };
  return { tenant: 'acme', providerMessageId, event, dedupeKey: `acme|${providerMessageId}|${event.status}`, mappingVersion: 'v3' };
}

function setup(t: Test) {
  const store: Store = openSqliteStore(':memory:');
  const clock = { now: T0 };
  const unmatched: string[] = [];
  const resolved: string[] = [];
  const resolver = new PendingResolver({
    store,
    now: () => clock.now,
    windowMs: 10_000,
    onUnmatched: (p) => unmatched.push(p.providerMessageId),
    onResolved: (p, msgId) => resolved.push(`${p.providerMessageId}→${msgId}`),
  });
  t.teardown(async () => {
    await resolver.stop();
    await store.close();
  });
  return { store, clock, resolver, unmatched, resolved };
}

t.test('a correlation already there: resolved on the first round into the on-time callback', async (t) => {
  const { store, resolver, resolved } = setup(t);
  const p = pending('w1', { status: 'failed', error: { code: 1002, title: 'Invalid phone number' } });
  await store.ingest({ callbacks: [], pending: [p] }, T0);
  await store.saveCorrelation('acme', 'w1', 'm1', 60_000);
  t.equal(await resolver.runOnce(), 1);
  t.same(resolved, ['w1→m1']);
  const [cb] = await store.claimDue(T0, 10, 1000);
  const onTime = statusCallbackFor('acme', 'm1', p.event, 'v3');
  t.match(cb, { tenant: 'acme', kind: 'status', msgId: 'm1', rank: onTime.rank, dedupeKey: onTime.dedupeKey, mappingVersion: 'v3' });
  t.same(cb?.payload, onTime.payload);
  t.ok(validStatus({ payloadVersion: '0.1', statuses: [cb?.payload] }), 'a valid CleverTap status entry');
  t.match(await store.stats(), { pendingLookups: 0, unmatched: 0, outboxPending: 1 });
});

t.test('not found: looked up again after 250 ms, doubling to 30 s; found later', async (t) => {
  const { store, clock, resolver, resolved } = setup(t);
  const r = new PendingResolver({ store, now: () => clock.now, windowMs: 600_000 });
  await store.ingest({ callbacks: [], pending: [pending('w1')] }, T0);
  const schedule: number[] = [];
  for (let i = 0; i < 10; i++) {
    await r.runOnce();
    const [next] = await store.duePending(Number.MAX_SAFE_INTEGER, 1);
    schedule.push((next?.nextLookupAt ?? 0) - clock.now);
    clock.now = next?.nextLookupAt ?? clock.now;
  }
  t.same(schedule, [250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  t.equal(await r.runOnce(), 1, 'due again');
  clock.now += 29_999;
  t.equal(await r.runOnce(), 0, 'not before its time');
  await store.saveCorrelation('acme', 'w1', 'm1', 60_000);
  clock.now += 1;
  await resolver.runOnce();
  t.same(resolved, ['w1→m1']);
  t.match(await store.stats(), { pendingLookups: 0, outboxPending: 2 }, 'delivered, and the sent it implies');
});

t.test('after the window: unmatched, kept visible, no longer looked up', async (t) => {
  const { store, clock, resolver, unmatched } = setup(t);
  await store.ingest({ callbacks: [], pending: [pending('w1'), pending('w2', { status: 'read' })] }, T0);
  await store.saveCorrelation('acme', 'w2', 'm2', 60_000);
  let rounds = 0;
  for (; rounds < 50 && unmatched.length === 0; rounds++) {
    await resolver.runOnce();
    const [next] = await store.duePending(Number.MAX_SAFE_INTEGER, 1);
    if (next) clock.now = next.nextLookupAt;
  }
  t.equal(clock.now, T0 + 10_000, 'the last look-up is exactly at the end of the window');
  t.same(unmatched, ['w1']);
  t.match(await store.listUnmatched(10), [{ providerMessageId: 'w1', unmatched: true, attempts: rounds }]);
  t.match(await store.stats(), { pendingLookups: 0, unmatched: 1, outboxPending: 3 }, "w2's read, with the delivered and sent it implies");
  clock.now += 3_600_000;
  t.equal(await resolver.runOnce(), 0);
});

t.test('start() polls and stop() waits for the round in flight', async (t) => {
  const store = openSqliteStore(':memory:');
  t.teardown(() => store.close());
  const resolver = new PendingResolver({ store, pollMs: 5 });
  await store.ingest({ callbacks: [], pending: [pending('w1')] }, Date.now());
  resolver.start();
  await store.saveCorrelation('acme', 'w1', 'm1', 60_000);
  for (let i = 0; i < 200 && (await store.stats()).outboxPending === 0; i++) await new Promise((r) => setTimeout(r, 10));
  await resolver.stop();
  t.match(await store.stats(), { pendingLookups: 0, outboxPending: 2 });
});

t.test('a resolved status brings what it implies; lower ones of the same message resolve first', async (t) => {
  const { store, resolver } = setup(t);
  // Arrival order read, sent: the read alone would release a sent stamped with its own time.
  await store.ingest({ callbacks: [], pending: [pending('w1', { status: 'read', timestamp: '1700000300' }), pending('w1', { status: 'sent', timestamp: '1700000100' })] }, T0);
  await store.ingest({ callbacks: [], pending: [pending('w2', { status: 'read', timestamp: '1700000300' })] }, T0);
  await store.saveCorrelation('acme', 'w1', 'm1', 60_000);
  await store.saveCorrelation('acme', 'w2', 'm2', 60_000);
  t.equal(await resolver.runOnce(), 3);
  const got: string[] = [];
  for (let now = T0; ; now += 10) {
    const due = await store.claimDue(now, 10, 1000);
    if (due.length === 0) break;
    for (const r of due) {
      const e = r.payload as { status: string; timestamp: string };
      got.push(`${r.msgId} ${e.status} ${e.timestamp}${r.implied ? ' implied' : ''}`);
      t.ok(validStatus({ payloadVersion: '0.1', statuses: [r.payload] }), 'a valid CleverTap status entry');
    }
    await store.markDelivered(due.map((r) => r.id), now);
  }
  t.same(got.sort(), [
    'm1 delivered 1700000300 implied',
    'm1 read 1700000300',
    'm1 sent 1700000100',
    'm2 delivered 1700000300 implied',
    'm2 read 1700000300',
    'm2 sent 1700000300 implied',
  ]);
});
