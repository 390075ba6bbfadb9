// What every Store must do, whatever it runs on: run it with storeContract(t, 'redis', open) for a new
// implementation. Times are explicit `now` values far from the real clock, so nothing sleeps; only
// correlation expiry reads the store's own clock (the interface passes no `now` there).
import type { Test } from 'tap';
import { statusRank, type CallbackRecord, type ClickLink, type NewCallback, type NewPending, type NewQuarantined, type Store, type TraceEvent } from '../../engine/stores/store.js';
import type { StatusEvent } from '../../engine/mapping/webhook.js';

const T0 = 1_700_000_000_000;
const LEASE = 30_000;

type Status = 'sent' | 'delivered' | 'read' | 'failed' | 'clicked';

function status(msgId: string, s: Status, tenant = 'acme', extra = '', timestamp = '1700000000'): NewCallback {
  const payload =
    s === 'clicked'
      ? { msgId, status: 'Clicked', url: 'https://x.test/a', shortUrl: 'https://x.test/a', userAgent: 'ua' }
      : s === 'failed'
        ? { msgId, status: s, timestamp, error: { code: 1009, title: 'Other' } }
        : { msgId, status: s, timestamp };
  return { tenant, kind: 'status', msgId, rank: statusRank(s), payload, dedupeKey: `${tenant}|${msgId}|${s}${extra}`, mappingVersion: 'v1' };
}

/** A chain status implied by a higher one that arrived first (the host builds these; see callbacks.ts). */
const implied = (msgId: string, s: 'sent' | 'delivered', timestamp = '1700000300', tenant = 'acme'): NewCallback => ({ ...status(msgId, s, tenant, '', timestamp), implied: true });

function incoming(id: string, tenant = 'acme'): NewCallback {
  const payload = { payloadVersion: '0.1', from: '919999999999', wabaNumber: '919888888888', timestamp: '1700000000', type: 'text', text: { body: id } };
  return { tenant, kind: 'incoming', rank: 0, payload, dedupeKey: `${tenant}|in|${id}` };
}

function pendingOf(providerMessageId: string, s: Status = 'delivered', tenant = 'acme'): NewPending {
  const event: StatusEvent = { event: 'status', providerMessageId, status: s, timestamp: '1700000000', recipient: '919999999999' };
  return { tenant, providerMessageId, event, dedupeKey: `${tenant}|${providerMessageId}|${s}`, mappingVersion: 'v2' };
}

/** "m1:sent" labels, to compare claims readably. */
const labels = (recs: CallbackRecord[]) =>
  recs.map((r) => {
    const p = r.payload as { status?: string; text?: { body: string } };
    return r.kind === 'status' ? `${r.msgId}:${p.status}${r.implied ? '*' : ''}` : `in:${p.text?.body}`;
  });
const ids = (recs: CallbackRecord[]) => recs.map((r) => r.id);

export function storeContract(t: Test, name: string, open: () => Promise<Store>): void {
  /** A fresh store per subtest, closed when it ends. */
  const withStore = (title: string, fn: (t: Test, s: Store) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const s = await open();
      t.teardown(() => s.close());
      await fn(t, s);
    });

  withStore('correlations: save, find, re-save, tenants apart, expiry', async (t, s) => {
    await s.saveCorrelation('acme', 'wamid.1', 'm1', 60_000);
    await s.saveCorrelation('acme', 'wamid.1', 'm1', 60_000);
    t.equal(await s.findMsgIds('acme', ['wamid.1']).then((m) => m[0]), 'm1');
    t.equal(await s.findMsgIds('other', ['wamid.1']).then((m) => m[0]), undefined, 'tenants do not share ids');
    t.equal(await s.findMsgIds('acme', ['wamid.2']).then((m) => m[0]), undefined);
    await s.saveCorrelation('acme', 'wamid.1', 'm1b', 60_000);
    t.equal(await s.findMsgIds('acme', ['wamid.1']).then((m) => m[0]), 'm1b', 'the latest pair wins');
    await s.saveCorrelation('acme', 'wamid.old', 'm0', 0);
    t.equal(await s.findMsgIds('acme', ['wamid.old']).then((m) => m[0]), undefined, 'an expired correlation is not found');
  });

  withStore('correlations: many at once, in the order asked, gaps, tenants apart, expiry', async (t, s) => {
    await s.saveCorrelation('acme', 'wamid.1', 'm1', 60_000);
    await s.saveCorrelation('acme', 'wamid.2', 'm2', 60_000);
    await s.saveCorrelation('other', 'wamid.3', 'm3', 60_000);
    await s.saveCorrelation('acme', 'wamid.old', 'm0', 0);
    const got = await s.findMsgIds('acme', ['wamid.2', 'wamid.x', 'wamid.1', 'wamid.3', 'wamid.old', 'wamid.2']);
    t.equal(got.length, 6, 'one answer per id asked');
    t.same(
      got.map((m) => m ?? null),
      ['m2', null, 'm1', null, null, 'm2'],
      'in order; unknown, another tenant’s and expired ids have none; a repeated id is answered twice',
    );
    t.same(await s.findMsgIds('acme', []), [], 'nothing asked, nothing answered');
    // Ids that would mean something to the store itself are only ids.
    await s.saveCorrelation('acme', 'constructor', 'm4', 60_000);
    t.same((await s.findMsgIds('acme', ['constructor', '__proto__', "x' OR 1=1 --", '*'])).map((m) => m ?? null), ['m4', null, null, null]);
  });

  withStore('ingest: counts, dedupe within and across calls, pending too', async (t, s) => {
    const first = await s.ingest({ callbacks: [status('m1', 'sent'), status('m1', 'sent'), incoming('a')], pending: [pendingOf('w1')] }, T0);
    t.same(first, { accepted: 3, duplicates: 1, implied: 0 });
    const again = await s.ingest({ callbacks: [status('m1', 'sent'), incoming('a'), status('m1', 'read')], pending: [pendingOf('w1'), pendingOf('w2')] }, T0 + 1000);
    t.same(again, { accepted: 2, duplicates: 3, implied: 0 });
    t.same(await s.ingest({ callbacks: [], pending: [] }, T0), { accepted: 0, duplicates: 0, implied: 0 }, 'an empty webhook is fine');
    t.match(await s.stats(), { outboxPending: 3, pendingLookups: 2, outboxDead: 0, unmatched: 0, delivered: 0 });
  });

  withStore('ingest is atomic: a failure half-way keeps nothing, not even dedupe keys', async (t, s) => {
    const bad: NewCallback = { ...status('m2', 'sent'), payload: { n: 1n } }; // BigInt: JSON cannot encode it
    await t.rejects(s.ingest({ callbacks: [status('m1', 'sent'), bad], pending: [pendingOf('w1')] }, T0));
    t.match(await s.stats(), { outboxPending: 0, pendingLookups: 0 });
    t.same(await s.ingest({ callbacks: [status('m1', 'sent')], pending: [pendingOf('w1')] }, T0), { accepted: 2, duplicates: 0, implied: 0 }, 'the keys were not recorded');
  });

  withStore('claimDue: a msgId goes in rank order, whatever the arrival order', async (t, s) => {
    await s.ingest({ callbacks: [status('m1', 'read'), status('m2', 'delivered')], pending: [] }, T0);
    await s.ingest({ callbacks: [status('m1', 'sent'), status('m2', 'sent')], pending: [] }, T0 + 1);
    await s.ingest({ callbacks: [status('m1', 'delivered')], pending: [] }, T0 + 2);
    const seen: string[][] = [];
    for (let now = T0 + 10; ; now += 10) {
      const got = await s.claimDue(now, 100, LEASE);
      if (got.length === 0) break;
      seen.push(labels(got).sort());
      await s.markDelivered(ids(got), now);
    }
    t.same(seen, [['m1:sent', 'm2:sent'], ['m1:delivered', 'm2:delivered'], ['m1:read']]);
    t.match(await s.stats(), { outboxPending: 0, delivered: 5 });
  });

  withStore('claimDue: what is superseded by a delivered higher rank is skipped', async (t, s) => {
    await s.ingest({ callbacks: [status('m1', 'read')], pending: [] }, T0);
    const read = await s.claimDue(T0, 10, LEASE);
    await s.markDelivered(ids(read), T0);
    await s.ingest({ callbacks: [status('m1', 'delivered'), status('m1', 'sent'), status('m1', 'failed'), status('m1', 'clicked')], pending: [] }, T0 + 1);
    const next = await s.claimDue(T0 + 2, 10, LEASE);
    t.same(labels(next).sort(), ['m1:Clicked', 'm1:failed'], 'sent and delivered skipped; same rank and rank 0 still go');
    t.match(await s.stats(), { outboxPending: 2, delivered: 1, outboxDead: 0 });
    await s.markDelivered(ids(next), T0 + 2);
    t.same(await s.claimDue(T0 + 3, 10, LEASE), []);
    t.match(await s.stats(), { outboxPending: 0, delivered: 3 });
  });

  /** Claims and delivers until nothing is due; the labels of each round. */
  const drain = async (s: Store, from: number): Promise<string[][]> => {
    const rounds: string[][] = [];
    for (let now = from; ; now += 10) {
      const got = await s.claimDue(now, 100, LEASE);
      if (got.length === 0) return rounds;
      rounds.push(labels(got).sort());
      await s.markDelivered(ids(got), now);
    }
  };

  withStore('implied: a higher status first releases the missing lower ones; the real ones later are duplicates', async (t, s) => {
    const read = status('m1', 'read', 'acme', '', '1700000300');
    t.same(await s.ingest({ callbacks: [read, implied('m1', 'sent'), implied('m1', 'delivered')], pending: [] }, T0), { accepted: 1, duplicates: 0, implied: 2 });
    t.match(await s.stats(), { outboxPending: 3 });
    const first = await s.claimDue(T0, 10, LEASE);
    t.same(labels(first), ['m1:sent*'], 'the implied sent goes first');
    t.match(first[0], { implied: true, rank: 1, dedupeKey: 'acme|m1|sent', mappingVersion: 'v1' });
    t.same(first[0]?.payload, { msgId: 'm1', status: 'sent', timestamp: '1700000300' }, 'the payload is the CleverTap entry only: no implied flag in it');
    await s.markDelivered(ids(first), T0);
    t.same(await drain(s, T0 + 10), [['m1:delivered*'], ['m1:read']]);
    t.same(await s.ingest({ callbacks: [status('m1', 'delivered'), status('m1', 'sent')], pending: [] }, T0 + 100), { accepted: 0, duplicates: 2, implied: 0 }, 'the real ones arriving later are duplicates');
    t.same(await s.ingest({ callbacks: [status('m1', 'read'), implied('m1', 'sent'), implied('m1', 'delivered')], pending: [] }, T0 + 200), { accepted: 0, duplicates: 1, implied: 0 }, 'a retried read implies nothing more');
    t.match(await s.stats(), { outboxPending: 0, delivered: 3 });
  });

  withStore('implied: never in place of a real status, whatever the order given or already queued', async (t, s) => {
    t.same(
      await s.ingest({ callbacks: [implied('m1', 'sent'), status('m1', 'delivered', 'acme', '', '1700000200'), status('m1', 'sent', 'acme', '', '1700000100')], pending: [] }, T0),
      { accepted: 2, duplicates: 0, implied: 0 },
      'real ones are taken first: the implied sent of the same webhook is dropped, not counted',
    );
    await s.ingest({ callbacks: [status('m2', 'sent', 'acme', '', '1700000100')], pending: [] }, T0 + 1);
    t.same(await s.ingest({ callbacks: [status('m2', 'read'), implied('m2', 'sent'), implied('m2', 'delivered'), implied('m2', 'delivered')], pending: [] }, T0 + 2), { accepted: 1, duplicates: 0, implied: 1 }, 'sent was queued: only delivered is implied, once');
    const all = await s.claimDue(T0 + 10, 10, LEASE);
    t.same(labels(all).sort(), ['m1:sent', 'm2:sent']);
    t.ok(all.every((r) => r.implied === undefined && (r.payload as { timestamp: string }).timestamp === '1700000100'), 'the real sents, with their own timestamps');
    await s.markDelivered(ids(all), T0 + 10);
    t.same(await drain(s, T0 + 20), [['m1:delivered', 'm2:delivered*'], ['m2:read']]);
  });

  withStore('implied: tenants apart, and statuses outside the chain are untouched', async (t, s) => {
    await s.ingest({ callbacks: [status('m1', 'read'), implied('m1', 'sent'), implied('m1', 'delivered')], pending: [] }, T0);
    t.same(await s.ingest({ callbacks: [status('m1', 'sent', 'beta'), status('m1', 'failed'), status('m1', 'clicked')], pending: [] }, T0 + 1), { accepted: 3, duplicates: 0, implied: 0 });
    t.same(await drain(s, T0 + 10), [['m1:Clicked', 'm1:sent', 'm1:sent*'], ['m1:delivered*'], ['m1:read'], ['m1:failed']]);
  });

  withStore('failed neither implies nor supersedes: a sent arriving after it still goes, in chain order', async (t, s) => {
    await s.ingest({ callbacks: [status('m1', 'failed')], pending: [] }, T0);
    t.same(await drain(s, T0), [['m1:failed']]);
    await s.ingest({ callbacks: [status('m1', 'delivered'), implied('m1', 'sent')], pending: [] }, T0 + 100);
    t.same(await drain(s, T0 + 100), [['m1:sent*'], ['m1:delivered']], 'a device may report delivered after failed');
    await s.ingest({ callbacks: [status('m2', 'failed'), status('m2', 'sent')], pending: [] }, T0 + 200);
    t.same(await drain(s, T0 + 200), [['m2:sent'], ['m2:failed']], 'queued together, failed goes after the chain');
  });

  withStore('pending look-ups under the same rules: a real status resolved after its implied twin adds nothing', async (t, s) => {
    await s.ingest({ callbacks: [], pending: [pendingOf('w1', 'sent'), pendingOf('w2', 'read')] }, T0);
    const due = await s.duePending(T0, 10);
    const [w1, w2] = [due.find((p) => p.providerMessageId === 'w1'), due.find((p) => p.providerMessageId === 'w2')];
    if (!w1 || !w2) throw new Error('missing pending');
    t.same(await s.ingest({ callbacks: [status('m1', 'read'), implied('m1', 'sent'), implied('m1', 'delivered')], pending: [] }, T0 + 1), { accepted: 1, duplicates: 0, implied: 2 });
    await s.resolvePending(w1.id, [status('m1', 'sent')], T0 + 2);
    t.match(await s.stats(), { pendingLookups: 1, outboxPending: 3 }, 'the look-up is gone, no second sent');
    await s.resolvePending(w2.id, [status('m2', 'read'), implied('m2', 'sent'), implied('m2', 'delivered')], T0 + 3);
    t.match(await s.stats(), { pendingLookups: 0, outboxPending: 6 });
    t.same(await drain(s, T0 + 10), [
      ['m1:sent*', 'm2:sent*'],
      ['m1:delivered*', 'm2:delivered*'],
      ['m1:read', 'm2:read'],
    ]);
  });

  withStore('claimDue: rank 0 neither waits nor blocks; incoming are independent', async (t, s) => {
    await s.ingest({ callbacks: [status('m1', 'sent')], pending: [] }, T0);
    const sent = await s.claimDue(T0, 10, LEASE);
    t.same(labels(sent), ['m1:sent']);
    await s.ingest({ callbacks: [status('m1', 'clicked'), incoming('a'), incoming('b'), status('m1', 'delivered')], pending: [] }, T0 + 1);
    t.same(labels(await s.claimDue(T0 + 2, 10, LEASE)).sort(), ['in:a', 'in:b', 'm1:Clicked'], 'delivered waits for the sent in flight; the rest goes');
  });

  withStore('claimDue: tenants with the same msgId are independent', async (t, s) => {
    await s.ingest({ callbacks: [status('m1', 'sent', 'acme'), status('m1', 'sent', 'beta')], pending: [] }, T0);
    const got = await s.claimDue(T0, 10, LEASE);
    t.same(got.map((r) => r.tenant).sort(), ['acme', 'beta']);
  });

  withStore('claimDue: limit, oldest due first, fields round-trip', async (t, s) => {
    for (let i = 0; i < 5; i++) await s.ingest({ callbacks: [status(`m${i}`, 'sent')], pending: [] }, T0 + i);
    const two = await s.claimDue(T0 + 10, 2, LEASE);
    t.same(labels(two), ['m0:sent', 'm1:sent']);
    t.match(two[0], { tenant: 'acme', kind: 'status', msgId: 'm0', rank: 1, dedupeKey: 'acme|m0|sent', mappingVersion: 'v1', createdAt: T0, attempts: 0, nextAttemptAt: T0 });
    t.same(two[0]?.payload, status('m0', 'sent').payload);
    t.equal(typeof two[0]?.id, 'string');
    t.same(await s.claimDue(T0 - 1, 10, LEASE), [], 'nothing is due before it was created');
  });

  withStore('leases: a claimed callback is not claimed again until the lease ends', async (t, s) => {
    await s.ingest({ callbacks: [status('m1', 'sent'), status('m1', 'delivered')], pending: [] }, T0);
    const a = await s.claimDue(T0, 10, LEASE);
    t.same(labels(a), ['m1:sent']);
    t.same(await s.claimDue(T0 + LEASE - 1, 10, LEASE), [], 'leased, and its msgId held');
    await s.ingest({ callbacks: [status('m2', 'sent')], pending: [] }, T0 + 1);
    t.same(labels(await s.claimDue(T0 + LEASE - 1, 10, LEASE)), ['m2:sent'], 'other msgIds go meanwhile');
    const b = await s.claimDue(T0 + LEASE, 10, LEASE);
    t.same(labels(b), ['m1:sent'], 'a worker that died loses its lease');
    t.equal(b[0]?.id, a[0]?.id);
  });

  withStore('markFailed: retried at nextAttemptAt, and the msgId waits for it', async (t, s) => {
    await s.ingest({ callbacks: [status('m1', 'sent'), status('m1', 'delivered')], pending: [] }, T0);
    const a = await s.claimDue(T0, 10, LEASE);
    await s.markFailed(ids(a), 'HTTP 503', T0 + 1000);
    t.same(await s.claimDue(T0 + 999, 10, LEASE), [], 'delivered does not overtake the sent being retried');
    const b = await s.claimDue(T0 + 1000, 10, LEASE);
    t.same(labels(b), ['m1:sent']);
    t.match(b[0], { attempts: 1, lastError: 'HTTP 503', nextAttemptAt: T0 + 1000 });
    await s.markFailed(ids(b), 'timeout', T0 + 3000);
    const c = await s.claimDue(T0 + 3000, 10, LEASE);
    t.match(c[0], { attempts: 2, lastError: 'timeout' });
  });

  withStore('dead letters: listed, no longer block, replayed', async (t, s) => {
    await s.ingest({ callbacks: [status('m1', 'sent'), status('m1', 'read'), incoming('a', 'beta')], pending: [] }, T0);
    const a = await s.claimDue(T0, 10, LEASE);
    t.same(labels(a).sort(), ['in:a', 'm1:sent']);
    await s.markDead(ids(a), 'HTTP 400: bad');
    t.match(await s.stats(), { outboxDead: 2, outboxPending: 1 });
    const dead = await s.listDead(10);
    t.same(labels(dead).sort(), ['in:a', 'm1:sent']);
    t.ok(dead.every((d) => d.lastError === 'HTTP 400: bad'));
    t.same(labels(await s.listDead(10, 'beta')), ['in:a']);
    t.same(await s.listDead(1), dead.slice(0, 1), 'limit');
    const read = await s.claimDue(T0 + 1, 10, LEASE);
    t.same(labels(read), ['m1:read'], 'a dead sent does not hold read back');
    await s.markDelivered(ids(read), T0 + 1);

    const inA = dead.find((d) => d.kind === 'incoming');
    t.equal(await s.replayDead(T0 + 100, inA ? [inA.id] : []), 1);
    t.equal(await s.replayDead(T0 + 100, ['999999']), 0, 'unknown ids are ignored');
    const again = await s.claimDue(T0 + 100, 10, LEASE);
    t.same(labels(again), ['in:a']);
    t.match(again[0], { attempts: 0, nextAttemptAt: T0 + 100 });
    t.equal(await s.replayDead(T0 + 200), 1, 'all the rest');
    t.same(await s.claimDue(T0 + 200, 10, LEASE), [], 'the replayed sent is skipped: read was delivered');
    t.match(await s.stats(), { outboxDead: 0, outboxPending: 1 });
  });

  withStore('pending look-ups: due, reschedule, resolve, unmatched', async (t, s) => {
    await s.ingest({ callbacks: [], pending: [pendingOf('w1'), pendingOf('w2', 'read'), pendingOf('w3', 'sent', 'beta')] }, T0);
    const due = await s.duePending(T0, 10);
    t.equal(due.length, 3);
    const w1 = due.find((p) => p.providerMessageId === 'w1');
    t.match(w1, { tenant: 'acme', dedupeKey: 'acme|w1|delivered', mappingVersion: 'v2', firstSeenAt: T0, attempts: 0, nextLookupAt: T0, unmatched: false });
    t.same(w1?.event, pendingOf('w1').event);
    t.equal((await s.duePending(T0, 2)).length, 2, 'limit');
    t.same(await s.duePending(T0 - 1, 10), []);

    const [p1, p2, p3] = [due.find((p) => p.providerMessageId === 'w1'), due.find((p) => p.providerMessageId === 'w2'), due.find((p) => p.providerMessageId === 'w3')];
    if (!p1 || !p2 || !p3) throw new Error('missing pending');
    await s.reschedulePending(p2.id, T0 + 500, false);
    await s.reschedulePending(p3.id, T0, true);
    t.same((await s.duePending(T0 + 499, 10)).map((p) => p.providerMessageId), ['w1']);
    t.match(await s.duePending(T0 + 500, 10), [{ providerMessageId: 'w1' }, { providerMessageId: 'w2', attempts: 1, nextLookupAt: T0 + 500 }]);
    t.match(await s.listUnmatched(10), [{ providerMessageId: 'w3', unmatched: true, tenant: 'beta' }]);
    t.match(await s.stats(), { pendingLookups: 2, unmatched: 1, outboxPending: 0 });

    await s.resolvePending(p1.id, [status('m1', 'delivered')], T0 + 50);
    await s.resolvePending(p1.id, [status('m1', 'delivered')], T0 + 60);
    t.match(await s.stats(), { pendingLookups: 1, outboxPending: 1 }, 'resolving twice adds one callback');
    const got = await s.claimDue(T0 + 50, 10, LEASE);
    t.same(labels(got), ['m1:delivered']);
    t.equal(got[0]?.createdAt, T0 + 50);
    t.same(await s.ingest({ callbacks: [], pending: [pendingOf('w1')] }, T0 + 70), { accepted: 0, duplicates: 1, implied: 0 }, 'the BSP retrying the webhook is still a duplicate');
  });

  withStore('sweep: delivered callbacks older than keepMs go, the rest stays', async (t, s) => {
    await s.ingest({ callbacks: [status('m1', 'sent'), status('m2', 'sent'), status('m3', 'sent'), incoming('a')], pending: [pendingOf('w1')] }, T0);
    const all = await s.claimDue(T0, 10, LEASE);
    const byLabel = new Map(all.map((r) => [labels([r])[0], r.id]));
    await s.markDelivered([byLabel.get('m1:sent') ?? ''], T0);
    await s.markDelivered([byLabel.get('m2:sent') ?? ''], T0 + 5000);
    await s.markDead([byLabel.get('in:a') ?? ''], 'HTTP 400');
    await s.sweep(T0 + 6000, 3000);
    t.match(await s.stats(), { delivered: 1, outboxDead: 1, outboxPending: 1, pendingLookups: 1 });
    await s.sweep(T0 + 9000, 3000);
    t.match(await s.stats(), { delivered: 0, outboxDead: 1, outboxPending: 1, pendingLookups: 1 });
  });

  const link = (token: string, expiresAt = T0 + 60_000, tenant = 'acme'): ClickLink => ({ token, tenant, msgId: `m-${token}`, url: `https://shop.test/p/${token}?a=1`, expiresAt });
  const clickOf = (l: ClickLink, ua = 'ua'): NewCallback => ({
    tenant: l.tenant,
    kind: 'status',
    msgId: l.msgId,
    rank: 0,
    payload: { msgId: l.msgId, status: 'Clicked', url: l.url, shortUrl: `https://wab.test/c/${l.token}`, userAgent: ua },
    dedupeKey: `${l.tenant}|click|${l.token}`,
  });

  withStore('click links: saved, found until they expire, never found by another token', async (t, s) => {
    const a = link('tokA'.padEnd(22, 'a'));
    const b = link('tokB'.padEnd(22, 'b'), T0 + 1000, 'beta');
    await s.saveClickLinks([a, b], T0);
    await s.saveClickLinks([], T0);
    t.same(await s.findClickLink(a.token, T0), a);
    t.same(await s.findClickLink(b.token, T0 + 999), b);
    t.equal(await s.findClickLink(b.token, T0 + 1000), undefined, 'expired at expiresAt');
    t.equal(await s.findClickLink('tokC'.padEnd(22, 'c'), T0), undefined, 'unknown');
    t.equal(await s.findClickLink(a.token.slice(0, 21), T0), undefined, 'a prefix is not the token');
  });

  withStore('recordClick: counts every click, the first one alone becomes a callback, atomically', async (t, s) => {
    const a = link('clkA'.padEnd(22, 'a'));
    await s.saveClickLinks([a], T0);
    t.equal(await s.recordClick(a.token, T0 + 1, clickOf(a, 'first')), 1);
    t.equal(await s.recordClick(a.token, T0 + 2, clickOf(a, 'second')), 2);
    t.equal(await s.recordClick(a.token, T0 + 3, clickOf(a, 'third')), 3);
    t.match(await s.stats(), { outboxPending: 1 });
    const got = await s.claimDue(T0 + 10, 10, LEASE);
    t.equal(got.length, 1);
    t.match(got[0], { tenant: 'acme', kind: 'status', msgId: a.msgId, rank: 0, dedupeKey: `acme|click|${a.token}`, createdAt: T0 + 1 });
    t.same(got[0]?.payload, clickOf(a, 'first').payload, 'the first click is the one reported');
    t.equal(await s.recordClick('nope'.padEnd(22, 'n'), T0, clickOf(link('nope'.padEnd(22, 'n')))), 0, 'unknown: nothing counted');
    t.equal(await s.recordClick(a.token, a.expiresAt, clickOf(a)), 0, 'expired: nothing counted');
    t.match(await s.stats(), { outboxPending: 1 }, 'and no callback');
  });

  withStore('recordClick: a first click whose key was seen adds no callback; a callback that cannot be stored counts no click', async (t, s) => {
    const a = link('dupA'.padEnd(22, 'a'));
    const b = link('badB'.padEnd(22, 'b'));
    await s.saveClickLinks([a, b], T0);
    await s.ingest({ callbacks: [clickOf(a)], pending: [] }, T0);
    t.equal(await s.recordClick(a.token, T0 + 1, clickOf(a)), 1);
    t.match(await s.stats(), { outboxPending: 1 }, 'the key was already there');
    await t.rejects(s.recordClick(b.token, T0 + 1, { ...clickOf(b), payload: { n: 1n } }));
    t.equal(await s.recordClick(b.token, T0 + 2, clickOf(b)), 1, 'the failed click was not counted');
    t.match(await s.stats(), { outboxPending: 2 });
  });

  withStore('sweep: a live click link stays, and still counts', async (t, s) => {
    const a = link('swpA'.padEnd(22, 'a'), T0 + 1000);
    await s.saveClickLinks([a], T0);
    await s.sweep(T0 + 500, 3000);
    t.same(await s.findClickLink(a.token, T0 + 500), a);
    t.equal(await s.recordClick(a.token, T0 + 500, clickOf(a)), 1);
    await s.sweep(T0 + 1000, 3000);
    t.equal(await s.findClickLink(a.token, T0 + 1000), undefined);
    t.equal(await s.recordClick(a.token, T0 + 1000, clickOf(a)), 0);
  });

  withStore('quarantine: add, list, get, requarantine, remove, size; tenants apart; survives sweep', async (t, s) => {
    const entry = (tenant: string, body: string, part?: { index: number; of: number }): NewQuarantined => ({
      tenant,
      mapping: 'acme',
      mappingVersion: 'v1',
      request: { url: 'http://h/v1/tenants/x/webhook?a=1', headers: { 'content-type': 'application/json', 'x-acme-signature': '[redacted]' }, query: { a: '1', b: ['2', '3'] }, rawBody: body },
      ...(part ? { part } : {}),
      error: { code: 'WAB_MAPPING_EVAL', message: 'mapping.yaml:3:7: boom', where: 'mapping.yaml:3:7' },
    });
    t.equal(await s.quarantineSize(), 0);
    t.same(await s.listQuarantined(10), []);
    t.same(await s.addQuarantined([], T0), [], 'nothing to add');
    const [a] = await s.addQuarantined([entry('acme', '{"x":1}')], T0);
    const [b, c] = await s.addQuarantined([entry('beta', '{"y":"é"}', { index: 0, of: 2 }), entry('acme', '{"z":[]}', { index: 1, of: 2 })], T0 + 10);
    t.ok(a && b && c && new Set([a, b, c]).size === 3, 'distinct ids');
    t.equal(await s.quarantineSize(), 3);
    const got = await s.getQuarantined(b!);
    t.same(got, { ...entry('beta', '{"y":"é"}', { index: 0, of: 2 }), id: b, receivedAt: T0 + 10, attempts: 0 }, 'stored as given, with id, time and no attempts');
    t.same((await s.listQuarantined(10)).map((r) => r.id), [a, b, c], 'oldest first');
    t.same((await s.listQuarantined(1)).map((r) => r.id), [a], 'limit');
    t.same((await s.listQuarantined(10, 'acme')).map((r) => r.id), [a, c], 'per tenant');
    t.notOk('part' in (await s.getQuarantined(a!))!, 'no part when the whole body was kept');
    t.equal(await s.getQuarantined('999999'), undefined);
    t.equal(await s.getQuarantined('not-an-id'), undefined);

    const newError = { code: 'WAB_MAPPING_OUTPUT', message: 'webhook.events: still wrong' };
    t.equal(await s.requarantine(a!, newError, 'v2', T0 + 100), true);
    t.match(await s.getQuarantined(a!), { error: newError, mappingVersion: 'v2', attempts: 1, lastAttemptAt: T0 + 100, receivedAt: T0, request: { rawBody: '{"x":1}' } });
    t.same((await s.getQuarantined(a!))!.error, newError, 'the new error replaces the old, where included');
    t.equal(await s.requarantine('999999', newError, 'v2', T0 + 100), false, 'a missing entry is not revived');

    await s.sweep(T0 + 365 * 24 * 3600_000, 0);
    t.equal(await s.quarantineSize(), 3, 'the sweep never drops quarantined webhooks');

    t.equal(await s.removeQuarantined([a!, c!, '999999', 'nope']), 2);
    t.equal(await s.removeQuarantined([a!]), 0, 'removing twice');
    t.equal(await s.quarantineSize(), 1);
    t.same((await s.listQuarantined(10, 'acme')).map((r) => r.id), []);
    t.same((await s.listQuarantined(10)).map((r) => r.id), [b]);
    t.equal(await s.requarantine(a!, newError, undefined, T0 + 200), false, 'a replayed entry stays gone');
    const [d] = await s.addQuarantined([entry('acme', '{}')], T0 + 300);
    t.notOk([a, b, c].includes(d), 'ids are not reused');
  });

  const ev = (type: TraceEvent['type'], at: number, ids: { msgId?: string; providerMessageId?: string }, data: Record<string, unknown> = {}): TraceEvent => ({ at, tenant: 'acme', type, ...ids, data });

  withStore('trace: a timeline is found by msgId and by BSP id, linked through held statuses, oldest first', async (t, s) => {
    const send = ev('send', T0, { msgId: 'm1', providerMessageId: 'w1' }, { to: '9198****10', answer: { status: 'success' } });
    const held = ev('status', T0 + 2000, { providerMessageId: 'w1' }, { status: 'read', held: true });
    const delivered = ev('status', T0 + 1000, { msgId: 'm1', providerMessageId: 'w1' }, { status: 'delivered', implies: ['sent'] });
    const attempt = ev('callback', T0 + 3000, { msgId: 'm1' }, { status: 'delivered', httpStatus: 200 });
    await s.appendTrace([send, held], 60_000);
    await s.appendTrace([attempt, delivered, ev('send', T0 + 500, { msgId: 'm2', providerMessageId: 'w2' })], 60_000);
    const whole = [send, delivered, held, attempt];
    t.same(await s.readTrace('m1', 100), whole, 'by msgId: the held status comes through its BSP id');
    t.same(await s.readTrace('w1', 100), whole, 'by BSP id: the same timeline');
    t.same(await s.readTrace('w2', 100), [ev('send', T0 + 500, { msgId: 'm2', providerMessageId: 'w2' })]);
    t.same(await s.readTrace('nothing', 100), []);
    t.equal((await s.readTrace('m1', 2)).length, 2, 'at most limit events');
    await s.appendTrace([], 60_000);
  });

  withStore('trace: a pair the correlations hold is found by its BSP id, the hint not kept', async (t, s) => {
    await s.saveCorrelation('other', 'w9', 'm9', 60_000);
    const send: TraceEvent = { ...ev('send', T0, { msgId: 'm9', providerMessageId: 'w9' }, { answer: { status: 'success' } }), tenant: 'other', correlated: true };
    const held = ev('status', T0 + 2000, { providerMessageId: 'w9' }, { status: 'read', held: true });
    const status: TraceEvent = { ...ev('status', T0 + 1000, { msgId: 'm9', providerMessageId: 'w9' }, { status: 'delivered' }), correlated: true };
    await s.appendTrace([send, held, status], 60_000);
    const plain = (e: TraceEvent) => ({ ...e, correlated: undefined });
    const whole = JSON.parse(JSON.stringify([send, status, held].map(plain))) as TraceEvent[];
    t.same(await s.readTrace('w9', 100), whole, 'by BSP id, tenant unknown to the caller');
    t.same(await s.readTrace('m9', 100), whole, 'by msgId');
    t.notOk((await s.readTrace('w9', 100)).some((e) => 'correlated' in e), 'the hint is not stored');
  });

  withStore('trace: a large batch (as the Tracer sends under load) lands whole, with writes interleaved', async (t, s) => {
    const many = Array.from({ length: 1100 }, (_, i) => ev('send', T0 + i, { msgId: `big${i % 7}`, providerMessageId: `wbig${i}` }, { i }));
    // A write the caller waits for, issued while the batch is being written, is not lost or reordered.
    await Promise.all([s.appendTrace(many, 60_000), s.saveCorrelation('acme', 'wbig-corr', 'big-corr', 60_000)]);
    t.equal(await s.findMsgIds('acme', ['wbig-corr']).then((m) => m[0]), 'big-corr');
    const events = await s.readTrace('big3', 10_000);
    t.equal(events.length, many.filter((e) => e.msgId === 'big3').length, 'every event of the msgId');
    t.same(events.map((e) => e.data.i), many.filter((e) => e.msgId === 'big3').map((e) => e.data.i), 'oldest first, data as given');
    t.same(await s.readTrace('wbig1099', 10_000), await s.readTrace('big0', 10_000), 'the last event found by its BSP id, with its msgId\'s timeline');
  });

  withStore('trace: sweepTrace removes what is older than keep, then the oldest over the cap', async (t, s) => {
    await s.appendTrace([ev('send', T0, { msgId: 'old' }), ev('send', T0 + 10 * 86_400_000, { msgId: 'new' })], 60_000);
    t.equal(await s.sweepTrace(T0 + 10 * 86_400_000, 7 * 86_400_000, 1000), 1);
    t.same(await s.readTrace('old', 10), []);
    t.equal((await s.readTrace('new', 10)).length, 1);
    const later = T0 + 10 * 86_400_000;
    await s.appendTrace([1, 2, 3, 4].map((i) => ev('send', later + i, { msgId: `c${i}` })), 60_000);
    t.equal(await s.sweepTrace(later + 10, 7 * 86_400_000, 3), 2, 'five events, three kept');
    t.same(await s.readTrace('new', 10), []);
    t.same(await s.readTrace('c1', 10), []);
    for (const id of ['c2', 'c3', 'c4']) t.equal((await s.readTrace(id, 10)).length, 1, `${id} kept`);
    t.equal(await s.sweepTrace(later + 10, 7 * 86_400_000, 3), 0, 'nothing more to do');
  });

  withStore('trace: a campaign\'s events (every tenant, oldest first), and campaigns by latest activity', async (t, s) => {
    const c = (type: TraceEvent['type'], at: number, msgId: string, campaignId: string, tenant = 'acme'): TraceEvent => ({ at, tenant, type, msgId, campaignId, data: { n: at - T0 } });
    await s.appendTrace([c('send', T0, '1|c1|b1|1|0', 'c1'), c('send', T0, '2|c1|b1|1|0', 'c1', 'other'), c('send', T0 + 2, '1|c2|b1|1|0', 'c2')], 60_000);
    await s.appendTrace([c('callback', T0 + 5, '1|c1|b1|1|0', 'c1'), ev('status', T0 + 6, { providerMessageId: 'w9' })], 60_000);
    const label = (e: TraceEvent) => `${e.tenant} ${e.msgId} ${e.type} ${e.campaignId}`;
    const all = await s.campaignTrace('c1', 100);
    t.same(all.events.map(label).sort(), ['acme 1|c1|b1|1|0 callback c1', 'acme 1|c1|b1|1|0 send c1', 'other 2|c1|b1|1|0 send c1']);
    t.equal(all.next, undefined, 'one page');
    // Page by page, a page at a time: every event once.
    const paged: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await s.campaignTrace('c1', 1, cursor);
      paged.push(...page.events.map(label));
      cursor = page.next;
      pages++;
    } while (cursor !== undefined && pages < 10);
    t.same(paged.sort(), all.events.map(label).sort(), 'pages of one (two events share a millisecond)');
    t.ok(pages >= 2, `${pages} pages`);
    t.same(await s.campaignTrace('c9', 100), { events: [] });
    t.same(await s.listCampaigns(10), [
      { campaignId: 'c1', tenant: 'acme', lastActivity: T0 + 5 },
      { campaignId: 'c2', tenant: 'acme', lastActivity: T0 + 2 },
      { campaignId: 'c1', tenant: 'other', lastActivity: T0 },
    ]);
    t.equal((await s.listCampaigns(1)).length, 1);
    await s.sweepTrace(T0 + 3 + 86_400_000, 86_400_000, 1000);
    t.same(await s.listCampaigns(10), [{ campaignId: 'c1', tenant: 'acme', lastActivity: T0 + 5 }], 'idle campaigns leave the list with their events');
    // (SQLite removes each old event, Redis a timeline once its latest event is old: both keep the live one.)
    t.ok((await s.campaignTrace('c1', 100)).events.some((e) => e.type === 'callback'), 'the live timeline stays');
  });

  withStore('trace: a campaign\'s messages, each with its whole timeline, page by page in msgId order', async (t, s) => {
    const c = (type: TraceEvent['type'], at: number, msgId: string, campaignId: string, tenant = 'acme'): TraceEvent => ({ at, tenant, type, msgId, campaignId, data: { n: at - T0 } });
    await s.appendTrace([c('send', T0, '2|c1|b1|1|0', 'c1'), c('send', T0 + 1, '1|c1|b1|1|0', 'c1', 'other'), c('send', T0 + 2, '1|c2|b1|1|0', 'c2'), c('send', T0 + 3, '3|c1|b2|1|0', 'c1')], 60_000);
    await s.appendTrace([c('callback', T0 + 9, '2|c1|b1|1|0', 'c1'), c('status', T0 + 5, '2|c1|b1|1|0', 'c1'), ev('status', T0 + 6, { providerMessageId: 'w9' })], 60_000);
    const label = (m: { msgId: string; events: TraceEvent[] }) => `${m.msgId}: ${m.events.map((e) => `${e.tenant} ${e.type}@${e.at - T0}`).join(', ')}`;
    const all = await s.campaignMessages('c1', 100);
    t.same(all.messages.map(label), ['1|c1|b1|1|0: other send@1', '2|c1|b1|1|0: acme send@0, acme status@5, acme callback@9', '3|c1|b2|1|0: acme send@3'], 'msgId order, each timeline whole and oldest first');
    t.equal(all.next, undefined, 'one page');
    const first = await s.campaignMessages('c1', 2);
    t.same(first.messages.map((m) => m.msgId), ['1|c1|b1|1|0', '2|c1|b1|1|0']);
    t.equal(first.next, '2|c1|b1|1|0', 'the cursor is the last msgId');
    const second = await s.campaignMessages('c1', 2, first.next);
    t.same(second.messages.map(label), ['3|c1|b2|1|0: acme send@3']);
    t.equal(second.next, undefined, 'the last page');
    t.same(await s.campaignMessages('c9', 10), { messages: [] });
  });

  withStore('ping and close', async (t, s) => {
    await t.resolves(s.ping());
    t.ok(s.kind === 'sqlite' || s.kind === 'redis');
  });
}
