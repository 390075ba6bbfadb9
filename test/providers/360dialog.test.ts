// The BSP simulator playing 360dialog (mappings/360dialog/simulator.yaml): what it answers and posts
// must go back through the 360dialog mapping (which extends meta-cloud) to the right CleverTap codes
// and events: mapResponse for sends, verifySignature (360dialog declares none) and mapWebhook for
// status and inbound webhooks, planMediaLookup/planMediaDownload for media.
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
import { validatorFor } from '../../engine/mapping/schema-validator.js';
import { mapResponse, planSend } from '../../engine/mapping/send.js';
import { loadSimulator, startBspSimulator, type BspSimulator } from '../../engine/standins/bsp-simulator.js';
import { mapWebhook, verifySignature, type WebhookRequest } from '../../engine/mapping/webhook.js';
import type { CanonicalMessage } from '../../engine/clevertap/model.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const DIR = here('../../mappings/360dialog');
const SETTINGS = parseYaml(readFileSync(join(DIR, 'fixtures/settings.yaml'), 'utf8')) as Record<string, unknown>;
const loaded = loadMapping(DIR);
if (!loaded.ok) throw new Error(loaded.errors.map((e) => `${e.where}: ${e.message}`).join('; '));
const mapping: Mapping = loaded.mapping;
// The webhook contract is inherited from meta-cloud: 360dialog forwards Meta's payloads unchanged.
const webhookContract = validatorFor(join(DIR, mapping.contracts.webhookBody!));

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
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/360dialog/demo`, got };
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
  const req = plan.request;
  const res = await request(req.url, { method: req.method, headers: req.headers, body: req.body, headersTimeout: 3000, bodyTimeout: 3000 });
  const text = await res.body.text();
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v;
  const mapped = await mapResponse(mapping, msg, s, { status: res.statusCode, headers, text });
  return { status: res.statusCode, body: JSON.parse(text) as Record<string, unknown>, mapped, request: req };
}

async function eventsOf(t: Test, got: WebhookRequest[]) {
  const events = [];
  for (const w of got) {
    t.same(await verifySignature(mapping, w, SETTINGS), { ok: true }, 'no signature declared: accepted as 360dialog sends it');
    t.notOk(w.headers['x-hub-signature-256'], 'no X-Hub-Signature-256 on a 360dialog number webhook');
    const body = JSON.parse(w.rawBody) as unknown;
    t.ok(webhookContract(body), `Meta-shaped body ${JSON.stringify(webhookContract.errors ?? [])}`);
    events.push(...(await mapWebhook(mapping, w, SETTINGS)));
  }
  return events;
}

t.test('the mapping extends meta-cloud and the simulator loads', async (t) => {
  t.same(mapping.extends, ['meta-cloud']);
  t.same(Object.keys(mapping.settings).sort(), ['apiKey', 'baseUrl']);
  t.equal(mapping.settings.baseUrl?.default, 'https://waba-v2.360dialog.io');
  t.notOk(mapping.webhook?.signature, 'no signature');
  t.notOk(mapping.webhook?.handshake, 'no handshake');
  const r = loadSimulator(DIR);
  t.ok(r.ok, '360dialog simulator.yaml loads');
  if (r.ok) t.equal(r.simulator.name, '360dialog');
});

t.test('template-body-footer.json: POST /messages with D360-API-KEY is accepted; statuses map with the msgId', async (t) => {
  const hook = await receiver(t);
  const { sim, problems } = await simulator(t, hook.url);
  const msg = message('template-body-footer.json');
  const r = await send(sim, msg);
  t.equal(r.request.url, `${sim.url}/messages`);
  t.equal(r.request.headers['D360-API-KEY'], SETTINGS.apiKey);
  t.notOk(r.request.headers.Authorization, 'no Bearer header');
  t.equal(r.status, 200);
  t.match(r.body, { messaging_product: 'whatsapp', contacts: [{ wa_id: '919999999999' }], messages: [{ id: /^wamid\./, message_status: 'accepted' }] });
  t.same(r.mapped.answer, { status: 'success' });
  const wamid = r.mapped.providerMessageId!;
  t.match(sim.sent()[0], { recipient: '919999999999', msgId: msg.msgId, providerMessageId: wamid, answered: 200 });

  await sim.idle();
  t.equal(hook.got.length, 3, 'sent, delivered, read');
  const events = await eventsOf(t, hook.got);
  t.same(events.map((e) => e.event === 'status' && [e.status, e.providerMessageId, e.msgId]), [
    ['sent', wamid, msg.msgId],
    ['delivered', wamid, msg.msgId],
    ['read', wamid, msg.msgId],
  ]);
  t.same(problems, [], 'the simulator logged no problem');
});

t.test('freeform-text.json is accepted too; a recipient ending in 0000 gets a failed status -> 1007', async (t) => {
  const hook = await receiver(t);
  const { sim } = await simulator(t, hook.url);
  t.same((await send(sim, message('freeform-text.json'))).mapped.answer, { status: 'success' });
  await sim.idle();
  hook.got.length = 0;
  const msg = message('freeform-text.json', { to: '919999990000' });
  const r = await send(sim, msg);
  t.same(r.mapped.answer, { status: 'success' });
  await sim.idle();
  t.match(await eventsOf(t, hook.got), [
    { event: 'status', status: 'sent', msgId: msg.msgId },
    { event: 'status', status: 'failed', msgId: msg.msgId, providerMessageId: r.mapped.providerMessageId, error: { code: 1007, title: 'Message undeliverable' }, providerError: { code: '131026' } },
  ]);
});

t.test('error scenarios map through mapResponse to CleverTap codes', async (t) => {
  const hook = await receiver(t);
  const { sim } = await simulator(t, hook.url);
  const expected: [string, number, number][] = [
    ['auth', 401, 2000],
    ['template', 400, 2001],
    ['number', 400, 2002],
    ['rate', 429, 2004],
    ['server', 500, 2004],
  ];
  for (const [scenario, http, code] of expected) {
    sim.setScenario(scenario as 'auth');
    const r = await send(sim, message('template-body-footer.json'));
    t.equal(r.status, http, `${scenario}: HTTP ${http}`);
    t.equal(r.mapped.answer.status === 'failure' && r.mapped.answer.error.code, code, `${scenario} -> ${code}`);
  }
  sim.setScenario('success');
  const wrong = await send(sim, message('freeform-text.json'), { apiKey: 'not-the-key' });
  t.equal(wrong.status, 401);
  t.same(wrong.body, { error: 'Invalid api key' }, "360dialog's own error shape");
  t.same(wrong.mapped.answer, { status: 'failure', error: { code: 2000, message: '360dialog answered HTTP 401: Invalid api key' } }, 'a wrong API key is an auth error whatever the scenario');
  await sim.idle();
});

t.test('inbound text, button and image webhooks verify and map; media goes through 360dialog', async (t) => {
  const hook = await receiver(t);
  const { sim } = await simulator(t, hook.url);
  const sentId = 'wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=';

  const text = await sim.sendInbound({ from: '+91 99999 99999', text: 'Hi there', replyTo: sentId });
  t.ok(text.delivered);
  const [te] = await eventsOf(t, [hook.got.at(-1)!]);
  t.same(te, {
    event: 'incoming',
    providerMessageId: text.id,
    replyTo: sentId,
    message: { from: '919999999999', wabaNumber: '15550783881', timestamp: (JSON.parse(hook.got.at(-1)!.rawBody) as { entry: { changes: { value: { messages: { timestamp: string }[] } }[] }[] }).entry[0]!.changes[0]!.value.messages[0]!.timestamp, type: 'text', text: { body: 'Hi there' } },
  });

  const button = await sim.sendInbound({ from: '919999999999', button: { payload: 'STOP_PROMOS', text: 'Stop' }, replyTo: sentId });
  t.ok(button.delivered);
  t.match(await eventsOf(t, [hook.got.at(-1)!]), [{ event: 'incoming', providerMessageId: button.id, replyTo: sentId, message: { type: 'button', button: { payload: 'STOP_PROMOS', text: 'Stop' } } }]);

  const image = await sim.sendInbound({ from: '919999999999', image: { mimeType: 'image/png', caption: 'look' } });
  t.ok(image.delivered && image.mediaId);
  t.match(await eventsOf(t, [hook.got.at(-1)!]), [{ event: 'incoming', message: { type: 'image', image: { mediaId: image.mediaId, mimeType: 'image/png', caption: 'look' } } }]);

  const s = { ...SETTINGS, baseUrl: sim.url };
  const lookup = (await planMediaLookup(mapping, image.mediaId!, s))!;
  t.equal(lookup.url, `${sim.url}/${image.mediaId}`, 'GET {baseUrl}/{media-id}');
  t.same(lookup.headers, { 'D360-API-KEY': SETTINGS.apiKey });
  const res = await request(lookup.url, { method: 'GET', headers: lookup.headers });
  t.equal(res.statusCode, 200);
  const body = (await res.body.json()) as Record<string, unknown>;
  t.match(body, { messaging_product: 'whatsapp', id: image.mediaId, mime_type: 'image/png', url: /^https:\/\/lookaside\.fbsbx\.com\// });
  const download = await planMediaDownload(mapping, image.mediaId!, s, body);
  t.ok(download.url.startsWith(`${sim.url}/`), 'the lookaside host is replaced by the 360dialog base URL');
  t.same(download.headers, { 'D360-API-KEY': SETTINGS.apiKey });
  const file = await request(download.url, { headers: download.headers });
  t.equal(file.statusCode, 200);
  t.equal(file.headers['content-type'], 'image/png');
  t.ok((await file.body.arrayBuffer()).byteLength > 0);

  const denied = await request(lookup.url, { method: 'GET', headers: { 'D360-API-KEY': 'nope' } });
  t.equal(denied.statusCode, 401, 'media look-up needs the API key');
  await denied.body.dump();
});
