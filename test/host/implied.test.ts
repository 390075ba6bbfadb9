// What a status implies when it arrives before the lower ones (BSPs do not keep order): read ⇒
// delivered ⇒ sent, stamped with the nearest higher status's time; failed and clicks imply nothing.
import t from 'tap';
import { impliedCallbacks, statusCallbackFor } from '../../engine/host/callbacks.js';
import type { StatusEvent } from '../../engine/mapping/webhook.js';
import { projectSchema, validatorFor } from '../../engine/mapping/schema-validator.js';
import type { NewCallback } from '../../engine/stores/store.js';

const validStatus = validatorFor(projectSchema('clevertap/status-callback.schema.json'));
const cb = (msgId: string, status: StatusEvent['status'], timestamp: string, tenant = 'acme'): NewCallback =>
  statusCallbackFor(tenant, msgId, { event: 'status', providerMessageId: `wamid.${msgId}`, status, timestamp }, 'v7');
const show = (list: NewCallback[]) => list.map((c) => `${c.tenant}/${c.msgId} ${(c.payload as { status: string }).status} ${(c.payload as { timestamp: string }).timestamp}`);

t.test('read alone implies delivered and sent, with its timestamp, marked implied, keyed as the real ones', async (t) => {
  const out = impliedCallbacks([cb('m1', 'read', '1700000300')]);
  t.same(show(out), ['acme/m1 delivered 1700000300', 'acme/m1 sent 1700000300']);
  t.match(out, [
    { implied: true, rank: 2, kind: 'status', dedupeKey: cb('m1', 'delivered', '0').dedupeKey, mappingVersion: 'v7' },
    { implied: true, rank: 1, dedupeKey: cb('m1', 'sent', '0').dedupeKey },
  ]);
  t.ok(out.every((c) => validStatus({ payloadVersion: '0.1', statuses: [c.payload] })), 'bodies are exactly the CleverTap schema');
  t.same(Object.keys(out[0]!.payload as object), ['msgId', 'status', 'timestamp'], 'no flag in the body');
});

t.test('the nearest higher status lends its time; what the webhook has is not implied', async (t) => {
  t.same(show(impliedCallbacks([cb('m1', 'read', '1700000300'), cb('m1', 'delivered', '1700000200')])), ['acme/m1 sent 1700000200']);
  t.same(show(impliedCallbacks([cb('m1', 'sent', '1700000100'), cb('m1', 'read', '1700000300')])), ['acme/m1 delivered 1700000300']);
  t.same(show(impliedCallbacks([cb('m1', 'delivered', '1700000200'), cb('m1', 'sent', '1700000100'), cb('m1', 'read', '1700000300')])), []);
  t.same(show(impliedCallbacks([cb('m1', 'sent', '1700000100')])), []);
});

t.test('per message and tenant; failed and clicks imply nothing; implied ones imply nothing more', async (t) => {
  const out = impliedCallbacks([cb('m1', 'delivered', '1700000200'), cb('m1', 'delivered', '1700000200', 'beta'), cb('m2', 'failed', '1700000200'), cb('m3', 'clicked', '1700000200')]);
  t.same(show(out), ['acme/m1 sent 1700000200', 'beta/m1 sent 1700000200']);
  t.same(impliedCallbacks(out), []);
});
