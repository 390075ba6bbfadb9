// The outbox worker against a local stand-in for CleverTap: batching, order per msgId across
// failures, back-off, dead letters, replay and draining on stop. Every body the sink receives must
// be valid against CleverTap's callback schemas. Time is an injected clock; only stop() uses real timers.
import t, { type Test } from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { backoffDelay, CallbackDelivery, type CallbackDeliveryOptions } from '../../engine/host/callback-delivery.js';
import { incomingCallbackFor, statusCallbackFor } from '../../engine/host/callbacks.js';
import { projectSchema, validatorFor } from '../../engine/mapping/schema-validator.js';
import { openSqliteStore } from '../../engine/stores/sqlite.js';
import type { CallbackRecord, NewCallback, Store } from '../../engine/stores/store.js';
import type { IncomingEvent, StatusEvent } from '../../engine/mapping/webhook.js';

const validStatus = validatorFor(projectSchema('clevertap/status-callback.schema.json'));
const validIncoming = validatorFor(projectSchema('clevertap/incoming-callback.schema.json'));

type Reply = { status: number; body?: string } | 'hang';

/** CleverTap stand-in: answers 200 unless told otherwise, and checks every body against the schemas. */
class Sink {
  readonly received: { path: string; body: unknown; contentType: string | undefined }[] = [];
  readonly invalid: string[] = [];
  private readonly replies: Reply[] = [];
  private readonly hanging = new Set<ServerResponse>();
  private readonly server = createServer((req, res) => this.handle(req, res));
  url = '';

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** The next requests get these replies, in order; then 200 again. */
  reply(...r: Reply[]): void {
    this.replies.push(...r);
  }

  statuses(): string[] {
    return this.received.filter((r) => r.path.endsWith('/status')).flatMap((r) => (r.body as { statuses: { msgId: string; status: string }[] }).statuses.map((s) => `${s.msgId}:${s.status}`));
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    let raw = '';
    req.on('data', (d: Buffer) => (raw += d.toString()));
    req.on('end', () => {
      const path = req.url ?? '';
      const body = JSON.parse(raw) as unknown;
      this.received.push({ path, body, contentType: req.headers['content-type'] });
      const validate = path.endsWith('/status') ? validStatus : validIncoming;
      if (!validate(body)) this.invalid.push(`${path}: ${JSON.stringify(validate.errors)} in ${raw}`);
      const r = this.replies.shift() ?? { status: 200 };
      if (r === 'hang') {
        this.hanging.add(res);
        return;
      }
      res.writeHead(r.status, { 'content-type': 'application/json' }).end(r.body ?? '{"status":"success"}');
    });
  }
}

const T0 = 1_700_000_000_000;
const status = (tenant: string, msgId: string, s: StatusEvent['status'], extra: Partial<StatusEvent> = {}): NewCallback =>
  statusCallbackFor(tenant, msgId, { event: 'status', providerMessageId: `w-${msgId}`, status: s, timestamp: '1700000000', ...extra }, 'v1');
const incoming = (tenant: string, id: string, message: Partial<IncomingEvent['message']> = {}, context?: string): NewCallback =>
  incomingCallbackFor({ id: tenant, incomingAudioType: 'audio' }, { event: 'incoming', providerMessageId: id, message: { from: '919999999999', wabaNumber: '+91 98888 88888', timestamp: '1700000000', type: 'text', text: { body: id }, ...message } }, context, 'v1');

interface Rig {
  sink: Sink;
  store: Store;
  clock: { now: number };
  worker: (o?: Partial<CallbackDeliveryOptions>) => CallbackDelivery;
  ingest: (...callbacks: NewCallback[]) => Promise<void>;
}

async function rig(t: Test): Promise<Rig> {
  const sink = await new Sink().listen();
  const store = openSqliteStore(':memory:');
  const clock = { now: T0 };
  const workers: CallbackDelivery[] = [];
  t.teardown(async () => {
    for (const w of workers) await w.stop();
    await sink.close();
    await store.close();
  });
  return {
    sink,
    store,
    clock,
    worker: (o = {}) => {
      const w = new CallbackDelivery({
        store,
        target: (tenant) => (tenant === 'ghost' ? undefined : { statusUrl: `${sink.url}/${tenant}/status`, inboundUrl: `${sink.url}/${tenant}/inbound` }),
        baseDelayMs: 100,
        maxDelayMs: 1000,
        retryForMs: 10_000,
        requestTimeoutMs: 2000,
        drainMs: 2000,
        now: () => clock.now,
        random: () => 1,
        ...o,
      });
      workers.push(w);
      return w;
    },
    ingest: async (...callbacks) => {
      await store.ingest({ callbacks, pending: [] }, clock.now);
    },
  };
}

// Every test ends by checking the sink saw only valid CleverTap bodies.
const test = (name: string, fn: (t: Test, r: Rig) => Promise<void>) =>
  t.test(name, async (t) => {
    const r = await rig(t);
    await fn(t, r);
    t.same(r.sink.invalid, [], 'every body matches CleverTap callback schemas');
  });

t.test('backoffDelay: jittered in [d/2, d], doubling, capped', async (t) => {
  t.equal(backoffDelay(0, 1000, 600_000, () => 0), 500);
  t.equal(backoffDelay(0, 1000, 600_000, () => 1), 1000);
  t.equal(backoffDelay(3, 1000, 600_000, () => 1), 8000);
  t.equal(backoffDelay(3, 1000, 600_000, () => 0), 4000);
  t.equal(backoffDelay(20, 1000, 600_000, () => 1), 600_000);
  t.equal(backoffDelay(500, 1000, 600_000, () => 0), 300_000, 'no overflow with huge attempt counts');
});

test('statuses of a tenant go in one POST; incoming one each; tenants apart', async (t, { sink, store, worker, ingest }) => {
  await ingest(
    status('acme', 'm1', 'sent'),
    status('acme', 'm2', 'failed', { error: { code: 1002, title: 'Invalid phone number' } }),
    status('acme', 'm3', 'clicked', { timestamp: undefined, url: 'https://shop.test/x', shortUrl: 'https://s.test/1', userAgent: 'Mozilla' }),
    incoming('acme', 'wamid.in1', {}, 'm1'),
    incoming('acme', 'wamid.in2', { type: 'image', text: undefined, image: { mediaURL: 'https://media.test/1', mimeType: 'image/jpeg', caption: 'hi' } }),
    status('beta', 'm1', 'delivered'),
  );
  const w = worker();
  t.equal(await w.runOnce(), 6);
  const paths = sink.received.map((r) => r.path).sort();
  t.same(paths, ['/acme/inbound', '/acme/inbound', '/acme/status', '/beta/status']);
  const acme = sink.received.find((r) => r.path === '/acme/status')?.body as { payloadVersion: string; statuses: unknown[] };
  t.equal(acme.payloadVersion, '0.1');
  t.same(sink.statuses().filter((s) => !s.startsWith('m1:delivered')).sort(), ['m1:sent', 'm2:failed', 'm3:Clicked']);
  t.ok(sink.received.every((r) => r.contentType === 'application/json'));
  const reply = sink.received.find((r) => (r.body as { text?: unknown }).text)?.body;
  t.match(reply, { from: '919999999999', wabaNumber: '919888888888', context: { id: 'm1' }, text: { body: 'wamid.in1' } });
  t.match(await store.stats(), { delivered: 6, outboxPending: 0 });
  t.equal(await w.runOnce(), 0, 'nothing left');
});

test("a round's POSTs are marked delivered in one store call", async (t, { store, worker, ingest }) => {
  await ingest(status('acme', 'm1', 'sent'), status('acme', 'm2', 'sent'), incoming('acme', 'wamid.in1'), incoming('acme', 'wamid.in2'), status('beta', 'm1', 'sent'));
  const marks: string[][] = [];
  const counting = new Proxy(store, {
    get: (target, key) => (key === 'markDelivered' ? (ids: string[], now: number) => (marks.push([...ids]), target.markDelivered(ids, now)) : (Reflect.get(target, key) as unknown)),
  });
  const delivered: number[] = [];
  const w = worker({ store: counting, onDelivered: (recs) => delivered.push(recs.length) });
  t.equal(await w.runOnce(), 5);
  t.equal(marks.length, 1, 'one mark for the four POSTs');
  t.equal(marks[0]!.length, 5, 'with every callback they carried');
  t.same(delivered.sort(), [1, 1, 1, 2], 'each POST still reported on its own');
  t.match(await store.stats(), { delivered: 5, outboxPending: 0 });
});

test('a msgId keeps its order across failures and retries', async (t, { sink, clock, worker, ingest }) => {
  await ingest(status('acme', 'm1', 'read'), status('acme', 'm1', 'delivered'), status('acme', 'm1', 'sent'), status('acme', 'm2', 'sent'));
  sink.reply({ status: 503 }, { status: 500 });
  const failed: { ids: string[]; next: number; error: string }[] = [];
  const w = worker({ onFailed: (recs, error, next) => failed.push({ ids: recs.map((r) => r.id), next, error }) });
  for (let i = 0; i < 10; i++) {
    await w.runOnce();
    clock.now += 1000;
  }
  t.same(sink.statuses(), ['m1:sent', 'm2:sent', 'm1:sent', 'm2:sent', 'm1:sent', 'm2:sent', 'm1:delivered', 'm1:read']);
  t.same(
    failed.map((f) => f.error),
    ['HTTP 503', 'HTTP 500'],
  );
  t.same(
    failed.map((f) => f.next - (T0 + failed.indexOf(f) * 1000)),
    [100, 200],
    'back-off doubles from baseDelayMs (random pinned to 1)',
  );
});

test('408, 429, timeouts and connection errors are retried', async (t, { sink, clock, store, worker, ingest }) => {
  const errors: string[] = [];
  const w = worker({ requestTimeoutMs: 150, onFailed: (_r, e) => errors.push(e) });
  await ingest(status('acme', 'm1', 'sent'));
  sink.reply({ status: 408 }, { status: 429 }, 'hang');
  for (let i = 0; i < 4; i++) {
    await w.runOnce();
    clock.now += 1000;
  }
  t.equal(errors.length, 3);
  t.same(errors.slice(0, 2), ['HTTP 408', 'HTTP 429']);
  t.match(errors[2], /timeout after 150 ms/);
  t.match(await store.stats(), { delivered: 1 });

  const nowhere = new CallbackDelivery({ store, target: () => ({ statusUrl: 'http://127.0.0.1:1/status', inboundUrl: 'http://127.0.0.1:1/in' }), now: () => clock.now, onFailed: (_r, e) => errors.push(e) });
  t.teardown(() => nowhere.stop());
  await ingest(status('acme', 'm9', 'sent'));
  await nowhere.runOnce();
  t.match(errors[3], /ECONNREFUSED|connect/i, 'an unreachable host is retried too');
  t.match(await store.stats(), { outboxPending: 1, outboxDead: 0 });
});

test('dead-lettered when the retry window is over, and replayable', async (t, { sink, clock, store, worker, ingest }) => {
  const dead: string[] = [];
  const w = worker({ retryForMs: 3000, onDead: (_r, reason) => dead.push(reason) });
  await ingest(status('acme', 'm1', 'sent'));
  sink.reply({ status: 503 }, { status: 503 }, { status: 503 });
  await w.runOnce();
  clock.now = T0 + 2999;
  await w.runOnce();
  t.same(dead, [], 'still inside the window');
  clock.now = T0 + 3500; // due again (2999 + 200) and past the window
  await w.runOnce();
  t.equal(dead.length, 1);
  t.match(dead[0], /retry window \(3000 ms\) over after 2 retries; last error: HTTP 503/);
  const [rec] = await store.listDead(10);
  t.match(rec, { msgId: 'm1', attempts: 2 });
  t.equal(await w.runOnce(), 0, 'a dead callback is not retried');

  t.equal(await store.replayDead(clock.now, [rec?.id ?? '']), 1);
  t.equal(await w.runOnce(), 1);
  t.match(await store.stats(), { delivered: 1, outboxDead: 0 });
  t.equal(sink.received.length, 4);
});

test('another 4xx: dead at once with the answer, no retry; unknown tenants too', async (t, { sink, store, worker, ingest }) => {
  const w = worker();
  await ingest(status('acme', 'm1', 'sent'), incoming('acme', 'wamid.in1'), status('ghost', 'm1', 'sent'));
  const answer = { status: 400, body: `{"error":"${'x'.repeat(300)}"}` };
  sink.reply(answer, answer);
  await w.runOnce();
  const dead = await store.listDead(10);
  t.equal(dead.length, 3);
  const byTenant = (tenant: string, kind: string) => dead.find((d: CallbackRecord) => d.tenant === tenant && d.kind === kind)?.lastError ?? '';
  const refused = [byTenant('acme', 'status'), byTenant('acme', 'incoming')].find((e) => e.startsWith('HTTP 400')) ?? '';
  t.equal(refused, `HTTP 400: {"error":"${'x'.repeat(190)}`, 'status and the first 200 characters of the answer');
  t.match(byTenant('ghost', 'status'), /tenant "ghost" has no callback URLs configured/);
  t.equal(sink.received.length, 2, 'one POST each for acme; nothing for the unknown tenant');
  t.equal(await w.runOnce(), 0);
});

test('start() keeps going while rounds are full; stop() drains what is due', async (t, { sink, store, worker }) => {
  const w = worker({ batchSize: 2, pollMs: 60_000, now: Date.now });
  await store.ingest({ callbacks: ['a', 'b', 'c', 'd', 'e'].map((m) => status('acme', m, 'sent')), pending: [] }, Date.now());
  w.start();
  for (let i = 0; i < 200 && sink.statuses().length < 5; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(sink.statuses().length, 5, 'full rounds follow each other without waiting pollMs');
  await store.ingest({ callbacks: ['f', 'g', 'h'].map((m) => status('acme', m, 'sent')), pending: [] }, Date.now());
  const started = Date.now();
  await w.stop();
  t.ok(Date.now() - started < 1000);
  t.equal(sink.statuses().length, 8, 'stop delivered what was due');
  t.match(await store.stats(), { outboxPending: 0 });
});

test('stop() is bounded by drainMs when CleverTap hangs', async (t, { sink, store, worker }) => {
  const w = worker({ drainMs: 200, requestTimeoutMs: 10_000, now: Date.now, pollMs: 60_000 });
  sink.reply('hang');
  await store.ingest({ callbacks: [status('acme', 'm1', 'sent')], pending: [] }, Date.now());
  w.start();
  for (let i = 0; i < 200 && sink.received.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
  const started = Date.now();
  await w.stop();
  const took = Date.now() - started;
  t.ok(took >= 150 && took < 1500, `stopped after ${took} ms`);
  const [rec] = await store.claimDue(Date.now() + 60_000, 10, 1000);
  t.match(rec, { msgId: 'm1', attempts: 1, lastError: /drain time/ }, 'the aborted callback stays in the outbox for the next process');
});

test('onAttempt hears every POST: its HTTP status, or the error when none came, and the outcome', async (t, { sink, worker, ingest, clock }) => {
  const attempts: string[] = [];
  const w = worker({
    requestTimeoutMs: 300,
    onAttempt: (records, a) => attempts.push([records.map((r) => r.msgId).join(','), a.httpStatus ?? '-', a.outcome, a.error, a.at === clock.now && a.ms >= 0 ? 'timed' : 'untimed'].filter((x) => x !== undefined).join(' ')),
  });
  await ingest(status('acme', 'm1', 'sent'));
  sink.reply({ status: 503 }, 'hang', { status: 400, body: 'bad' });
  await w.runOnce();
  clock.now += 1000; // past the back-off
  await w.runOnce();
  clock.now += 1000;
  await w.runOnce();
  t.same(attempts, ['m1 503 retry HTTP 503 timed', 'm1 - retry timeout after 300 ms timed', 'm1 400 refused HTTP 400: bad timed']);
  await ingest(status('acme', 'm2', 'sent'));
  await w.runOnce();
  t.equal(attempts[3], 'm2 200 delivered timed');
});
