// The BSP simulator speaks Gupshup from mappings/gupshup/simulator.yaml: what it answers and posts
// must go back through the gupshup mapping (mapResponse, verifySignature, mapWebhook) to the
// CleverTap codes and events a real Gupshup exchange gives. Follows test/standins/bsp-simulator.test.ts.
import t, { type Test } from 'tap';
import { createServer, type IncomingMessage } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { loadMapping, type Mapping } from '../../engine/mapping/loader.js';
import { toCanonical } from '../../engine/mapping/pipeline.js';
import { mapResponse, planSend } from '../../engine/mapping/send.js';
import { loadSimulator, startBspSimulator, type BspSimulator } from '../../engine/standins/bsp-simulator.js';
import { mapWebhook, verifySignature, type WebhookEvent, type WebhookRequest } from '../../engine/mapping/webhook.js';
import type { CanonicalMessage } from '../../engine/clevertap/model.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const DIR = here('../../mappings/gupshup');
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
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/gupshup/demo`, got };
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createNetServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => res(port));
    });
  });
}

const logged = new WeakMap<BspSimulator, string[]>();

/** The simulator on a known port, so its own media links (under baseUrl) are fetchable. */
async function simulator(t: Test, webhookUrl: string): Promise<{ sim: BspSimulator; settings: Record<string, unknown> }> {
  const problems: string[] = [];
  const logger = { info() {}, warn: (o: object, m?: string) => problems.push(`${m} ${JSON.stringify(o)}`), error: (o: object, m?: string) => problems.push(`${m} ${JSON.stringify(o)}`) };
  const port = await freePort();
  const settings = { ...SETTINGS, baseUrl: `http://127.0.0.1:${port}` };
  const sim = await startBspSimulator({ mappingDir: DIR, settings, webhookUrl, port, statusDelaysMs: { sent: 10, delivered: 30, read: 50 }, retryDelayMs: 10, logger });
  t.teardown(() => sim.close());
  logged.set(sim, problems);
  return { sim, settings };
}

function message(file: string, overrides: Record<string, unknown> = {}): CanonicalMessage {
  const payload = { ...JSON.parse(readFileSync(here(`../../examples/clevertap/${file}`), 'utf8')), ...overrides };
  const c = toCanonical(JSON.stringify(payload));
  if (!c.ok) throw new Error(JSON.stringify(c));
  return c.message;
}

/** What wabridge does for one send: plan with the mapping, call the simulator, map the answer. */
async function send(settings: Record<string, unknown>, msg: CanonicalMessage, extra: Record<string, unknown> = {}) {
  const s = { ...settings, ...extra };
  const plan = await planSend(mapping, msg, s);
  if (plan.kind !== 'request') throw new Error(`expected a request, got ${JSON.stringify(plan)}`);
  const req = plan.request;
  const res = await request(req.url, { method: 'POST', headers: req.headers, body: req.body, headersTimeout: 3000, bodyTimeout: 3000 });
  const text = await res.body.text();
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v;
  const mapped = await mapResponse(mapping, msg, s, { status: res.statusCode, headers, text });
  return { status: res.statusCode, body: JSON.parse(text) as Record<string, unknown>, mapped, url: req.url, form: new URLSearchParams(req.body ?? '') };
}

async function eventsOf(hooks: WebhookRequest[], settings: Record<string, unknown>, t: Test): Promise<WebhookEvent[]> {
  const events: WebhookEvent[] = [];
  for (const w of hooks) {
    t.same(await verifySignature(mapping, w, settings), { ok: true }, 'Gupshup does not sign: nothing to verify');
    events.push(...(await mapWebhook(mapping, w, settings)));
  }
  return events;
}

t.test('simulator.yaml loads and compiles', async (t) => {
  const r = loadSimulator(DIR);
  t.ok(r.ok, 'gupshup simulator.yaml loads');
  if (r.ok) t.equal(r.simulator.name, 'gupshup');
});

t.test('template-body-footer.json: accepted by the template endpoint, then sent/delivered/read events', async (t) => {
  const hook = await receiver(t);
  const { sim, settings } = await simulator(t, hook.url);
  const msg = message('template-body-footer.json');
  const r = await send(settings, msg);
  t.match(r.url, /\/wa\/api\/v1\/template\/msg$/);
  t.equal(r.form.get('src.name'), 'DemoAPI');
  t.same(JSON.parse(r.form.get('template')!), { id: 'c6aecef6-bcb0-4fb1-8100-28c094e3bc6b', params: ['Sample'] });
  t.equal(r.status, 200);
  t.same(Object.keys(r.body), ['status', 'messageId'], "exactly Gupshup's keys");
  t.match(r.body, { status: 'submitted', messageId: /^[0-9a-f-]{36}$/ });
  t.same(r.mapped.answer, { status: 'success' });
  const gsId = r.mapped.providerMessageId!;
  t.equal(gsId, r.body.messageId, 'the providerMessageId is Gupshup\'s messageId');
  t.match(sim.sent()[0], { recipient: '919999999999', providerMessageId: gsId, answered: 200 });

  await sim.idle();
  t.equal(hook.got.length, 3, 'three message-event webhooks');
  const first = JSON.parse(hook.got[0]!.rawBody) as Record<string, unknown>;
  t.match(first, { app: 'DemoAPI', version: 2, type: 'message-event', payload: { gsId, type: 'sent', destination: '919999999999', ts: Number } });
  const events = await eventsOf(hook.got, settings, t);
  t.same(events.map((e) => e.event === 'status' && [e.status, e.providerMessageId, e.msgId]), [
    ['sent', gsId, undefined],
    ['delivered', gsId, undefined],
    ['read', gsId, undefined],
  ], 'statuses keyed by gsId (Gupshup echoes no client reference)');
  t.ok(events.every((e) => e.event === 'status' && /^\d{10}$/.test(e.timestamp ?? '')), 'epoch-second timestamps');
  t.same(logged.get(sim), [], 'the simulator logged no problem');
});

t.test('freeform-text.json: accepted by the freeform endpoint', async (t) => {
  const hook = await receiver(t);
  const { settings } = await simulator(t, hook.url);
  const r = await send(settings, message('freeform-text.json'));
  t.match(r.url, /\/wa\/api\/v1\/msg$/);
  t.same(JSON.parse(r.form.get('message')!), { type: 'text', text: 'This is message body' });
  t.equal(r.status, 200);
  t.match(r.body, { status: 'submitted', messageId: /^[0-9a-f-]{36}$/ });
  t.same(r.mapped.answer, { status: 'success' });
  const wrong = await send(settings, message('freeform-text.json'), { apiKey: 'not-the-key' });
  t.match(wrong.mapped.answer, { status: 'failure', error: { code: 2000 } }, 'a wrong apikey is refused on the freeform endpoint too');
});

t.test('a recipient ending in 0000 gets sent, then failed with code 1002', async (t) => {
  const hook = await receiver(t);
  const { sim, settings } = await simulator(t, hook.url);
  const r = await send(settings, message('template-body-footer.json', { to: '919999990000' }));
  t.same(r.mapped.answer, { status: 'success' });
  await sim.idle();
  const events = await eventsOf(hook.got, settings, t);
  t.match(events, [
    { event: 'status', status: 'sent', providerMessageId: r.mapped.providerMessageId },
    { event: 'status', status: 'failed', providerMessageId: r.mapped.providerMessageId, error: { code: 1002, title: 'Number Does Not Exist On WhatsApp' }, providerError: { code: '1002' } },
  ]);
});

t.test("error scenarios answer in Gupshup's shape and map to CleverTap codes", async (t) => {
  const hook = await receiver(t);
  const { sim, settings } = await simulator(t, hook.url);
  const expected: [string, number, number][] = [
    ['auth', 401, 2000],
    ['template', 400, 2001],
    ['number', 400, 2002],
    ['rate', 429, 2004],
    ['server', 500, 2004],
  ];
  for (const [scenario, http, code] of expected) {
    sim.setScenario(scenario as 'auth');
    const r = await send(settings, message('template-body-footer.json'));
    t.equal(r.status, http, `${scenario}: HTTP ${http}`);
    t.match(r.body, { status: 'error', message: String }, `${scenario}: {status: error, message}`);
    t.equal(r.mapped.answer.status === 'failure' && r.mapped.answer.error.code, code, `${scenario} → ${code}`);
  }
  sim.setScenario('success');
  t.same((await send(settings, message('template-body-footer.json'))).mapped.answer, { status: 'success' }, 'back to success');
  const wrong = await send(settings, message('template-body-footer.json'), { apiKey: 'not-the-key' });
  t.equal(wrong.mapped.answer.status === 'failure' && wrong.mapped.answer.error.code, 2000, 'a wrong apikey is an auth error whatever the scenario');
  await sim.idle();
});

t.test('inbound text (with reply context), button and image webhooks map to incoming events', async (t) => {
  const hook = await receiver(t);
  const { sim, settings } = await simulator(t, hook.url);
  const sent = await send(settings, message('template-body-footer.json'));
  await sim.idle();
  const gsId = sent.mapped.providerMessageId!;
  hook.got.length = 0;

  const text = await sim.sendInbound({ from: '+91 99999 99999', text: 'yes please', replyTo: gsId });
  t.ok(text.delivered);
  const body = JSON.parse(hook.got.at(-1)!.rawBody) as { timestamp: number; payload: Record<string, unknown> };
  t.match(body, { version: 2, type: 'message', payload: { type: 'text', payload: { text: 'yes please' }, context: { gsId } } });
  t.same(await eventsOf([hook.got.at(-1)!], settings, t), [
    {
      event: 'incoming',
      providerMessageId: text.id,
      replyTo: gsId,
      message: { from: '919999999999', wabaNumber: '917834811114', timestamp: String(Math.floor(body.timestamp / 1000)), type: 'text', text: { body: 'yes please' } },
    },
  ]);

  const button = await sim.sendInbound({ from: '919999999999', button: { payload: 'STOP_PROMOS', text: 'Stop' }, replyTo: gsId });
  t.ok(button.delivered);
  t.match(await eventsOf([hook.got.at(-1)!], settings, t), [{ event: 'incoming', replyTo: gsId, message: { type: 'button', button: { payload: 'STOP_PROMOS', text: 'Stop' } } }]);

  const image = await sim.sendInbound({ from: '919999999999', image: { mimeType: 'image/png', caption: 'look' } });
  t.ok(image.delivered && image.mediaId);
  const [event] = await eventsOf([hook.got.at(-1)!], settings, t);
  t.match(event, { event: 'incoming', message: { type: 'image', image: { mediaURL: `${settings.baseUrl}/_sim/media/${image.mediaId}`, mimeType: 'image/png', caption: 'look' } } });
  const file = await request((event as unknown as { message: { image: { mediaURL: string } } }).message.image.mediaURL);
  t.equal(file.statusCode, 200, 'the mediaURL Gupshup gives is fetchable without credentials');
  t.ok((await file.body.arrayBuffer()).byteLength > 0);
});
