// The Tracer's batching and failure handling, and what a trace keeps of headers, URLs and callbacks.
import t from 'tap';
import { setImmediate as turn } from 'node:timers/promises';
import { callbackEvents, formatTrace, safeHeaders, safeUrl, Tracer } from '../../engine/host/trace.js';
import { BackgroundGate } from '../../engine/host/background-gate.js';
import { createMetrics } from '../../engine/host/metrics.js';
import type { CallbackRecord, TraceEvent } from '../../engine/stores/store.js';

const ev = (msgId: string, at = 1_700_000_000_000): TraceEvent => ({ at, tenant: 'acme', msgId, type: 'status', data: { status: 'sent' } });

t.test('everything recorded in one turn goes to the store in one call; nothing is awaited by the recorder', async (t) => {
  const calls: TraceEvent[][] = [];
  const tracer = new Tracer({ appendTrace: async (events) => void calls.push([...events]) }, { keepMs: 1000, intervalMs: 0 });
  tracer.record(ev('a'));
  tracer.record(ev('b'));
  tracer.record(ev('c'));
  t.equal(calls.length, 0, 'not written synchronously');
  await tracer.flush();
  t.same(calls.map((c) => c.map((e) => e.msgId)), [['a', 'b', 'c']]);
  tracer.record(ev('d'));
  await turn();
  await tracer.flush();
  t.equal(calls.length, 2, 'a later turn is a later call');
});

t.test('while a write is in flight, new events wait for it and go together in the next one', async (t) => {
  const calls: string[][] = [];
  let release!: () => void;
  const first = new Promise<void>((r) => (release = r));
  const tracer = new Tracer({ appendTrace: (events) => (calls.push(events.map((e) => e.msgId!)), calls.length === 1 ? first : Promise.resolve()) }, { keepMs: 1000, intervalMs: 0 });
  tracer.record(ev('a'));
  await turn();
  tracer.record(ev('b'));
  await turn();
  tracer.record(ev('c'));
  await turn();
  t.same(calls, [['a']], 'one write at a time');
  release();
  await tracer.flush();
  t.same(calls, [['a'], ['b', 'c']]);
});

t.test('a failed write is reported and counted, never thrown; a full buffer drops; keep 0 records nothing', async (t) => {
  const errors: [string, number][] = [];
  const drops: [string, number][] = [];
  const tracer = new Tracer({ appendTrace: () => Promise.reject(new Error('disk full')) }, { keepMs: 1000, maxBuffered: 2, onError: (e, n) => errors.push([e.message, n]), onDrop: (r, n) => drops.push([r, n]) });
  tracer.record(ev('a'));
  tracer.record(ev('b'));
  tracer.record(ev('c'));
  await tracer.flush();
  t.same(errors, [['disk full', 2]]);
  t.equal(tracer.dropped, 3, 'two failed, one over the buffer');
  t.same(drops, [['full', 1], ['failed', 2]], 'each drop reported with its reason (the metric)');
  let called = false;
  const off = new Tracer({ appendTrace: async () => void (called = true) }, { keepMs: 0 });
  t.notOk(off.enabled);
  off.record(ev('a'));
  await off.flush();
  t.notOk(called);
});

t.test('events gather for intervalMs and go in batches of at most maxBatch, their campaign found', async (t) => {
  const calls: TraceEvent[][] = [];
  const tracer = new Tracer({ appendTrace: async (events) => void calls.push([...events]) }, { keepMs: 1000, intervalMs: 30, maxBatch: 2 });
  for (const id of ['1|camp|b|1|0', 'b', 'c']) tracer.record(ev(id));
  await turn();
  t.equal(calls.length, 0, 'nothing before the interval');
  await new Promise((r) => setTimeout(r, 60));
  await tracer.flush();
  t.same(calls.map((c) => c.map((e) => e.msgId)), [['1|camp|b|1|0', 'b'], ['c']]);
  t.same(calls[0]![0], { at: 1_700_000_000_000, tenant: 'acme', msgId: '1|camp|b|1|0', campaignId: 'camp', type: 'status', data: { status: 'sent' } });
});

t.test('a recorded builder runs at write time, not when recorded; one that throws is dropped alone', async (t) => {
  const calls: TraceEvent[][] = [];
  const drops: [string, number][] = [];
  const tracer = new Tracer({ appendTrace: async (events) => void calls.push([...events]) }, { keepMs: 1000, intervalMs: 0, onDrop: (r, n) => drops.push([r, n]) });
  let built = 0;
  tracer.record(() => (built++, ev('lazy')));
  tracer.record(() => {
    throw new Error('bug');
  });
  t.equal(built, 0, 'nothing built by record');
  await tracer.flush();
  t.equal(built, 1);
  t.same(calls.map((c) => c.map((e) => e.msgId)), [['lazy']]);
  t.same(drops, [['failed', 1]]);
});

t.test('under pressure writes are put off while the gate holds, and events past the buffer are dropped, not written', async (t) => {
  const calls: TraceEvent[][] = [];
  const drops: [string, number][] = [];
  let pressed = true;
  const gate = { hold: () => pressed };
  const tracer = new Tracer({ appendTrace: async (events) => void calls.push([...events]) }, { keepMs: 1000, intervalMs: 0, maxBuffered: 3, gate, onDrop: (r, n) => drops.push([r, n]) });
  for (const id of ['a', 'b', 'c', 'd', 'e']) tracer.record(ev(id));
  await new Promise((r) => setTimeout(r, 40));
  t.equal(calls.length, 0, 'no write while answers wait');
  t.same(drops, [['full', 1], ['full', 1]]);
  t.equal(tracer.dropped, 2);
  pressed = false;
  await new Promise((r) => setTimeout(r, 40));
  t.same(calls.map((c) => c.map((e) => e.msgId)), [['a', 'b', 'c']], 'written once the gate opens');
  pressed = true;
  tracer.record(ev('f'));
  await tracer.flush();
  t.same(calls.map((c) => c.map((e) => e.msgId)), [['a', 'b', 'c'], ['f']], 'flush (at close) writes despite pressure');
});

t.test('wired as the host wires it: a sustained overload writes one batch per hold and counts the rest in wabridge_trace_dropped_total', async (t) => {
  const metrics = createMetrics();
  const calls: TraceEvent[][] = [];
  const gate = new BackgroundGate(() => true, 60, (ms) => metrics.backgroundHeld.inc({ worker: 'trace' }, ms / 1000));
  const tracer = new Tracer({ appendTrace: async (events) => void calls.push([...events]) }, { keepMs: 1000, intervalMs: 10, maxBatch: 4, maxBuffered: 6, gate, onDrop: (reason, n) => metrics.traceDropped.inc({ reason }, n) });
  for (let i = 0; i < 10; i++) tracer.record(ev(`m${i}`));
  await new Promise((r) => setTimeout(r, 30));
  t.equal(calls.length, 0, 'held while pressed');
  while (calls.length === 0) await new Promise((r) => setTimeout(r, 5));
  t.same(calls[0]!.map((e) => e.msgId), ['m0', 'm1', 'm2', 'm3'], 'after the longest hold, one batch of at most maxBatch');
  const text = await metrics.registry.metrics();
  t.match(text, /wabridge_trace_dropped_total\{reason="full"\} 4\n/, 'the four past the buffer, counted');
  const held = Number(/wabridge_background_held_seconds_total\{worker="trace"\} ([\d.]+)/.exec(text)?.[1]);
  t.ok(held >= 0.06, `the hold shows as the trace worker's: ${held} s`);
  await tracer.flush();
  t.equal(calls.flat().length, 6, 'flush writes the rest');
});

t.test('headers and URLs lose their secrets', async (t) => {
  t.same(safeHeaders({ Authorization: 'Bearer x', 'content-type': 'application/json', 'x-api-key': 'k', 'Acme-API-KEY': 'k', cookie: 'c', 'x-acme-signature-256': 's', 'set-cookie': ['a', 'b'], via: undefined, 'x-multi': ['1', '2'] }), {
    Authorization: '[redacted]',
    'content-type': 'application/json',
    'x-api-key': '[redacted]',
    'Acme-API-KEY': '[redacted]',
    cookie: '[redacted]',
    'x-acme-signature-256': '[redacted]',
    'set-cookie': '[redacted]',
    'x-multi': '1, 2',
  });
  t.equal(safeUrl('https://user:pw@bsp.test/v1/messages?apikey=s3cret&x=1&x=2'), 'https://bsp.test/v1/messages?apikey=%5Bredacted%5D&x=%5Bredacted%5D');
  t.equal(safeUrl('not a url'), '(unparsable URL)');
});

t.test('callback events: statuses under their msgId, incoming under the msgId they answer or their BSP id', async (t) => {
  const base = { createdAt: 0, attempts: 2, nextAttemptAt: 0, rank: 0 };
  const records: CallbackRecord[] = [
    { ...base, id: '1', tenant: 'acme', kind: 'status', msgId: 'm1', rank: 1, payload: { msgId: 'm1', status: 'sent' }, dedupeKey: 'acme|w1|sent', implied: true },
    { ...base, id: '2', tenant: 'acme', kind: 'incoming', payload: { context: { id: 'm1' } }, dedupeKey: 'acme|in|wamid.in1' },
    { ...base, id: '3', tenant: 'acme', kind: 'incoming', payload: {}, dedupeKey: 'acme|in|wamid.in2' },
    { ...base, id: '4', tenant: 'acme', kind: 'incoming', payload: {}, dedupeKey: 'acme|in|sha256:abc' },
  ];
  const out = callbackEvents(records, 'callback', 5, { httpStatus: 200, ms: 3, outcome: 'delivered' });
  t.same(
    out.map((e) => [e.msgId, e.providerMessageId, e.data.callbackId, e.data.attempt, e.data.status, e.data.implied]),
    [
      ['m1', undefined, '1', 3, 'sent', true],
      ['m1', undefined, '2', 3, undefined, undefined],
      [undefined, 'wamid.in2', '3', 3, undefined, undefined],
    ],
    'an incoming message without an id of any kind cannot be found, so it is not kept',
  );
});

t.test('formatTrace: one line per step, continuation lines indented under the first', async (t) => {
  const at = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
  const text = formatTrace([
    { at, tenant: 'acme', msgId: 'm1', providerMessageId: 'w1', type: 'send', data: { to: '9199******99', messageType: 'text', campaignId: '1', mapping: 'acme', mappingVersion: 'v1', answer: { status: 'success' }, ms: 12, bsp: { method: 'POST', url: 'http://bsp/x', status: 200, providerMessageId: 'w1', ms: 9 } } },
    { at: at + 1, tenant: 'acme', msgId: 'm1', type: 'status', data: { status: 'read', implies: ['delivered', 'sent'] } },
    { at: at + 2, tenant: 'acme', msgId: 'm1', type: 'dead', data: { status: 'sent', implied: true, callbackId: '7', reason: 'HTTP 400' } },
  ]);
  const lines = text.split('\n');
  t.equal(lines.length, 5);
  t.match(lines[0], /^2026-01-02T03:04:05\.006Z {2}acme {2}received {2}from CleverTap: to 9199\*{6}99, text, campaign 1; mapping acme@v1$/);
  t.match(lines[1], /^ {32}bsp {7}POST http:\/\/bsp\/x → HTTP 200, BSP id w1 in 9 ms$/);
  t.match(lines[2], /answered {2}success after 12 ms$/);
  t.match(lines[3], /webhook {3}status read → CleverTap read; implies delivered, sent$/);
  t.match(lines[4], /dead {6}sent \(implied\) callback 7 to the dead-letter list: HTTP 400$/);
});
