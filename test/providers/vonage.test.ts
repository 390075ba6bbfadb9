// The BSP simulator speaks the vonage mapping's BSP from mappings/vonage/simulator.yaml: what it
// answers and posts must go back through the mapping (mapResponse, verifySignature, mapWebhook) to
// the CleverTap codes and events a real Vonage Messages API v1 exchange gives.
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
const DIR = here('../../mappings/vonage');
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
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/vonage/demo`, got };
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
  return { status: res.statusCode, body: JSON.parse(text) as Record<string, unknown>, mapped, sentBody: JSON.parse(req.body!) as Record<string, unknown> };
}

t.test('simulator.yaml loads and compiles', async (t) => {
  const r = loadSimulator(DIR);
  t.ok(r.ok, r.ok ? 'loads' : JSON.stringify(r.errors.map((e) => e.message)));
  if (r.ok) t.equal(r.simulator.name, 'vonage');
});

t.test('template-body-footer.json: the request the mapping builds is accepted, then submitted/delivered/read map to statuses', async (t) => {
  const hook = await receiver(t);
  const { sim, problems } = await simulator(t, hook.url);
  const msg = message('template-body-footer.json');
  const r = await send(sim, msg);
  t.equal(r.status, 202);
  t.match(r.sentBody, {
    message_type: 'custom',
    channel: 'whatsapp',
    to: '919999999999',
    from: '447700900000',
    client_ref: msg.msgId,
    custom: { type: 'template', template: { name: 'Namespace:sample', language: { policy: 'deterministic', code: 'en_GB' } } },
  });
  t.same(Object.keys(r.body), ['message_uuid'], 'exactly Vonage\'s 202 body');
  t.same(r.mapped.answer, { status: 'success' });
  const uuid = r.mapped.providerMessageId!;
  t.match(uuid, /^[0-9a-f-]{36}$/);
  t.match(sim.sent()[0], { recipient: '919999999999', msgId: msg.msgId, providerMessageId: uuid, answered: 202 });

  await sim.idle();
  t.equal(hook.got.length, 3, 'three status webhooks');
  const events = [];
  for (const w of hook.got) {
    t.same(await verifySignature(mapping, w, SETTINGS), { ok: true }, 'no signature declared: accepted (Vonage\'s JWT cannot be declared)');
    const body = JSON.parse(w.rawBody) as Record<string, unknown>;
    t.match(body, { message_uuid: uuid, to: '919999999999', from: '447700900000', client_ref: msg.msgId, channel: 'whatsapp', timestamp: /^\d{4}-\d{2}-\d{2}T/ });
    events.push(...(await mapWebhook(mapping, w, SETTINGS)));
  }
  t.same(events.map((e) => e.event === 'status' && [e.status, e.providerMessageId, e.msgId]), [
    ['sent', uuid, msg.msgId],
    ['delivered', uuid, msg.msgId],
    ['read', uuid, msg.msgId],
  ]);
  t.ok(events.every((e) => e.event === 'status' && /^\d{10}$/.test(e.timestamp ?? '')), 'epoch-second timestamps');
  t.same(problems, [], 'the simulator logged no problem');
});

t.test('freeform-text.json is accepted; a recipient ending in 0000 gets submitted then rejected (#1300 -> 1005)', async (t) => {
  const hook = await receiver(t);
  const { sim } = await simulator(t, hook.url);
  const ok = await send(sim, message('freeform-text.json'));
  t.same(ok.mapped.answer, { status: 'success' });
  t.match(ok.sentBody, { message_type: 'text', text: String, channel: 'whatsapp' });
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
    { event: 'status', status: 'failed', msgId: msg.msgId, providerMessageId: r.mapped.providerMessageId, error: { code: 1005 }, providerError: { code: '1300' } },
  ]);
});

t.test('error scenarios answer in Vonage\'s RFC 7807 shapes and map to CleverTap codes', async (t) => {
  const hook = await receiver(t);
  const { sim } = await simulator(t, hook.url);
  const expected: [string, number, number][] = [
    ['auth', 401, 2000],
    ['template', 422, 2001],
    ['number', 422, 2002],
    ['rate', 429, 2004],
    ['server', 500, 2004],
  ];
  for (const [scenario, http, code] of expected) {
    sim.setScenario(scenario as 'auth');
    const r = await send(sim, message('template-body-footer.json'));
    t.equal(r.status, http, `${scenario}: HTTP ${http}`);
    t.match(r.body, { type: /^https:\/\/developer\.(nexmo|vonage)\.com\/api-errors/, title: String, detail: String, instance: String }, `${scenario}: problem object`);
    t.equal(r.mapped.answer.status === 'failure' && r.mapped.answer.error.code, code, `${scenario} -> ${code}`);
  }
  sim.setScenario('success');
  t.same((await send(sim, message('template-body-footer.json'))).mapped.answer, { status: 'success' }, 'back to success');

  const wrong = await send(sim, message('freeform-text.json'), { apiSecret: 'not-the-secret' });
  t.equal(wrong.mapped.answer.status === 'failure' && wrong.mapped.answer.error.code, 2000, 'wrong Basic credentials are an auth error whatever the scenario');
  await sim.idle();
});

t.test('inbound text, button and image webhooks map to incoming events', async (t) => {
  const hook = await receiver(t);
  const { sim } = await simulator(t, hook.url);
  const sentId = 'aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab';

  const text = await sim.sendInbound({ from: '+91 99999 99999', text: 'Hi there', replyTo: sentId });
  t.ok(text.delivered);
  let w = hook.got.at(-1)!;
  t.same(await verifySignature(mapping, w, SETTINGS), { ok: true });
  const raw = JSON.parse(w.rawBody) as Record<string, unknown>;
  t.match(raw, { channel: 'whatsapp', message_type: 'text', text: 'Hi there', context: { message_uuid: sentId } });
  t.same(await mapWebhook(mapping, w, SETTINGS), [
    {
      event: 'incoming',
      providerMessageId: text.id,
      replyTo: sentId,
      message: { from: '919999999999', wabaNumber: '447700900000', timestamp: String(Math.floor(Date.parse(raw.timestamp as string) / 1000)), type: 'text', text: { body: 'Hi there' } },
    },
  ]);

  const button = await sim.sendInbound({ from: '919999999999', button: { payload: 'STOP_PROMOS', text: 'Stop' }, replyTo: sentId });
  t.ok(button.delivered);
  w = hook.got.at(-1)!;
  t.same(await verifySignature(mapping, w, SETTINGS), { ok: true });
  t.match(await mapWebhook(mapping, w, SETTINGS), [{ event: 'incoming', replyTo: sentId, message: { type: 'button', button: { payload: 'STOP_PROMOS', text: 'Stop' } } }]);

  const image = await sim.sendInbound({ from: '919999999999', image: { mimeType: 'image/jpeg', caption: 'look' } });
  t.ok(image.delivered && image.mediaId);
  w = hook.got.at(-1)!;
  t.same(await verifySignature(mapping, w, SETTINGS), { ok: true });
  t.match(await mapWebhook(mapping, w, SETTINGS), [
    { event: 'incoming', message: { type: 'image', image: { mediaURL: `https://api-us.nexmo.com/v3/media/${image.mediaId}`, caption: 'look' } } },
  ]);
});
