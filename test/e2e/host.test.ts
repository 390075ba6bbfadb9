// The real server against the demo's BSP (simulated) and the CleverTap sink, all on 127.0.0.1. The
// webhooks built here are in the demo BSP's wire format, as the BSP would send them.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { parseDocument } from 'yaml';
import { secretValues, signatureHeaders } from '../support/demo.js';
import { DEMO, ROOT, SETTINGS, eventually, postBuiltWebhook, startStack, type Stack } from '../support/stack.js';

const examples = join(ROOT, 'examples', 'clevertap');
const example = (name: string) => readFileSync(join(examples, name), 'utf8');
const withMsgId = (name: string, msgId: string, extra: Record<string, unknown> = {}) => ({ ...JSON.parse(example(name)), msgId, ...extra });

const statusesOf = (s: Stack, msgId: string) => s.sink.statuses('demo').filter((x) => x.msgId === msgId).map((x) => x.status);

async function admin(s: Stack, path: string, method: 'GET' | 'POST' = 'GET') {
  const res = await request(`${s.host.url}${path}`, { method, headers: { authorization: 'Bearer e2e-admin-token-0123456789' } });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

/** Posts a webhook to the demo tenant, signed as the tenant's BSP signs (or with `signature`). */
async function postWebhook(s: Stack, body: object, signature?: string, bsp = { provider: DEMO.provider, settings: SETTINGS }) {
  const raw = JSON.stringify(body);
  const mapping = s.host.registry.get(bsp.provider)!;
  const res = await request(`${s.host.url}/v1/tenants/demo/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(signature === undefined ? signatureHeaders(mapping, raw, bsp.settings) : { [mapping.webhook!.signature!.header]: signature }) },
    body: raw,
  });
  return { status: res.statusCode, body: await res.body.json() };
}

/**
 * An inbound audio webhook in the demo BSP's format: the first of its webhook fixtures whose expected
 * events are one incoming audio message (its body, sender and MIME type).
 */
function demoAudioWebhook(): { body: object; from: string; mimeType: string } {
  const root = join(DEMO.dir, 'fixtures');
  for (const name of readdirSync(root).sort()) {
    const at = (f: string) => join(root, name, f);
    if (!existsSync(at('input.json')) || !existsSync(at('expected.json'))) continue;
    const { events } = JSON.parse(readFileSync(at('expected.json'), 'utf8')) as { events?: { event: string; message?: { type?: string; from?: string; audio?: { mimeType?: string } } }[] };
    const m = events?.length === 1 && events[0]!.event === 'incoming' ? events[0]!.message : undefined;
    if (m?.type === 'audio' && m.from && m.audio?.mimeType) return { body: JSON.parse(readFileSync(at('input.json'), 'utf8')) as object, from: m.from, mimeType: m.audio.mimeType };
  }
  throw new Error("the demo's mapping has no webhook fixture of one inbound audio message");
}
const AUDIO = demoAudioWebhook();
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
    t.match(await postWebhook(s, AUDIO.body), { status: 200, body: { received: 1, accepted: 1 } });
    await eventually(() => incomingOf(s, AUDIO.from).length > 0, 'the audio callback');
    const [cb] = incomingOf(s, AUDIO.from);
    t.match(cb, { accepted: true, body: { type: 'audio', audio: { mimeType: AUDIO.mimeType, mediaURL: /^http:\/\/127\.0\.0\.1:\d+\/v1\/media\// } } });
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
    // the verification request the demo's BSP sends (its simulator.yaml handshake), then one signed with other secrets
    const good = await s.sim.handshakeRequest();
    if (!good) throw new Error("the demo's simulator declares no handshake");
    const hs = await request(`${s.host.url}/v1/tenants/demo/webhook?${new URLSearchParams(good.query)}`);
    t.equal(hs.statusCode, 200);
    t.equal(await hs.body.text(), good.answer);
    const others = Object.fromEntries(secretValues(s.host.registry.get(DEMO.provider)!, SETTINGS).map(([name]) => [name, 'nope']));
    const forgedHs = (await s.sim.handshakeRequest({ ...SETTINGS, ...others }))!;
    const bad = await request(`${s.host.url}/v1/tenants/demo/webhook?${new URLSearchParams(forgedHs.query)}`);
    t.equal(bad.statusCode, 403);
    await bad.body.dump();

    // status webhooks as the demo's BSP sends them, built by its simulator
    const sigHeader = s.host.registry.get(DEMO.provider)!.webhook!.signature!.header.toLowerCase();
    const withoutSignature = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).filter(([k]) => k.toLowerCase() !== sigHeader));
    const forgedHook = await s.sim.statusWebhook({ providerMessageId: 'bsp-id.FORGED', status: 'delivered' });
    const forged = await postBuiltWebhook(s, { ...forgedHook, headers: { ...withoutSignature(forgedHook.headers), [sigHeader]: 'sha256=' + '0'.repeat(64) } });
    t.equal(forged.status, 401, 'bad signature rejected');
    const unsignedHook = await s.sim.statusWebhook({ providerMessageId: 'bsp-id.X', status: 'sent' });
    const unsigned = await postBuiltWebhook(s, { ...unsignedHook, headers: withoutSignature(unsignedHook.headers) });
    t.equal(unsigned.status, 401, 'missing signature rejected');

    // The status arrives before the send's correlation exists (BSP faster than its own answer).
    const earlyHook = await s.sim.statusWebhook({ providerMessageId: 'bsp-id.EARLY1', status: 'delivered' });
    const early = await postBuiltWebhook(s, earlyHook);
    t.match(early, { status: 200, body: { received: 1 } });
    t.notOk(statusesOf(s, 'e2e|race|1|1').length, 'held, not delivered without a msgId');
    await s.host.store.saveCorrelation('demo', 'bsp-id.EARLY1', 'e2e|race|1|1', 60_000);
    await eventually(() => statusesOf(s, 'e2e|race|1|1').includes('delivered'), 'the held status, once correlated');
    const again = await postBuiltWebhook(s, earlyHook);
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
    const demo = (st.body.mappings as { name: string }[]).find((m) => m.name === DEMO.provider);
    t.match(demo, { name: DEMO.provider, version: /^[0-9a-f]{12}$/ }, "the demo's mapping loaded, with its version hash");
    t.equal((await request(`${s.host.url}/v1/admin/status`)).statusCode, 401, 'admin needs the token');
  });
});

t.test('incomingAudioType: voice, for a CleverTap account that expects it', async (t) => {
  // The sink plays an account that knows only "voice": the default "audio" would be refused there.
  const s = await startStack({ incomingAudioType: 'voice', sinkAudioType: 'voice' });
  t.teardown(() => s.close());
  t.match(await postWebhook(s, AUDIO.body), { status: 200, body: { accepted: 1 } });
  await eventually(() => incomingOf(s, AUDIO.from).length > 0, 'the voice callback');
  const [cb] = incomingOf(s, AUDIO.from);
  t.match(cb, { accepted: true, answered: 200, body: { type: 'voice', audio: { mimeType: AUDIO.mimeType, mediaURL: /\/v1\/media\// } } });
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
  // (the BSP's share is the deadline, less while the loop runs late: send-budget.test.ts)
  t.match(r.body, { status: 'failure', error: { code: 2004, message: /^BSP did not answer within \d+ ms$/ } });
  // 900 ms plus scheduling: well before the BSP's 2.5 s (a loaded CI machine gets some slack).
  t.ok(took < 2000, `answered at the deadline, not when the BSP answered (${took} ms)`);
  await eventually(() => statusesOf(s, 'e2e|slow|1|1').includes('read'), 'statuses of the late message', 15_000);
  t.same(statusesOf(s, 'e2e|slow|1|1'), ['sent', 'delivered', 'read'], 'no ghost message: its statuses carry the msgId');
  // The BSP's late answer is still read and its id stored, so a BSP that does not echo the msgId
  // (most do not) still gets its statuses correlated.
  const wamid = s.sim.sent().find((x) => x.msgId === 'e2e|slow|1|1')!.providerMessageId!;
  await eventually(async () => (await s.host.store.findMsgIds('demo', [wamid]).then((m) => m[0])) === 'e2e|slow|1|1', 'the late correlation', 15_000);
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
  const file = join(s.dir, 'mappings', DEMO.provider, 'mapping.yaml');
  const original = readFileSync(file, 'utf8');
  const v1 = s.host.registry.get(DEMO.provider)!.version;

  // edits of the demo's send.request.body made through the YAML document, so they fit any mapping
  const withBody = (edit: (body: string) => string) => {
    const doc = parseDocument(original);
    doc.setIn(['send', 'request', 'body'], edit(String(doc.getIn(['send', 'request', 'body']))));
    return doc.toString();
  };
  writeFileSync(file, withBody((body) => `(${body}`));
  await eventually(async () => Boolean(((await admin(s, '/v1/admin/status')).body.mappings as { name: string; lastError?: string }[]).find((m) => m.name === DEMO.provider)?.lastError), 'the rejected reload in admin status', 30_000);
  const st = ((await admin(s, '/v1/admin/status')).body.mappings as { name: string; version: string; lastError: string }[]).filter((m) => m.name === DEMO.provider);
  t.equal(st[0]!.version, v1, 'still serving the previous version');
  t.match(st[0]!.lastError, /mapping\.yaml:\d+:\d+: send\.request\.body/, 'error names file:line:col');
  t.same((await s.send(withMsgId('template-body-footer.json', 'e2e|reload|1|1'))).body, { status: 'success' }, 'old version keeps serving');
  t.ok(s.logs.some((l) => l.includes('mapping edit rejected')), 'one clear log line');

  // A good edit that changes behaviour and keeps the fixtures passing: a comment.
  writeFileSync(file, `${original}\n# edited\n`);
  await eventually(() => s.host.registry.get(DEMO.provider)!.version !== v1, 'the new version', 30_000);
  t.same((await s.send(withMsgId('template-body-footer.json', 'e2e|reload|2|1'))).body, { status: 'success' });
  const st2 = ((await admin(s, '/v1/admin/status')).body.mappings as { name: string; version: string; fixtures: number }[]).filter((m) => m.name === DEMO.provider);
  t.ok(st2[0]!.fixtures! > 50, 'its golden fixtures ran before the swap');

  // An edit that compiles but breaks a golden fixture is refused too.
  writeFileSync(file, withBody((body) => `$merge([${body}, {"wabridge_edit": 1}])`));
  await eventually(async () => /golden fixture/.test(String(((await admin(s, '/v1/admin/status')).body.mappings as { name: string; lastError?: string }[]).find((m) => m.name === DEMO.provider)?.lastError)), 'fixture failure reported', 30_000);
  t.not(s.host.registry.get(DEMO.provider)!.version, undefined);
});

// The quarantine is the engine's: it runs on a made-up batching BSP (test/fixtures/mappings/acme), whose
// webhook is {"statuses": [...], "messages": [...]} and whose webhook.split cuts it item by item.
const ACME_ROOT = join(ROOT, 'test', 'fixtures', 'mappings');
const ACME = { provider: 'acme', settings: { apiKey: 'e2e-acme-key', webhookSecret: 'e2e-acme-webhook-secret' } };
const acmeText = (sender: string, id: string, at: string, text: string) => ({ id, sender, at, text });
const acmeBatch = (b: { messages?: object[]; statuses?: object[] }) => ({ statuses: b.statuses ?? [], messages: b.messages ?? [] });

async function adminPost(s: Stack, path: string, body: unknown) {
  const res = await request(`${s.host.url}${path}`, { method: 'POST', headers: { authorization: 'Bearer e2e-admin-token-0123456789', 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

type Quarantined = { id: string; tenant: string; mapping: string; mappingVersion: string; attempts: number; part?: { index: number; of: number }; request: { rawBody: string; headers: Record<string, string> }; error: { code: string; message: string; where?: string } };

t.test('quarantine: unmappable webhooks are acknowledged and kept; good items of a batch go at once; fixture, fix, reload, replay', async (t) => {
  const s = await startStack({ copyMappings: true, mappingsDir: ACME_ROOT, ...ACME });
  t.teardown(() => s.close());
  const post = (body: object, signature?: string) => postWebhook(s, body, signature, ACME);
  const file = join(s.dir, 'mappings', ACME.provider, 'mapping.yaml');
  const original = readFileSync(file, 'utf8');
  const good = s.host.registry.get(ACME.provider)!.version;
  // A mapping bug that shows on some inputs only (texts sent after 2030), as a real one would: the
  // fixtures still pass, so the hot reload takes it.
  const doc = parseDocument(original);
  doc.setIn(['webhook', 'events'], `($all := ${String(doc.getIn(['webhook', 'events'])).trim()}; $exists($all[event = "incoming" and $number(message.timestamp) > 1900000000]) ? $error("texts after 2030 are not supported") : $all)`);
  writeFileSync(file, doc.toString());
  await eventually(() => s.host.registry.get(ACME.provider)!.version !== good, 'the broken version loaded', 60_000);
  const broken = s.host.registry.get(ACME.provider)!.version;

  // One webhook, nothing in it maps: 200 with the quarantine id, kept whole (the BSP's own bytes).
  const lone = acmeBatch({ messages: [acmeText('919800000001', 'm.QUARANTINED1', '1950000000', 'hola')] });
  const r1 = await post(lone);
  t.match(r1, { status: 200, body: { received: 0, accepted: 0, quarantined: [/^\d+$/], message: /could not map it \(WAB_MAPPING_EVAL\): kept in quarantine/ } });
  const loneId = (r1.body as { quarantined: string[] }).quarantined[0]!;
  const q1 = (await admin(s, `/v1/admin/quarantine/${loneId}`)).body as unknown as Quarantined;
  t.match(q1, { id: loneId, tenant: 'demo', mapping: ACME.provider, mappingVersion: broken, attempts: 0, error: { code: 'WAB_MAPPING_EVAL', message: /texts after 2030 are not supported/, where: /mapping\.yaml:\d+:\d+$/ } });
  t.equal(q1.request.rawBody, JSON.stringify(lone), 'the raw body as received');
  const signatureHeader = s.host.registry.get(ACME.provider)!.webhook!.signature!.header;
  t.equal(q1.request.headers[signatureHeader.toLowerCase()], '[redacted]', 'the signature header is not kept');
  t.equal(q1.request.headers['content-type'], 'application/json');
  t.notOk('part' in q1, 'kept whole');

  // A mixed batch: the status and the good text go to CleverTap at once, the bad text is quarantined alone.
  const mixed = acmeBatch({
    messages: [acmeText('919800000002', 'm.Q2', '1750000000', 'fine'), acmeText('919800000003', 'm.Q3', '1950000001', 'late')],
    statuses: [{ id: 'm.QS', state: 'delivered', at: '1750000000', ref: 'e2e|quarantine|1|1' }],
  });
  const r2 = await post(mixed);
  t.match(r2, { status: 200, body: { received: 2, accepted: 2, quarantined: [/^\d+$/], message: /could not map 1 of its 3 items/ } });
  const partId = (r2.body as { quarantined: string[] }).quarantined[0]!;
  await eventually(() => incomingOf(s, '919800000002').length === 1 && statusesOf(s, 'e2e|quarantine|1|1').includes('delivered'), 'the good events of the batch');
  t.same(incomingOf(s, '919800000003'), [], 'the bad item is not delivered');
  const q2 = (await admin(s, `/v1/admin/quarantine/${partId}`)).body as unknown as Quarantined;
  t.same(q2.part, { index: 2, of: 3 }, 'the third piece: statuses come first in the split');
  t.same((JSON.parse(q2.request.rawBody) as ReturnType<typeof acmeBatch>).messages, [mixed.messages[1]], 'only the item that failed');

  // Unauthenticated input is refused, never quarantined.
  const forged = await post(lone, '0'.repeat(64));
  t.equal(forged.status, 401);
  const list = (await admin(s, '/v1/admin/quarantine')).body as { size: number; quarantined: Quarantined[] };
  t.equal(list.size, 2, 'two entries; the forged webhook is not one');
  t.same(list.quarantined.map((q) => q.id), [loneId, partId]);
  const metrics = await (await request(`${s.host.url}/metrics`)).body.text();
  t.match(metrics, /wabridge_quarantined_total\{tenant="demo"\} 2/);
  t.match(metrics, /wabridge_quarantine_size 2/);
  t.match(metrics, /wabridge_webhooks_total\{tenant="demo",outcome="quarantined"\} 2/);

  // Replaying with the mapping still broken: both stay, with the new attempt counted.
  const early = await adminPost(s, '/v1/admin/quarantine/replay', { ids: [loneId, partId] });
  t.match(early.body, { replayed: 0, failed: 2, size: 2 });
  t.match((await admin(s, `/v1/admin/quarantine/${loneId}`)).body, { attempts: 1, error: { code: 'WAB_MAPPING_EVAL' } });
  t.equal((await adminPost(s, '/v1/admin/quarantine/replay', { ids: 'all' })).status, 400, 'a malformed replay request is a 400');
  t.equal((await admin(s, '/v1/admin/quarantine/999999')).status, 404);
  t.equal((await request(`${s.host.url}/v1/admin/quarantine`)).statusCode, 401, 'admin needs the token');

  // The quarantined webhook becomes a fixture: red with the broken mapping.
  const { quarantine } = await import('../../engine/cli/quarantine.js');
  const { runMappingFixtures } = await import('../../engine/mapping/golden.js');
  const { loadMapping } = await import('../../engine/mapping/loader.js');
  const caseName = 'webhook-quarantined-late-text';
  const caseDir = join(s.dir, 'mappings', ACME.provider, 'fixtures', caseName);
  const printed: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  // (no assertion while stdout is taken: tap reports on it)
  process.stdout.write = ((chunk: string) => printed.push(String(chunk)) > 0) as typeof process.stdout.write;
  let code: number;
  const cli = { config: s.configFile, url: s.host.url, json: false };
  const codes: number[] = [];
  try {
    codes.push(await quarantine('list', [], cli), await quarantine('show', [partId], cli));
  } finally {
    process.stdout.write = write;
  }
  t.same(codes, [0, 0]);
  t.match(printed.join(''), new RegExp(`^${loneId}  \\S+  demo  ${ACME.provider}@${broken}  attempts=1  WAB_MAPPING_EVAL [^ ]*mapping\\.yaml:\\d+:\\d+ `, 'm'), 'list: one line per entry');
  t.match(printed.join(''), /2 quarantined webhook\(s\)/);
  t.match(printed.join(''), /"index": 2/, 'show: the entry as JSON');
  await t.rejects(quarantine('show', ['424242'], cli), { code: 'WAB_INPUT_INVALID', message: /HTTP 404/ }, 'an unknown id (exit 2)');
  await t.rejects(quarantine('to-fixture', [loneId, 'no-such-bsp/x'], cli), { code: 'WAB_INPUT_INVALID', message: /no mapping no-such-bsp/ });
  printed.length = 0;
  process.stdout.write = ((chunk: string) => printed.push(String(chunk)) > 0) as typeof process.stdout.write;
  try {
    code = await quarantine('to-fixture', [loneId, `${ACME.provider}/${caseName}`], { config: s.configFile, url: s.host.url, json: false });
  } finally {
    process.stdout.write = write;
  }
  t.equal(code, 0);
  t.match(printed.join(''), new RegExp(`red: ${ACME.provider} still fails on it: WAB_MAPPING_EVAL: webhook\\.events: texts after 2030 are not supported`), 'to-fixture says the case is red, and why');
  const input = readFileSync(join(caseDir, 'input.json'), 'utf8');
  t.notOk(/919800000001|hola|QUARANTINED1/.test(input), 'the fixture holds no real number, name, text or id');
  t.notOk(readFileSync(join(caseDir, 'fixture.yaml'), 'utf8').toLowerCase().includes(signatureHeader.toLowerCase()), 'nor the signature: the runner signs with the test secret');
  const runCase = async () => {
    const loaded = loadMapping(join(s.dir, 'mappings', ACME.provider));
    if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.message).join('; '));
    return (await runMappingFixtures(loaded.mapping, { filter: `${ACME.provider}/${caseName}` }))[0]!;
  };
  t.match(await runCase(), { outcome: 'fail', detail: /no expected\.json yet/ }, 'red before the fix');

  // The fix, its expected.json written by the runner, the reload, then the replay through the CLI.
  writeFileSync(file, original);
  t.match(await runCase(), { outcome: 'fail', detail: /no expected\.json yet/ }, 'maps once fixed; nothing expected yet');
  const loaded = loadMapping(join(s.dir, 'mappings', ACME.provider));
  t.ok(loaded.ok);
  if (loaded.ok) t.match(await runMappingFixtures(loaded.mapping, { filter: `${ACME.provider}/${caseName}`, update: true }), [{ outcome: 'updated' }]);
  t.match(JSON.parse(readFileSync(join(caseDir, 'expected.json'), 'utf8')), { events: [{ event: 'incoming', message: { type: 'text', timestamp: '1950000000' } }] });
  t.match(await runCase(), { outcome: 'pass' }, 'green after the fix');
  await adminPost(s, '/v1/admin/reload', {});
  await eventually(() => s.host.registry.get(ACME.provider)!.version === good, 'the fixed mapping loaded (its fixtures, the new one included, pass)', 60_000);

  process.stdout.write = ((chunk: string) => printed.push(String(chunk)) > 0) as typeof process.stdout.write;
  try {
    code = await quarantine('replay', [], { config: s.configFile, url: s.host.url, json: true });
  } finally {
    process.stdout.write = write;
  }
  t.equal(code, 0, 'every entry replayed');
  t.match(JSON.parse(printed.at(-1)!), { replayed: 2, failed: 0, size: 0, results: [{ id: loneId, outcome: 'replayed', accepted: 1 }, { id: partId, outcome: 'replayed', accepted: 1 }] });
  await eventually(() => incomingOf(s, '919800000001').length === 1 && incomingOf(s, '919800000003').length === 1, 'the replayed events at the sink');
  t.match(incomingOf(s, '919800000003')[0], { body: { type: 'text', text: { body: 'late' }, timestamp: '1950000001' } });
  t.match((await admin(s, '/v1/admin/quarantine')).body, { size: 0, quarantined: [] }, 'the quarantine is empty');
  t.match(await (await request(`${s.host.url}/metrics`)).body.text(), /wabridge_quarantine_size 0/);
  t.equal(incomingOf(s, '919800000002').length, 1, 'the good item of the batch was not delivered twice');
});
