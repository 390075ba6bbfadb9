// The BSP simulator speaks the infobip mapping's BSP from mappings/infobip/simulator.yaml: what it
// answers and posts must go back through the mapping (mapResponse, verifySignature, mapWebhook) to
// the CleverTap codes and events a real Infobip WhatsApp exchange gives.
import t, { type Test } from 'tap';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { loadMapping, type Mapping } from '../../engine/mapping/loader.js';
import { planMediaDownload, planMediaLookup } from '../../engine/mapping/media.js';
import { toCanonical } from '../../engine/mapping/pipeline.js';
import { mapResponse, planSend, type HttpRequest } from '../../engine/mapping/send.js';
import { loadSimulator, startBspSimulator, type BspSimulator } from '../../engine/standins/bsp-simulator.js';
import { mapWebhook, verifySignature, type WebhookRequest } from '../../engine/mapping/webhook.js';
import type { CanonicalMessage } from '../../engine/clevertap/model.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const DIR = here('../../mappings/infobip');
const SETTINGS = parseYaml(readFileSync(join(DIR, 'fixtures/settings.yaml'), 'utf8')) as Record<string, unknown>;
const loaded = loadMapping(DIR);
if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.message).join('; '));
const mapping: Mapping = loaded.mapping;

t.setTimeout(30_000);

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
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/infobip/demo`, got };
}

async function simulator(t: Test, webhookUrl: string): Promise<{ sim: BspSimulator; problems: string[] }> {
  const problems: string[] = [];
  const logger = { info() {}, warn: (o: object, m?: string) => problems.push(`${m} ${JSON.stringify(o)}`), error: (o: object, m?: string) => problems.push(`${m} ${JSON.stringify(o)}`) };
  const sim = await startBspSimulator({ mappingDir: DIR, settings: SETTINGS, webhookUrl, statusDelaysMs: { sent: 10, delivered: 30, read: 50 }, retryDelayMs: 10, logger });
  t.teardown(() => sim.close());
  return { sim, problems };
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
  if (plan.kind !== 'request') throw new Error('expected a request');
  const req: HttpRequest = plan.request;
  const res = await request(req.url, { method: 'POST', headers: req.headers, body: req.body, headersTimeout: 3000, bodyTimeout: 3000 });
  const text = await res.body.text();
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v;
  const mapped = await mapResponse(mapping, msg, s, { status: res.statusCode, headers, text });
  return { status: res.statusCode, url: req.url, body: JSON.parse(text) as Record<string, unknown>, mapped, sentBody: JSON.parse(req.body!) as Record<string, unknown> };
}

t.test('simulator.yaml loads and compiles', async (t) => {
  const r = loadSimulator(DIR);
  t.ok(r.ok, r.ok ? 'loads' : JSON.stringify(r.errors.map((e) => e.message)));
  if (r.ok) t.equal(r.simulator.name, 'infobip');
});

t.test('template-body-footer.json: accepted in Infobip\'s bulk shape, then PENDING_ENROUTE / DELIVERED_TO_HANDSET / seen report map to sent, delivered, read', async (t) => {
  const hook = await receiver(t);
  const { sim, problems } = await simulator(t, hook.url);
  const msg = message('template-body-footer.json');
  const r = await send(sim, msg);
  t.equal(r.status, 200);
  t.equal(r.url, `${sim.url}/whatsapp/1/message/template`);
  t.same(r.sentBody, {
    messages: [{
      from: '441134960000',
      to: '919999999999',
      content: { templateName: 'Namespace:sample', templateData: { body: { placeholders: ['Sample'] } }, language: 'en_GB' },
      callbackData: msg.msgId,
    }],
  }, 'the request the mapping builds');
  t.match(r.body, { messages: [{ to: '919999999999', messageCount: 1, messageId: /^[0-9a-f-]{36}$/, status: { groupId: 1, groupName: 'PENDING', id: 7, name: 'PENDING_ENROUTE' } }], bulkId: String });
  t.same(r.mapped.answer, { status: 'success' });
  const id = r.mapped.providerMessageId!;
  t.equal(id, (r.body.messages as { messageId: string }[])[0]!.messageId);
  t.match(sim.sent()[0], { recipient: '919999999999', msgId: msg.msgId, providerMessageId: id, answered: 200 });

  await sim.idle();
  t.equal(hook.got.length, 3, 'three report webhooks');
  const events = [];
  for (const w of hook.got) {
    t.same(await verifySignature(mapping, w, SETTINGS), { ok: true }, 'no signature declared: Infobip does not sign reports');
    const body = JSON.parse(w.rawBody) as { results: Record<string, unknown>[] };
    t.match(body.results[0], { messageId: id, to: '919999999999', callbackData: msg.msgId });
    events.push(...(await mapWebhook(mapping, w, SETTINGS)));
  }
  t.same(events.map((e) => e.event === 'status' && [e.status, e.providerMessageId, e.msgId]), [
    ['sent', id, msg.msgId],
    ['delivered', id, msg.msgId],
    ['read', id, msg.msgId],
  ]);
  t.ok(events.every((e) => e.event === 'status' && /^\d{10}$/.test(e.timestamp ?? '')), 'epoch-second timestamps');
  t.same(problems, [], 'the simulator logged no problem');
});

t.test('freeform-text.json goes to /message/text in the single-message shape; a recipient ending in 0000 fails with EC_UNKNOWN_SUBSCRIBER -> 1003', async (t) => {
  const hook = await receiver(t);
  const { sim } = await simulator(t, hook.url);
  const ok = await send(sim, message('freeform-text.json'));
  t.equal(ok.url, `${sim.url}/whatsapp/1/message/text`);
  t.same(ok.sentBody, { from: '441134960000', to: '919999999999', content: { text: 'This is message body' }, callbackData: '25596363|1639561857|20220227|25596363' });
  t.same(Object.keys(ok.body), ['to', 'messageCount', 'messageId', 'status'], 'exactly Infobip\'s single-message answer');
  t.same(ok.mapped.answer, { status: 'success' });
  await sim.idle();
  hook.got.length = 0;

  const msg = message('freeform-text.json', { to: '919999990000' });
  const r = await send(sim, msg);
  t.same(r.mapped.answer, { status: 'success' });
  await sim.idle();
  t.equal(hook.got.length, 2);
  const events = [];
  for (const w of hook.got) events.push(...(await mapWebhook(mapping, w, SETTINGS)));
  t.match(events, [
    { event: 'status', status: 'sent', msgId: msg.msgId },
    { event: 'status', status: 'failed', msgId: msg.msgId, providerMessageId: r.mapped.providerMessageId, error: { code: 1003, title: 'Unknown Subscriber' }, providerError: { status: 'UNDELIVERABLE_NOT_DELIVERED', code: 'EC_UNKNOWN_SUBSCRIBER' } },
  ]);
});

t.test('error scenarios answer in Infobip\'s requestError shape and map to CleverTap codes', async (t) => {
  const hook = await receiver(t);
  const { sim } = await simulator(t, hook.url);
  const expected: [string, number, string, number][] = [
    ['auth', 401, 'UNAUTHORIZED', 2000],
    ['template', 400, 'BAD_REQUEST', 2001],
    ['number', 400, 'BAD_REQUEST', 2002],
    ['rate', 429, 'TOO_MANY_REQUESTS', 2004],
    ['server', 500, 'GENERAL_ERROR', 2004],
  ];
  for (const file of ['template-body-footer.json', 'freeform-text.json']) {
    for (const [scenario, http, id, code] of expected) {
      sim.setScenario(scenario as 'auth');
      const r = await send(sim, message(file));
      t.equal(r.status, http, `${file} ${scenario}: HTTP ${http}`);
      t.match(r.body, { requestError: { serviceException: { messageId: id, text: String } } }, `${scenario}: serviceException`);
      t.equal(r.mapped.answer.status === 'failure' && r.mapped.answer.error.code, code, `${file} ${scenario} -> ${code}`);
    }
  }
  sim.setScenario('success');
  t.same((await send(sim, message('template-body-footer.json'))).mapped.answer, { status: 'success' }, 'back to success');

  const wrong = await send(sim, message('freeform-text.json'), { apiKey: 'not-the-key' });
  t.equal(wrong.status, 401);
  t.equal(wrong.mapped.answer.status === 'failure' && wrong.mapped.answer.error.code, 2000, 'a wrong API key is an auth error whatever the scenario');
  await sim.idle();
});

t.test('inbound text, button and image webhooks map to incoming events', async (t) => {
  const hook = await receiver(t);
  const { sim } = await simulator(t, hook.url);
  const sentId = 'a28dd97c-1ffb-4fcf-99f1-0b557ed381da';

  const text = await sim.sendInbound({ from: '+91 99999 99999', text: 'Hi there', replyTo: sentId });
  t.ok(text.delivered);
  let w = hook.got.at(-1)!;
  t.same(await verifySignature(mapping, w, SETTINGS), { ok: true });
  const raw = JSON.parse(w.rawBody) as { results: Record<string, unknown>[] };
  t.match(raw, { results: [{ from: '919999999999', to: '441134960000', integrationType: 'WHATSAPP', messageId: text.id, message: { type: 'TEXT', text: 'Hi there', context: { id: sentId } }, contact: { name: 'Frank' } }], messageCount: 1, pendingMessageCount: 0 });
  t.same(await mapWebhook(mapping, w, SETTINGS), [
    {
      event: 'incoming',
      providerMessageId: text.id,
      replyTo: sentId,
      message: { from: '919999999999', wabaNumber: '441134960000', timestamp: String(Math.floor(Date.parse(String(raw.results[0]!.receivedAt).replace(/([+-]\d{2})(\d{2})$/, '$1:$2')) / 1000)), type: 'text', text: { body: 'Hi there' } },
    },
  ]);

  const button = await sim.sendInbound({ from: '919999999999', button: { payload: 'STOP_PROMOS', text: 'Stop' }, replyTo: sentId });
  t.ok(button.delivered);
  w = hook.got.at(-1)!;
  t.same(await verifySignature(mapping, w, SETTINGS), { ok: true });
  t.match(await mapWebhook(mapping, w, SETTINGS), [{ event: 'incoming', providerMessageId: button.id, replyTo: sentId, message: { type: 'button', button: { payload: 'STOP_PROMOS', text: 'Stop' } } }]);

  const image = await sim.sendInbound({ from: '919999999999', image: { mimeType: 'image/jpeg', caption: 'look' } });
  t.ok(image.delivered && image.mediaId);
  w = hook.got.at(-1)!;
  t.same(await verifySignature(mapping, w, SETTINGS), { ok: true });
  const path = `/whatsapp/1/senders/441134960000/media/${image.mediaId}`;
  t.match(await mapWebhook(mapping, w, SETTINGS), [{ event: 'incoming', providerMessageId: image.id, message: { type: 'image', image: { mediaId: path, caption: 'look' } } }]);

  // The media section downloads the file straight from the tenant's base URL with the API key.
  const s = { ...SETTINGS, baseUrl: sim.url };
  t.equal(await planMediaLookup(mapping, path, s), undefined, 'no look-up step');
  t.same(await planMediaDownload(mapping, path, s), { url: `${sim.url}${path}`, headers: { Authorization: 'App test-api-key' } });
  await sim.idle();
});
