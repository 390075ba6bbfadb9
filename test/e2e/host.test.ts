// The real server against the simulated Meta Cloud API and the CleverTap sink, all on 127.0.0.1.
import t from 'tap';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { sign } from '../../engine/mapping/webhook.js';
import { ROOT, SETTINGS, eventually, startStack, type Stack } from '../support/stack.js';

const examples = join(ROOT, 'examples', 'clevertap');
const example = (name: string) => readFileSync(join(examples, name), 'utf8');
const withMsgId = (name: string, msgId: string, extra: Record<string, unknown> = {}) => ({ ...JSON.parse(example(name)), msgId, ...extra });

const statusesOf = (s: Stack, msgId: string) => s.sink.statuses('demo').filter((x) => x.msgId === msgId).map((x) => x.status);

async function admin(s: Stack, path: string, method: 'GET' | 'POST' = 'GET') {
  const res = await request(`${s.host.url}${path}`, { method, headers: { authorization: 'Bearer e2e-admin-token-0123456789' } });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

async function postWebhook(s: Stack, body: object, signature?: string) {
  const raw = JSON.stringify(body);
  const mapping = s.host.registry.get('meta-cloud')!;
  const res = await request(`${s.host.url}/v1/tenants/demo/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature ?? sign(mapping, raw, SETTINGS.appSecret) },
    body: raw,
  });
  return { status: res.statusCode, body: await res.body.json() };
}

const statusWebhook = (id: string, status: string) => ({
  object: 'whatsapp_business_account',
  entry: [{ id: '102290129340398', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '15550783881', phone_number_id: SETTINGS.phoneNumberId }, statuses: [{ id, status, timestamp: '1700000000', recipient_id: '919999999999' }] } }] }],
});

/** Meta's webhook for an inbound voice note (as in mappings/meta-cloud/fixtures/webhook-inbound-audio-voice). */
const voiceWebhook = (id: string) => ({
  object: 'whatsapp_business_account',
  entry: [{ id: '102290129340398', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '15550783881', phone_number_id: SETTINGS.phoneNumberId }, contacts: [{ profile: { name: 'S' }, wa_id: '16505551234' }], messages: [{ from: '16505551234', id, timestamp: '1750090702', type: 'audio', audio: { mime_type: 'audio/ogg; codecs=opus', sha256: 'LCrHMO4dM7UXn0bCxbh1oPEy/XP5nq2fJoYqPnhzEmM=', id: '1006541621416575', voice: true } }] } }] }],
});
const incomingOf = (s: Stack, from: string) => s.sink.received().filter((c) => c.kind === 'incoming' && (c.body as { from?: string }).from === from);

t.test('the messaging endpoint', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());

  t.test('every CleverTap sample is answered as CleverTap expects', async (t) => {
    const files = readdirSync(examples).filter((f) => f.endsWith('.json'));
    t.ok(files.length >= 15, `${files.length} samples`);
    for (const f of files) {
      const r = await s.send(example(f));
      const expected = f.includes('bad-scheme') ? { status: 'failure', error: { code: 2001 } } : { status: 'success' };
      t.equal(r.status, 200, `${f}: HTTP 200`);
      t.match(r.body, expected, `${f}: ${JSON.stringify(r.body).slice(0, 120)}`);
    }
  });

  t.test('the validation payload never reaches the BSP', async (t) => {
    const before = s.sim.sent().length;
    t.same((await s.send(example('validation.json'))).body, { status: 'success' });
    t.equal(s.sim.sent().length, before, 'no BSP call');
  });

  t.test('statuses reach CleverTap with the msgId, in order', async (t) => {
    const r = await s.send(withMsgId('template-body-footer.json', 'e2e|order|1|1'));
    t.same(r.body, { status: 'success' });
    await eventually(() => statusesOf(s, 'e2e|order|1|1').length === 3, 'sent, delivered, read at the sink', 15_000);
    t.same(statusesOf(s, 'e2e|order|1|1'), ['sent', 'delivered', 'read']);
  });

  t.test('an inbound reply reaches CleverTap with context.id resolved to the msgId', async (t) => {
    await s.send(withMsgId('template-body-footer.json', 'e2e|reply|1|1'));
    await eventually(() => s.sim.sent().some((x) => x.msgId === 'e2e|reply|1|1' && x.providerMessageId), 'the send at the BSP');
    const wamid = s.sim.sent().find((x) => x.msgId === 'e2e|reply|1|1')!.providerMessageId!;
    await s.sim.sendInbound({ from: '919999999999', text: 'yes please', replyTo: wamid });
    await eventually(() => s.sink.received().some((c) => c.kind === 'incoming' && JSON.stringify(c.body).includes('yes please')), 'the incoming callback');
    const cb = s.sink.received().find((c) => c.kind === 'incoming' && JSON.stringify(c.body).includes('yes please'))!.body as Record<string, unknown>;
    t.match(cb, { payloadVersion: '0.1', from: '919999999999', type: 'text', text: { body: 'yes please' }, context: { id: 'e2e|reply|1|1' } });
  });

  t.test('an inbound image gets a media link CleverTap can fetch', async (t) => {
    await s.sim.sendInbound({ from: '919999999999', image: { mimeType: 'image/png', caption: 'look' } });
    await eventually(() => s.sink.received().some((c) => c.kind === 'incoming' && (c.body as { type?: string }).type === 'image'), 'the image callback');
    const cb = s.sink.received().find((c) => c.kind === 'incoming' && (c.body as { type?: string }).type === 'image')!.body as { image: { mediaURL: string; mimeType: string } };
    t.match(cb.image.mediaURL, /^http:\/\/127\.0\.0\.1:\d+\/v1\/media\//);
    const res = await request(cb.image.mediaURL);
    t.equal(res.statusCode, 200, 'the link serves the file');
    const bytes = Buffer.from(await res.body.arrayBuffer());
    t.equal(bytes.subarray(1, 4).toString(), 'PNG', 'the BSP file, streamed');
    const forged = await request(cb.image.mediaURL.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')));
    t.equal(forged.statusCode, 403, 'a tampered link is refused');
    await forged.body.dump();
  });

  t.test('an inbound voice note reaches CleverTap as type audio by default', async (t) => {
    t.match(await postWebhook(s, voiceWebhook('wamid.e2e-audio-1')), { status: 200, body: { received: 1, accepted: 1 } });
    await eventually(() => incomingOf(s, '16505551234').length > 0, 'the audio callback');
    const [cb] = incomingOf(s, '16505551234');
    t.match(cb, { accepted: true, body: { type: 'audio', audio: { mimeType: 'audio/ogg; codecs=opus', mediaURL: /^http:\/\/127\.0\.0\.1:\d+\/v1\/media\// } } });
  });

  t.test('a msgId over the contract\'s 60 characters is refused with 2001 and never sent', async (t) => {
    const before = s.sim.sent().length;
    const r = await s.send(withMsgId('template-body-footer.json', 'x'.repeat(10_000)));
    t.equal(r.status, 200, 'an answer CleverTap counts');
    t.same(r.body, { status: 'failure', error: { code: 2001, message: "msgId is 10000 characters long; CleverTap's msgId is at most 60" } });
    t.equal(s.sim.sent().length, before, 'no BSP call');
    const sixty = `e2e|bound|${'6'.repeat(50)}`;
    t.same((await s.send(withMsgId('template-body-footer.json', sixty))).body, { status: 'success' }, '60 characters pass');
  });

  t.test('BSP errors map to 2000-2004', async (t) => {
    const cases = [
      ['auth', 2000],
      ['template', 2001],
      ['number', 2002],
      ['rate', 2004],
      ['server', 2004],
    ] as const;
    for (const [scenario, code] of cases) {
      s.sim.setScenario({ scenario, times: 1 });
      const r = await s.send(withMsgId('template-body-footer.json', `e2e|err|${scenario}|1`));
      t.match(r.body, { status: 'failure', error: { code } }, `${scenario} → ${code}: ${JSON.stringify(r.body).slice(0, 140)}`);
    }
  });

  t.test('bad requests get clear 4xx JSON errors', async (t) => {
    t.match(await s.send(example('template-body-footer.json'), { auth: 'demo:wrong' }), { status: 401, body: { message: 'Invalid credentials' } });
    t.match(await s.send(example('template-body-footer.json'), { auth: null }), { status: 401 });
    // Basic: the scheme in any case, the base64 without its padding or with spaces around it
    const b64 = Buffer.from('demo:s3cret').toString('base64');
    for (const authorization of [`basic ${b64}`, `BASIC ${b64}`, `Basic ${b64.replace(/=+$/, '')}`, `Basic   ${b64}`]) {
      t.match(await s.send(withMsgId('template-body-footer.json', `e2e|basic|${authorization.length}|${authorization.charCodeAt(1)}`), { headers: { authorization } }), { status: 200, body: { status: 'success' } }, authorization);
    }
    for (const authorization of [`Bearer ${b64}`, `Basic ${Buffer.from('demo:s3cret ').toString('base64')}`, `Basic ${Buffer.from('demo:s3cre').toString('base64')}`, 'Basic', '']) {
      t.match(await s.send(example('template-body-footer.json'), { headers: { authorization } }), { status: 401 }, `refused: '${authorization}'`);
    }
    // header credentials: exactly the configured value, and not the other tenant's Basic
    const keyed = (headers: Record<string, string>) => s.send(withMsgId('template-body-footer.json', `e2e|keyed|${Object.values(headers).join('').length}|1`), { tenant: 'keyed', headers });
    t.match(await keyed({ 'x-api-key': 'k3y-0123456789' }), { status: 200, body: { status: 'success' } }, 'header credential');
    for (const h of <Record<string, string>[]>[{ 'x-api-key': 'k3y-012345678' }, { 'x-api-key': 'k3y-01234567890' }, { 'x-api-key': 'K3Y-0123456789' }, { 'x-other': 'k3y-0123456789' }, { authorization: `Basic ${b64}` }]) {
      t.match(await keyed(h), { status: 401, body: { message: 'Invalid credentials' } }, `refused: ${JSON.stringify(h)}`);
    }
    t.match(await s.send('{"payloadVersion": 0.1, "to": ', {}), { status: 400, body: { status: 'failure', error: { code: 2004 } } });
    t.match(await s.send(example('template-body-footer.json'), { contentType: 'text/plain' }), { status: 415, body: { code: 'WAB_UNSUPPORTED_MEDIA_TYPE' } });
    t.match(await s.send(JSON.stringify({ pad: 'x'.repeat(1_100_000) })), { status: 413, body: { message: /larger than/ } });
    t.match(await s.send('[1,2,3]'), { status: 422, body: { status: 'failure', error: { code: 2004 } } });
    t.match(await s.send(withMsgId('template-body-footer.json', 'e2e|badto|1|1', { to: '12' })), { status: 200, body: { status: 'failure', error: { code: 2002 } } });
    const unknown = await request(`${s.host.url}/v1/tenants/nobody/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    t.equal(unknown.statusCode, 404);
    t.match(await unknown.body.json(), { code: 'WAB_TENANT_UNKNOWN' });
  });

  t.test('webhooks: handshake, signatures, race with the send', async (t) => {
    const hs = await request(`${s.host.url}/v1/tenants/demo/webhook?hub.mode=subscribe&hub.verify_token=${SETTINGS.verifyToken}&hub.challenge=424242`);
    t.equal(hs.statusCode, 200);
    t.equal(await hs.body.text(), '424242');
    const bad = await request(`${s.host.url}/v1/tenants/demo/webhook?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1`);
    t.equal(bad.statusCode, 403);
    await bad.body.dump();

    const forged = await postWebhook(s, statusWebhook('wamid.FORGED', 'delivered'), 'sha256=' + '0'.repeat(64));
    t.equal(forged.status, 401, 'bad signature rejected');
    const unsigned = await request(`${s.host.url}/v1/tenants/demo/webhook`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(statusWebhook('wamid.X', 'sent')) });
    t.equal(unsigned.statusCode, 401, 'missing signature rejected');
    await unsigned.body.dump();

    // The status arrives before the send's correlation exists (BSP faster than its own answer).
    const early = await postWebhook(s, statusWebhook('wamid.EARLY1', 'delivered'), undefined);
    t.match(early, { status: 200, body: { received: 1 } });
    t.notOk(statusesOf(s, 'e2e|race|1|1').length, 'held, not delivered without a msgId');
    await s.host.store.saveCorrelation('demo', 'wamid.EARLY1', 'e2e|race|1|1', 60_000);
    await eventually(() => statusesOf(s, 'e2e|race|1|1').includes('delivered'), 'the held status, once correlated');
    const again = await postWebhook(s, statusWebhook('wamid.EARLY1', 'delivered'));
    t.match(again.body, { duplicates: 1 }, 'a retried webhook is recognised');
  });

  t.test('health, readiness, metrics, admin', async (t) => {
    t.equal((await request(`${s.host.url}/healthz`)).statusCode, 200);
    t.equal((await request(`${s.host.url}/readyz`)).statusCode, 200);
    const metrics = await (await request(`${s.host.url}/metrics`)).body.text();
    t.match(metrics, /wabridge_messages_total\{tenant="demo",answer="success"\} \d+/);
    t.match(metrics, /wabridge_bsp_request_seconds_bucket/);
    const st = await admin(s, '/v1/admin/status');
    t.equal(st.status, 200);
    const meta = (st.body.mappings as { name: string }[]).find((m) => m.name === 'meta-cloud');
    t.match(meta, { name: 'meta-cloud', version: /^[0-9a-f]{12}$/ }, 'meta-cloud loaded, with its version hash');
    t.equal((await request(`${s.host.url}/v1/admin/status`)).statusCode, 401, 'admin needs the token');
  });
});

t.test('incomingAudioType: voice, for a CleverTap account that expects it', async (t) => {
  // The sink plays an account that knows only "voice": the default "audio" would be refused there.
  const s = await startStack({ incomingAudioType: 'voice', sinkAudioType: 'voice' });
  t.teardown(() => s.close());
  t.match(await postWebhook(s, voiceWebhook('wamid.e2e-voice-1')), { status: 200, body: { accepted: 1 } });
  await eventually(() => incomingOf(s, '16505551234').length > 0, 'the voice callback');
  const [cb] = incomingOf(s, '16505551234');
  t.match(cb, { accepted: true, answered: 200, body: { type: 'voice', audio: { mimeType: 'audio/ogg; codecs=opus', mediaURL: /\/v1\/media\// } } });
  t.notOk('voice' in (cb!.body as object), 'the object stays keyed audio');
  // Other types are untouched by the setting.
  await s.sim.sendInbound({ from: '919999999999', text: 'plain text' });
  await eventually(() => incomingOf(s, '919999999999').length > 0, 'the text callback');
  t.match(incomingOf(s, '919999999999')[0], { accepted: true, body: { type: 'text', text: { body: 'plain text' } } });
});

t.test('a BSP slower than the deadline gets 2004 in time, and its late success is still correlated', async (t) => {
  const s = await startStack({ deadline: '900ms' });
  t.teardown(() => s.close());
  s.sim.setScenario({ scenario: 'slow', delayMs: 2500, times: 1 });
  const started = Date.now();
  const r = await s.send(withMsgId('template-body-footer.json', 'e2e|slow|1|1'));
  const took = Date.now() - started;
  t.match(r.body, { status: 'failure', error: { code: 2004, message: /within 900 ms/ } });
  // 900 ms plus scheduling: well before the BSP's 2.5 s (a loaded CI machine gets some slack).
  t.ok(took < 2000, `answered at the deadline, not when the BSP answered (${took} ms)`);
  await eventually(() => statusesOf(s, 'e2e|slow|1|1').includes('read'), 'statuses of the late message', 15_000);
  t.same(statusesOf(s, 'e2e|slow|1|1'), ['sent', 'delivered', 'read'], 'no ghost message: its statuses carry the msgId');
  // The BSP's late answer is still read and its id stored, so a BSP that does not echo the msgId
  // (most do not) still gets its statuses correlated.
  const wamid = s.sim.sent().find((x) => x.msgId === 'e2e|slow|1|1')!.providerMessageId!;
  await eventually(async () => (await s.host.store.findMsgId('demo', wamid)) === 'e2e|slow|1|1', 'the late correlation', 15_000);
  // counted once the correlation is on disk, which comes a WAL sync after it is readable
  const lateCounted = /wabridge_bsp_late_success_total\{tenant="demo"\} 1/;
  await eventually(async () => lateCounted.test(await (await request(`${s.host.url}/metrics`)).body.text()), 'the late success counted', 15_000);
  t.match(await (await request(`${s.host.url}/metrics`)).body.text(), lateCounted);
});

t.test('CleverTap down for a while: every callback delivered once, in order', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  s.sink.setDown(true);
  const ids = Array.from({ length: 20 }, (_, i) => `e2e|down|${i}|1`);
  for (const id of ids) t.same((await s.send(withMsgId('template-body-footer.json', id))).body, { status: 'success' });
  await s.sim.idle(15_000);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(s.sink.statuses('demo').length, 0, 'nothing accepted while down');
  s.sink.setDown(false);
  await eventually(() => ids.every((id) => statusesOf(s, id).length === 3), 'all 60 statuses after recovery', 30_000);
  for (const id of ids) t.same(statusesOf(s, id), ['sent', 'delivered', 'read'], `${id} in order`);
  t.equal(s.sink.replays(), 0, 'exactly once');
});

t.test('hot reload: a broken edit is refused while the old mapping serves; a good edit is picked up', async (t) => {
  const s = await startStack({ copyMappings: true });
  t.teardown(() => s.close());
  const file = join(s.dir, 'mappings', 'meta-cloud', 'mapping.yaml');
  const original = readFileSync(file, 'utf8');
  const v1 = s.host.registry.get('meta-cloud')!.version;

  writeFileSync(file, original.replace('"messaging_product": "whatsapp",', '"messaging_product": "whatsapp",]'));
  await eventually(async () => Boolean(((await admin(s, '/v1/admin/status')).body.mappings as { name: string; lastError?: string }[]).find((m) => m.name === 'meta-cloud')?.lastError), 'the rejected reload in admin status', 30_000);
  const st = ((await admin(s, '/v1/admin/status')).body.mappings as { name: string; version: string; lastError: string }[]).filter((m) => m.name === 'meta-cloud');
  t.equal(st[0]!.version, v1, 'still serving the previous version');
  t.match(st[0]!.lastError, /mapping\.yaml:\d+:\d+: send\.request\.body/, 'error names file:line:col');
  t.same((await s.send(withMsgId('template-body-footer.json', 'e2e|reload|1|1'))).body, { status: 'success' }, 'old version keeps serving');
  t.ok(s.logs.some((l) => l.includes('mapping edit rejected')), 'one clear log line');

  // A good edit that changes behaviour and keeps the fixtures passing: a comment.
  writeFileSync(file, `${original}\n# edited\n`);
  await eventually(() => s.host.registry.get('meta-cloud')!.version !== v1, 'the new version', 30_000);
  t.same((await s.send(withMsgId('template-body-footer.json', 'e2e|reload|2|1'))).body, { status: 'success' });
  const st2 = ((await admin(s, '/v1/admin/status')).body.mappings as { name: string; version: string; fixtures: number }[]).filter((m) => m.name === 'meta-cloud');
  t.ok(st2[0]!.fixtures! > 50, 'its golden fixtures ran before the swap');

  // An edit that compiles but breaks a golden fixture is refused too.
  writeFileSync(file, original.replace('"recipient_type": "individual",', '"recipient_type": "group",'));
  await eventually(async () => /golden fixture/.test(String(((await admin(s, '/v1/admin/status')).body.mappings as { name: string; lastError?: string }[]).find((m) => m.name === 'meta-cloud')?.lastError)), 'fixture failure reported', 30_000);
  t.not(s.host.registry.get('meta-cloud')!.version, undefined);
});
