// The webhook flow's side of the quarantine, without a server: which part of a webhook is kept, which
// goes through (webhook.split), what is refused, which headers are never stored, and the replay.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { handleWebhook, headersWithoutSecrets, mapOrSplit, replayQuarantined } from '../../engine/host/webhook-flow.js';
import { createMetrics } from '../../engine/host/metrics.js';
import type { TenantConfig } from '../../engine/host/config.js';
import { loadMapping, type Mapping } from '../../engine/mapping/loader.js';
import { sign } from '../../engine/mapping/webhook.js';
import { openSqliteStore } from '../../engine/stores/sqlite.js';

// A made-up BSP (test/fixtures/mappings/acme): batched, signed webhooks, cut into items by webhook.split.
const ACME = fileURLToPath(new URL('../fixtures/mappings/acme', import.meta.url));
const loaded = loadMapping(ACME);
if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.message).join('; '));
const acme: Mapping = loaded.mapping;
const settings = { apiKey: 'k', webhookSecret: 'acme-webhook-secret', baseUrl: 'http://127.0.0.1:1' };

const text = (sender: string | undefined, id: string) => ({ ...(sender === undefined ? {} : { sender }), id, at: '1750000000', text: 'hi' });
const batch = (messages: object[], statuses: object[] = []) => ({ messages, statuses });
const req = (body: unknown, headers: Record<string, string> = {}) => {
  const rawBody = typeof body === 'string' ? body : JSON.stringify(body);
  return { url: 'http://h/v1/tenants/acme/webhook', query: {}, rawBody, headers: { 'content-type': 'application/json', 'X-Acme-Signature': sign(acme, rawBody, settings.webhookSecret), ...headers } };
};

t.test('mapOrSplit: whole, item by item, all bad, no split, unreadable', async (t) => {
  const good = await mapOrSplit(acme, req(batch([text('919800000001', 'm.A'), text('919800000002', 'm.B')])), settings);
  t.equal(good.events.length, 2);
  t.same(good.unmapped, []);

  // A message without a sender: the events break the events schema, for the whole body.
  const mixed = await mapOrSplit(acme, req(batch([text('919800000001', 'm.A'), text(undefined, 'm.B')], [{ id: 'm.S', state: 'read', at: '1750000000' }])), settings);
  t.same(mixed.events.map((e) => e.providerMessageId), ['m.S', 'm.A'], 'the status and the good message');
  t.equal(mixed.unmapped.length, 1);
  t.same(mixed.unmapped[0]!.part, { index: 2, of: 3 });
  t.equal(mixed.unmapped[0]!.error.code, 'WAB_MAPPING_OUTPUT');
  t.match(mixed.unmapped[0]!.error.where, /mapping\.yaml:\d+:\d+$/, 'output errors point at webhook.events');
  t.same(JSON.parse(mixed.unmapped[0]!.request.rawBody).messages, [text(undefined, 'm.B')], 'the failing item alone, in its envelope');

  const allBad = batch([text(undefined, 'm.A'), text(undefined, 'm.B')]);
  const bad = await mapOrSplit(acme, req(allBad), settings);
  t.same(bad.events, []);
  t.equal(bad.unmapped.length, 1);
  t.notOk(bad.unmapped[0]!.part, 'nothing maps: the whole body is kept, as received');
  t.equal(bad.unmapped[0]!.request.rawBody, JSON.stringify(allBad));

  const noSplit = { ...acme, webhook: { ...acme.webhook!, split: undefined } };
  const whole = await mapOrSplit(noSplit, req(batch([text('919800000001', 'm.A'), text(undefined, 'm.B')])), settings);
  t.same([whole.events, whole.unmapped.length, whole.unmapped[0]!.part], [[], 1, undefined], 'a mapping without split keeps the whole body');

  await t.rejects(mapOrSplit(acme, req('{not json'), settings), { code: 'WAB_INPUT_INVALID' }, 'a body that is not JSON is a bad request, not quarantined');
});

t.test('headers: the signature and every credential are redacted, the rest kept', async (t) => {
  t.same(
    headersWithoutSecrets(acme, { 'Content-Type': 'application/json', 'X-Acme-Signature': 'ab', Authorization: 'Bearer x', 'X-Api-Key': 'k', 'X-Auth-Token': 't', Cookie: 'c', 'User-Agent': 'acme-hooks', 'X-Request-Id': 'r1' }),
    { 'content-type': 'application/json', 'x-acme-signature': '[redacted]', authorization: '[redacted]', 'x-api-key': '[redacted]', 'x-auth-token': '[redacted]', cookie: '[redacted]', 'user-agent': 'acme-hooks', 'x-request-id': 'r1' },
  );
});

t.test('handleWebhook and replayQuarantined on a store', async (t) => {
  const store = openSqliteStore(':memory:');
  t.teardown(() => store.close());
  const metrics = createMetrics();
  const deps = { store, metrics, logger: pino({ level: 'silent' }), media: { url: () => 'http://m' } as never };
  const tenant = { id: 'acme', provider: 'acme', settings } as unknown as TenantConfig;

  const forged = await handleWebhook(deps, tenant, acme, req(batch([text(undefined, 'm.F')]), { 'X-Acme-Signature': '00' }));
  t.equal(forged.httpStatus, 401);
  t.equal(await store.quarantineSize(), 0, 'unauthenticated input is never kept');

  const out = await handleWebhook(deps, tenant, acme, req(batch([text('919800000001', 'm.A'), text(undefined, 'm.B')])));
  t.match(out, { httpStatus: 200, body: { received: 1, accepted: 1, quarantined: [/^\d+$/], message: /1 of its 2 items \(WAB_MAPPING_OUTPUT\)/ } });
  t.match((await store.stats()).outboxPending, 1, 'the good item is in the outbox');
  const [entry] = await store.listQuarantined(10);
  t.match(entry, { tenant: 'acme', mapping: 'acme', mappingVersion: acme.version, part: { index: 1, of: 2 }, request: { headers: { 'x-acme-signature': '[redacted]' } } });
  t.match(await metrics.registry.getSingleMetricAsString('wabridge_quarantined_total'), /wabridge_quarantined_total\{tenant="acme"\} 1/);
  t.match(await metrics.registry.getSingleMetricAsString('wabridge_quarantine_size'), /wabridge_quarantine_size 1/);

  // Still broken: kept, with the attempt counted. Gone tenant: skipped. Unknown id: missing.
  t.match(await replayQuarantined(deps, new Map([['acme', tenant]]), () => acme, undefined), [{ id: entry!.id, outcome: 'failed', error: { code: 'WAB_MAPPING_OUTPUT' } }]);
  t.match(await store.getQuarantined(entry!.id), { attempts: 1 });
  t.match(await replayQuarantined(deps, new Map(), () => acme, [entry!.id, '424242']), [{ outcome: 'skipped', reason: /tenant 'acme'/ }, { id: '424242', outcome: 'missing' }]);

  // A "fixed" mapping (here: one that maps a missing sender to a placeholder) replays it.
  const fixedText = acme.webhook!.events;
  const fixed: Mapping = {
    ...acme,
    version: 'fixed',
    webhook: {
      ...acme.webhook!,
      events: { ...fixedText, evaluate: async (input, b) => ((await fixedText.evaluate({ ...(input as object), body: JSON.parse(JSON.stringify((input as { body: unknown }).body).replace('"id":"m.B"', '"sender":"919800000009","id":"m.B"')) }, b)) as unknown), now: undefined },
    },
  };
  t.match(await replayQuarantined(deps, new Map([['acme', tenant]]), () => fixed, undefined), [{ id: entry!.id, outcome: 'replayed', accepted: 1 }]);
  t.equal(await store.quarantineSize(), 0);
  t.match((await store.stats()).outboxPending, 2);
  t.match(await metrics.registry.getSingleMetricAsString('wabridge_quarantine_size'), /wabridge_quarantine_size 0/);
});
