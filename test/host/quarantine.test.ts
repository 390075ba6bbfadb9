// The webhook flow's side of the quarantine, without a server: which part of a webhook is kept, which
// goes through (webhook.split), what is refused, which headers are never stored, and the replay.
import t from 'tap';
import { join } from 'node:path';
import pino from 'pino';
import { handleWebhook, headersWithoutSecrets, mapOrSplit, replayQuarantined } from '../../engine/host/webhook-flow.js';
import { createMetrics } from '../../engine/host/metrics.js';
import type { TenantConfig } from '../../engine/host/config.js';
import { loadMapping, type Mapping } from '../../engine/mapping/loader.js';
import { sign } from '../../engine/mapping/webhook.js';
import { openSqliteStore } from '../../engine/stores/sqlite.js';
import { ROOT, SETTINGS } from '../support/stack.js';

function load(name: string): Mapping {
  const r = loadMapping(join(ROOT, 'mappings', name));
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
  return r.mapping;
}
const meta = load('meta-cloud');
const settings = { ...SETTINGS, apiVersion: 'v21.0', baseUrl: 'http://127.0.0.1:1' };

const text = (from: string | undefined, id: string) => ({ ...(from === undefined ? {} : { from }), id, timestamp: '1750000000', type: 'text', text: { body: 'hi' } });
const batch = (messages: object[], statuses: object[] = []) => ({
  object: 'whatsapp_business_account',
  entry: [{ id: '1', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '15550783881', phone_number_id: '1' }, messages, statuses } }] }],
});
const req = (body: unknown, headers: Record<string, string> = {}) => {
  const rawBody = typeof body === 'string' ? body : JSON.stringify(body);
  return { url: 'http://h/v1/tenants/acme/webhook', query: {}, rawBody, headers: { 'content-type': 'application/json', 'X-Hub-Signature-256': sign(meta, rawBody, SETTINGS.appSecret), ...headers } };
};

t.test('mapOrSplit: whole, item by item, all bad, no split, unreadable', async (t) => {
  const good = await mapOrSplit(meta, req(batch([text('919800000001', 'wamid.A'), text('919800000002', 'wamid.B')])), settings);
  t.equal(good.events.length, 2);
  t.same(good.unmapped, []);

  // A message without `from`: the events break the events schema, for the whole body.
  const mixed = await mapOrSplit(meta, req(batch([text('919800000001', 'wamid.A'), text(undefined, 'wamid.B')], [{ id: 'wamid.S', status: 'read', timestamp: '1750000000', recipient_id: '1' }])), settings);
  t.same(mixed.events.map((e) => e.providerMessageId), ['wamid.S', 'wamid.A'], 'the status and the good message');
  t.equal(mixed.unmapped.length, 1);
  t.same(mixed.unmapped[0]!.part, { index: 2, of: 3 });
  t.equal(mixed.unmapped[0]!.error.code, 'WAB_MAPPING_OUTPUT');
  t.match(mixed.unmapped[0]!.error.where, /mapping\.yaml:\d+:\d+$/, 'output errors point at webhook.events');
  t.same(JSON.parse(mixed.unmapped[0]!.request.rawBody).entry[0].changes[0].value.messages, [text(undefined, 'wamid.B')], 'the failing item alone, in its envelope');

  const allBad = batch([text(undefined, 'wamid.A'), text(undefined, 'wamid.B')]);
  const bad = await mapOrSplit(meta, req(allBad), settings);
  t.same(bad.events, []);
  t.equal(bad.unmapped.length, 1);
  t.notOk(bad.unmapped[0]!.part, 'nothing maps: the whole body is kept, as received');
  t.equal(bad.unmapped[0]!.request.rawBody, JSON.stringify(allBad));

  const noSplit = { ...meta, webhook: { ...meta.webhook!, split: undefined } };
  const whole = await mapOrSplit(noSplit, req(batch([text('919800000001', 'wamid.A'), text(undefined, 'wamid.B')])), settings);
  t.same([whole.events, whole.unmapped.length, whole.unmapped[0]!.part], [[], 1, undefined], 'a mapping without split keeps the whole body');

  await t.rejects(mapOrSplit(meta, req('{not json'), settings), { code: 'WAB_INPUT_INVALID' }, 'a body that is not JSON is a bad request, not quarantined');
});

t.test('headers: the signature and every credential are redacted, the rest kept', async (t) => {
  t.same(
    headersWithoutSecrets(meta, { 'Content-Type': 'application/json', 'X-Hub-Signature-256': 'sha256=ab', Authorization: 'Bearer x', 'X-Api-Key': 'k', 'X-Auth-Token': 't', Cookie: 'c', 'User-Agent': 'facebookexternalua', 'X-Request-Id': 'r1' }),
    { 'content-type': 'application/json', 'x-hub-signature-256': '[redacted]', authorization: '[redacted]', 'x-api-key': '[redacted]', 'x-auth-token': '[redacted]', cookie: '[redacted]', 'user-agent': 'facebookexternalua', 'x-request-id': 'r1' },
  );
});

t.test('handleWebhook and replayQuarantined on a store', async (t) => {
  const store = openSqliteStore(':memory:');
  t.teardown(() => store.close());
  const metrics = createMetrics();
  const deps = { store, metrics, logger: pino({ level: 'silent' }), media: { url: () => 'http://m' } as never };
  const tenant = { id: 'acme', provider: 'meta-cloud', settings } as unknown as TenantConfig;

  const forged = await handleWebhook(deps, tenant, meta, req(batch([text(undefined, 'wamid.F')]), { 'X-Hub-Signature-256': 'sha256=00' }));
  t.equal(forged.httpStatus, 401);
  t.equal(await store.quarantineSize(), 0, 'unauthenticated input is never kept');

  const out = await handleWebhook(deps, tenant, meta, req(batch([text('919800000001', 'wamid.A'), text(undefined, 'wamid.B')])));
  t.match(out, { httpStatus: 200, body: { received: 1, accepted: 1, quarantined: [/^\d+$/], message: /1 of its 2 items \(WAB_MAPPING_OUTPUT\)/ } });
  t.match((await store.stats()).outboxPending, 1, 'the good item is in the outbox');
  const [entry] = await store.listQuarantined(10);
  t.match(entry, { tenant: 'acme', mapping: 'meta-cloud', mappingVersion: meta.version, part: { index: 1, of: 2 }, request: { headers: { 'x-hub-signature-256': '[redacted]' } } });
  t.match(await metrics.registry.getSingleMetricAsString('wabridge_quarantined_total'), /wabridge_quarantined_total\{tenant="acme"\} 1/);
  t.match(await metrics.registry.getSingleMetricAsString('wabridge_quarantine_size'), /wabridge_quarantine_size 1/);

  // Still broken: kept, with the attempt counted. Gone tenant: skipped. Unknown id: missing.
  t.match(await replayQuarantined(deps, new Map([['acme', tenant]]), () => meta, undefined), [{ id: entry!.id, outcome: 'failed', error: { code: 'WAB_MAPPING_OUTPUT' } }]);
  t.match(await store.getQuarantined(entry!.id), { attempts: 1 });
  t.match(await replayQuarantined(deps, new Map(), () => meta, [entry!.id, '424242']), [{ outcome: 'skipped', reason: /tenant 'acme'/ }, { id: '424242', outcome: 'missing' }]);

  // A "fixed" mapping (here: one that maps a missing `from` to a placeholder) replays it.
  const fixedText = meta.webhook!.events;
  const fixed: Mapping = {
    ...meta,
    version: 'fixed',
    webhook: {
      ...meta.webhook!,
      events: { ...fixedText, evaluate: async (input, b) => ((await fixedText.evaluate({ ...(input as object), body: JSON.parse(JSON.stringify((input as { body: unknown }).body).replace('"id":"wamid.B"', '"from":"919800000009","id":"wamid.B"')) }, b)) as unknown), now: undefined },
    },
  };
  t.match(await replayQuarantined(deps, new Map([['acme', tenant]]), () => fixed, undefined), [{ id: entry!.id, outcome: 'replayed', accepted: 1 }]);
  t.equal(await store.quarantineSize(), 0);
  t.match((await store.stats()).outboxPending, 2);
  t.match(await metrics.registry.getSingleMetricAsString('wabridge_quarantine_size'), /wabridge_quarantine_size 0/);
});
