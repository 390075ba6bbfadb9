// The BSP simulator speaks the sinch mapping's BSP (Sinch Conversation API, WHATSAPP channel) from
// mappings/sinch/simulator.yaml: what it answers and posts must go back through the mapping
// (mapResponse, verifySignature, mapWebhook) to the CleverTap codes and events a real Sinch exchange gives.
import t, { type Test } from 'tap';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { loadMapping, type Mapping } from '../../engine/mapping/loader.js';
import { toCanonical } from '../../engine/mapping/pipeline.js';
import { mapResponse, planSend, type HttpRequest } from '../../engine/mapping/send.js';
import { loadSimulator, startBspSimulator, type BspSimulator } from '../../engine/standins/bsp-simulator.js';
import { mapWebhook, verifySignature, type WebhookRequest } from '../../engine/mapping/webhook.js';
import type { CanonicalMessage } from '../../engine/clevertap/model.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const SINCH = here('../../mappings/sinch');
const SETTINGS = parseYaml(readFileSync(join(SINCH, 'fixtures/settings.yaml'), 'utf8')) as Record<string, unknown>;
const loaded = loadMapping(SINCH);
if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.message).join('; '));
const mapping: Mapping = loaded.mapping;

/** A local webhook receiver standing in for wabridge's webhook endpoint. */
async function receiver(t: Test) {
  const got: WebhookRequest[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
      got.push({ url: `http://127.0.0.1${req.url}`, headers, query: {}, rawBody: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = 200;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/sinch/demo`, got };
}

const logged = new WeakMap<BspSimulator, string[]>();

async function simulator(t: Test, webhookUrl: string): Promise<BspSimulator> {
  const problems: string[] = [];
  const logger = { info() {}, warn: (o: object, m?: string) => problems.push(`${m} ${JSON.stringify(o)}`), error: (o: object, m?: string) => problems.push(`${m} ${JSON.stringify(o)}`) };
  const sim = await startBspSimulator({ mappingDir: SINCH, settings: SETTINGS, webhookUrl, statusDelaysMs: { sent: 10, delivered: 30, read: 50 }, retryDelayMs: 10, logger });
  t.teardown(() => sim.close());
  logged.set(sim, problems);
  return sim;
}

function message(file: string, overrides: Record<string, unknown> = {}): CanonicalMessage {
  const payload = { ...JSON.parse(readFileSync(here(`../../examples/clevertap/${file}`), 'utf8')), ...overrides };
  const c = toCanonical(JSON.stringify(payload));
  if (!c.ok) throw new Error(JSON.stringify(c));
  return c.message;
}

/** What wabridge does for one send: plan with the mapping, call the simulator, map the answer. */
async function send(sim: BspSimulator, msg: CanonicalMessage, settings: Record<string, unknown> = {}) {
  const s = { ...SETTINGS, baseUrl: sim.url, ...settings };
  const plan = await planSend(mapping, msg, s);
  if (plan.kind !== 'request') throw new Error(`expected a request, got ${JSON.stringify(plan)}`);
  const req: HttpRequest = plan.request;
  const res = await request(req.url, { method: 'POST', headers: req.headers, body: req.body, headersTimeout: 3000, bodyTimeout: 3000 });
  const text = await res.body.text();
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v;
  const mapped = await mapResponse(mapping, msg, s, { status: res.statusCode, headers, text });
  return { status: res.statusCode, body: JSON.parse(text) as Record<string, unknown>, mapped, sentBody: JSON.parse(req.body!) as Record<string, unknown> };
}

t.test('sinch simulator.yaml loads and compiles', async (t) => {
  const r = loadSimulator(SINCH);
  t.ok(r.ok, r.ok ? 'loads' : JSON.stringify(r.errors));
  if (r.ok) t.equal(r.simulator.name, 'sinch');
});

t.test('template-body-footer.json is accepted; sent/delivered/read webhooks verify and map with msgId', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const msg = message('template-body-footer.json');
  const r = await send(sim, msg);
  t.equal(r.status, 200);
  t.same(Object.keys(r.body).sort(), ['accepted_time', 'message_id'], 'exactly Sinch\'s success keys');
  t.same(r.mapped.answer, { status: 'success' });
  t.equal(r.mapped.providerMessageId, r.body.message_id);
  t.match(r.sentBody, {
    app_id: SETTINGS.appId,
    recipient: { identified_by: { channel_identities: [{ channel: 'WHATSAPP', identity: '+919999999999' }] } },
    message: { template_message: { channel_template: { WHATSAPP: { template_id: 'Namespace:sample', language_code: 'en_GB', parameters: { 'body[1]text': 'Sample' } } } } },
    message_metadata: msg.msgId,
  });
  await sim.idle(5000);
  t.equal(hook.got.length, 3, 'three status webhooks');
  const events = [];
  for (const w of hook.got) {
    t.same(await verifySignature(mapping, w, SETTINGS), { ok: true }, 'signed with the webhook secret');
    t.equal(w.headers['x-sinch-webhook-signature-algorithm'], 'HmacSHA256');
    t.match(w.headers['x-sinch-webhook-signature-timestamp'], /^\d{10}$/);
    events.push(...(await mapWebhook(mapping, w, SETTINGS)));
  }
  t.same(events.map((e) => e.event === 'status' && [e.status, e.providerMessageId, e.msgId]), [
    ['sent', r.body.message_id, msg.msgId],
    ['delivered', r.body.message_id, msg.msgId],
    ['read', r.body.message_id, msg.msgId],
  ]);
  t.ok(events.every((e) => e.event === 'status' && /^\d{10}$/.test(e.timestamp ?? '')), 'epoch-second timestamps');

  const forged = { ...hook.got[0]!, headers: { ...hook.got[0]!.headers, 'x-sinch-webhook-signature-nonce': 'another-nonce' } };
  t.equal((await verifySignature(mapping, forged, SETTINGS)).ok, false, 'the nonce is part of what is signed');
  t.same(logged.get(sim), [], 'the simulator logged no problem');
});

t.test('freeform-text.json is accepted too', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const r = await send(sim, message('freeform-text.json'));
  t.same(r.mapped.answer, { status: 'success' });
  t.match(r.sentBody, { message: { text_message: { text: 'This is message body' } } });
  await sim.idle(5000);
});

t.test('a recipient ending in 0000 gets sent, then FAILED RECIPIENT_NOT_REACHABLE -> 1007', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const msg = message('freeform-text.json', { to: '919999990000' });
  const r = await send(sim, msg);
  t.same(r.mapped.answer, { status: 'success' });
  await sim.idle(5000);
  t.equal(hook.got.length, 2);
  const events = [];
  for (const w of hook.got) {
    t.same(await verifySignature(mapping, w, SETTINGS), { ok: true });
    events.push(...(await mapWebhook(mapping, w, SETTINGS)));
  }
  t.match(events, [
    { event: 'status', status: 'sent', msgId: msg.msgId },
    { event: 'status', status: 'failed', msgId: msg.msgId, providerMessageId: r.mapped.providerMessageId, error: { code: 1007 }, providerError: { code: 'RECIPIENT_NOT_REACHABLE' } },
  ]);
});

t.test('error scenarios answer in Sinch\'s error shape and map to CleverTap codes', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const expected: [string, number, number][] = [
    ['auth', 401, 2000],
    ['template', 400, 2001],
    ['number', 400, 2002],
    ['rate', 429, 2004],
    ['server', 500, 2004],
  ];
  for (const [scenario, http, code] of expected) {
    sim.setScenario(scenario as 'auth');
    const r = await send(sim, message('freeform-text.json'));
    t.equal(r.status, http, `${scenario}: HTTP ${http}`);
    t.match(r.body, { error: { code: http, message: String, status: String, details: [] } }, `${scenario}: Conversation API error object`);
    t.equal(r.mapped.answer.status === 'failure' && r.mapped.answer.error.code, code, `${scenario} -> ${code}`);
  }
  sim.setScenario('success');
  t.same((await send(sim, message('freeform-text.json'))).mapped.answer, { status: 'success' }, 'back to success');

  const wrong = await send(sim, message('freeform-text.json'), { keySecret: 'not-the-secret' });
  t.equal(wrong.mapped.answer.status === 'failure' && wrong.mapped.answer.error.code, 2000, 'wrong Basic credentials are an auth error whatever the scenario');
  const bearer = await send(sim, message('freeform-text.json'), { accessToken: 'sim-token' });
  t.equal(bearer.mapped.answer.status === 'failure' && bearer.mapped.answer.error.code, 2000, 'a token the simulator does not know is refused');
  await sim.idle(5000);
});

t.test('inbound text, button and image webhooks verify and map', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const sent = await send(sim, message('freeform-text.json'));
  await sim.idle(5000);
  const sentId = String(sent.body.message_id);

  const text = await sim.sendInbound({ from: '+91 99999 99999', text: 'Hi there', replyTo: sentId });
  t.ok(text.delivered);
  let w = hook.got.at(-1)!;
  t.same(await verifySignature(mapping, w, SETTINGS), { ok: true });
  const body = JSON.parse(w.rawBody) as { message: { accept_time: string } };
  t.same(await mapWebhook(mapping, w, SETTINGS), [{
    event: 'incoming',
    providerMessageId: text.id,
    replyTo: sentId,
    message: { from: '919999999999', wabaNumber: SETTINGS.wabaNumber, timestamp: String(Math.floor(Date.parse(body.message.accept_time) / 1000)), type: 'text', text: { body: 'Hi there' } },
  }]);

  const button = await sim.sendInbound({ from: '919999999999', button: { payload: 'STOP_PROMOS', text: 'Stop' }, replyTo: sentId });
  t.ok(button.delivered);
  w = hook.got.at(-1)!;
  t.same(await verifySignature(mapping, w, SETTINGS), { ok: true });
  t.match(await mapWebhook(mapping, w, SETTINGS), [{ event: 'incoming', providerMessageId: button.id, replyTo: sentId, message: { type: 'button', button: { payload: 'STOP_PROMOS', text: 'STOP_PROMOS' } } }],
    'Sinch reports only postback_data: it is both payload and text');

  const image = await sim.sendInbound({ from: '919999999999', image: { mimeType: 'image/png', caption: 'look' } });
  t.ok(image.delivered && image.mediaId);
  w = hook.got.at(-1)!;
  t.same(await verifySignature(mapping, w, SETTINGS), { ok: true });
  t.match(await mapWebhook(mapping, w, SETTINGS), [{ event: 'incoming', message: { type: 'image', image: { mediaURL: new RegExp(`${image.mediaId}\\.png$`), mimeType: 'image/png', caption: 'look' } } }]);

  const plain = await sim.sendInbound({ from: '919999999999', image: { mimeType: 'image/jpeg' } });
  t.match(await mapWebhook(mapping, hook.got.at(-1)!, SETTINGS), [{ event: 'incoming', providerMessageId: plain.id, message: { type: 'image', image: { mediaURL: /\.jpg$/, mimeType: 'image/jpeg' } } }]);
  t.same(logged.get(sim), [], 'the simulator logged no problem');
});
