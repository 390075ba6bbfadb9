// Campaign counts from trace events: what counts once, what counts each time, what the last attempt says.
import t from 'tap';
import { CampaignCounter, campaignReport, formatCampaign } from '../../engine/host/campaigns.js';
import type { TraceEvent } from '../../engine/stores/store.js';

const T0 = Date.UTC(2026, 11, 3, 12);
let at = T0;
const e = (tenant: string, msgId: string, type: TraceEvent['type'], data: Record<string, unknown>): TraceEvent => ({ at: at++, tenant, msgId, campaignId: 'c1', type, data });
const send = (msgId: string, answer: unknown, tenant = 'acme') => e(tenant, msgId, 'send', { answer });
const cb = (msgId: string, callbackId: string, status: string | undefined, outcome: string, extra: Record<string, unknown> = {}) => e('acme', msgId, 'callback', { callbackId, kind: status === undefined ? 'incoming' : 'status', status, outcome, ...extra });
const ok = { status: 'success' };

t.test('counts per tenant', async (t) => {
  const events = [
    send('1|c1|b1|1|0', ok),
    send('2|c1|b1|1|0', { status: 'failure', error: { code: 2004, message: 'x' } }),
    send('2|c1|b1|1|0', ok), // CleverTap's retry: one message, two answers
    send('3|c1|b2|1|0', { status: 'failure', error: { code: 429, message: 'Too many requests to process' } }),
    send('9|c1|b1|1|0', ok, 'other'),
    cb('1|c1|b1|1|0', '10', 'sent', 'delivered', { implied: true }),
    cb('1|c1|b1|1|0', '11', 'read', 'retry'),
    cb('1|c1|b1|1|0', '11', 'read', 'delivered'),
    cb('1|c1|b1|1|0', '11', 'read', 'delivered'), // delivered twice (a crash before the mark): CleverTap counts it once
    cb('2|c1|b1|1|0', '12', 'failed', 'delivered', { errorCode: 1007 }),
    cb('2|c1|b1|1|0', '13', 'delivered', 'retry'),
    cb('2|c1|b1|1|0', '14', 'Clicked', 'delivered'),
    cb('1|c1|b1|1|0', '15', undefined, 'delivered'),
    cb('1|c1|b1|1|0', '16', 'sent', 'refused'),
    e('acme', '1|c1|b1|1|0', 'dead', { callbackId: '16', status: 'sent', reason: 'HTTP 400' }),
    e('acme', '2|c1|b1|1|0', 'status', { status: 'read' }),
  ];
  const count = (list: TraceEvent[], batch?: string) => {
    const c = new CampaignCounter('c1', batch);
    c.add(list);
    return c.report();
  };
  const r = count(events);
  t.same(Object.keys(r.tenants), ['acme', 'other']);
  t.same(r.tenants.acme, {
    messages: 3,
    answers: { success: 2, 2004: 1, 429: 1 },
    statuses: { sent: 1, delivered: 0, read: 1, failed: 1, clicked: 1 },
    failures: { 1007: 1 },
    replies: 1,
    callbacksPending: 1,
    callbacksDead: 1,
    lastActivity: new Date(at - 1).toISOString(),
  });
  t.equal(r.tenants.other!.messages, 1);
  t.same(count([...events].reverse()), r, 'pages come in any order: the same counts');
  const b2 = count(events, 'b2');
  t.same([b2.batchId, Object.keys(b2.tenants), b2.tenants.acme!.answers], ['b2', ['acme'], { 429: 1 }]);
  t.same(count([]).tenants, {});
  t.match(formatCampaign(count([])), /nothing known of it/);

  // Through the store, page by page until there is no next cursor.
  const cursors: (string | undefined)[] = [];
  const store = {
    campaignTrace: async (_c: string, limit: number, cursor?: string) => {
      cursors.push(cursor);
      const from = cursor === undefined ? 0 : Number(cursor);
      const page: { events: TraceEvent[]; next?: string } = { events: events.slice(from, from + 7) };
      if (from + 7 < events.length) page.next = String(from + 7);
      t.equal(limit, 5000);
      return page;
    },
  };
  t.same(await campaignReport(store, 'c1'), r);
  t.same(cursors, [undefined, '7', '14']);
});
