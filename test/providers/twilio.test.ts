// The BSP simulator plays Twilio from mappings/twilio/simulator.yaml: what it answers and posts must go
// back through the twilio mapping (mapResponse, verifySignature, mapWebhook) to the CleverTap codes and
// events a real Twilio exchange gives. Everything binds 127.0.0.1 on port 0 and closes in teardown.
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
import { checkSettings } from '../../engine/mapping/settings.js';
import { formDecode, mapResponse, planSend } from '../../engine/mapping/send.js';
import { loadSimulator, startBspSimulator, type BspSimulator } from '../../engine/standins/bsp-simulator.js';
import { mapWebhook, verifySignature, type WebhookRequest } from '../../engine/mapping/webhook.js';
import type { CanonicalMessage } from '../../engine/clevertap/model.js';

t.setTimeout(60_000);

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const DIR = here('../../mappings/twilio');
const FIXTURE_SETTINGS = parseYaml(readFileSync(join(DIR, 'fixtures/settings.yaml'), 'utf8')) as Record<string, unknown>;
const loaded = loadMapping(DIR);
if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.message).join('; '));
const mapping: Mapping = loaded.mapping;
/** The tenant's settings as the host has them: declared defaults applied. */
const SETTINGS = checkSettings(mapping.settings, FIXTURE_SETTINGS);
const SID = /^SM[0-9a-f]{32}$/;

/** A local webhook receiver standing in for wabridge's webhook endpoint (records the full URL: Twilio signs it). */
async function receiver(t: Test) {
  const got: WebhookRequest[] = [];
  let port = 0;
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
      got.push({ url: `http://127.0.0.1:${port}${req.url}`, headers, query: {}, rawBody: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = 200;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  t.teardown(() => new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  }));
  return { url: `http://127.0.0.1:${port}/webhooks/twilio/demo`, got };
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
  if (plan.kind !== 'request') throw new Error(`expected a request, got ${JSON.stringify(plan)}`);
  const req = plan.request;
  const res = await request(req.url, { method: req.method as 'POST', headers: req.headers, body: req.body, headersTimeout: 3000, bodyTimeout: 3000 });
  const text = await res.body.text();
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v;
  const mapped = await mapResponse(mapping, msg, s, { status: res.statusCode, headers, text });
  return { status: res.statusCode, body: JSON.parse(text) as Record<string, unknown>, mapped, sent: formDecode(req.body ?? '') };
}

async function mapAll(hooks: WebhookRequest[]) {
  const events = [];
  for (const w of hooks) {
    const verdict = await verifySignature(mapping, w, SETTINGS);
    if (!verdict.ok) throw new Error(`signature: ${verdict.reason}`);
    events.push(...(await mapWebhook(mapping, w, SETTINGS)));
  }
  return events;
}

t.test('simulator.yaml loads and compiles', async (t) => {
  const r = loadSimulator(DIR);
  t.ok(r.ok, 'twilio simulator.yaml loads');
  if (r.ok) t.equal(r.simulator.name, 'twilio');
});

t.test('template-body-footer.json: the request the mapping builds is accepted, then signed sent/delivered/read callbacks map to statuses', async (t) => {
  const hook = await receiver(t);
  const { sim, problems } = await simulator(t, hook.url);
  const msg = message('template-body-footer.json');
  const r = await send(sim, msg);
  t.same(r.sent, { To: 'whatsapp:+919999999999', From: 'whatsapp:+14155238886', ContentSid: 'HXb5b62575e6e4ff6129ad7c8efe1f983e', ContentVariables: '{"1":"Sample"}' }, 'form body: To, From, ContentSid, ContentVariables');
  t.equal(r.status, 201, 'HTTP 201 Created');
  t.match(r.body, { account_sid: SETTINGS.accountSid, api_version: '2010-04-01', direction: 'outbound-api', status: 'queued', sid: SID, to: 'whatsapp:+919999999999', from: 'whatsapp:+14155238886', error_code: null });
  t.match(r.body.date_created, /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$/, 'RFC 2822 date');
  t.same(r.mapped.answer, { status: 'success' });
  const sid = r.mapped.providerMessageId!;
  t.match(sid, SID);
  t.match(sim.sent()[0], { recipient: '919999999999', providerMessageId: sid, answered: 201 });

  await sim.idle();
  t.equal(hook.got.length, 3, 'three status callbacks');
  for (const w of hook.got) {
    t.match(w.headers['content-type'], /application\/x-www-form-urlencoded/);
    t.ok(w.headers['x-twilio-signature'], 'X-Twilio-Signature present');
    t.match(formDecode(w.rawBody), { MessageSid: sid, SmsSid: sid, AccountSid: SETTINGS.accountSid, ChannelPrefix: 'whatsapp', To: 'whatsapp:+919999999999' });
  }
  const events = await mapAll(hook.got);
  t.same(events, [
    { event: 'status', providerMessageId: sid, status: 'sent' },
    { event: 'status', providerMessageId: sid, status: 'delivered' },
    { event: 'status', providerMessageId: sid, status: 'read' },
  ], 'store-only correlation: providerMessageId, no msgId, no timestamp (the host stamps it)');
  t.same(problems, [], 'the simulator logged no problem');
});

t.test('freeform-text.json is accepted too', async (t) => {
  const hook = await receiver(t);
  const { sim } = await simulator(t, hook.url);
  const r = await send(sim, message('freeform-text.json'));
  t.same(r.sent, { To: 'whatsapp:+919999999999', From: 'whatsapp:+14155238886', Body: 'This is message body' });
  t.same(r.mapped.answer, { status: 'success' });
  t.match(r.body, { body: 'This is message body', status: 'queued' });
  await sim.idle();
});

t.test('a recipient ending in 0000 gets sent, then failed with ErrorCode 63024 -> 1007', async (t) => {
  const hook = await receiver(t);
  const { sim } = await simulator(t, hook.url);
  const r = await send(sim, message('freeform-text.json', { to: '919999990000' }));
  t.same(r.mapped.answer, { status: 'success' });
  await sim.idle();
  t.equal(hook.got.length, 2);
  t.match(formDecode(hook.got[1]!.rawBody), { MessageStatus: 'failed', ErrorCode: '63024' });
  t.match(await mapAll(hook.got), [
    { event: 'status', status: 'sent' },
    { event: 'status', status: 'failed', providerMessageId: r.mapped.providerMessageId, error: { code: 1007, title: 'Invalid message recipient' }, providerError: { code: '63024' } },
  ]);
});

t.test('error scenarios answer in Twilio\'s error shape and map to CleverTap codes', async (t) => {
  const hook = await receiver(t);
  const { sim } = await simulator(t, hook.url);
  const expected: [string, number, number, number][] = [
    ['auth', 401, 20003, 2000],
    ['template', 400, 21656, 2001],
    ['number', 400, 21211, 2002],
    ['rate', 429, 20429, 2004],
    ['server', 500, 20500, 2004],
  ];
  const msg = message('template-body-footer.json');
  for (const [scenario, http, code, ct] of expected) {
    sim.setScenario(scenario as 'auth');
    const r = await send(sim, msg);
    t.equal(r.status, http, `${scenario}: HTTP ${http}`);
    t.same(r.body, { code, message: r.body.message, more_info: `https://www.twilio.com/docs/errors/${code}`, status: http }, `${scenario}: {code, message, more_info, status}`);
    t.equal(r.mapped.answer.status === 'failure' && r.mapped.answer.error.code, ct, `${scenario} -> ${ct}`);
  }
  sim.setScenario('success');
  t.same((await send(sim, msg)).mapped.answer, { status: 'success' }, 'back to success');
  const wrong = await send(sim, msg, { authToken: 'not-the-token' });
  t.equal(wrong.status, 401);
  t.equal(wrong.mapped.answer.status === 'failure' && wrong.mapped.answer.error.code, 2000, 'a wrong Auth Token is an auth error whatever the scenario');
  await sim.idle();
});

t.test('inbound text and button webhooks verify and map', async (t) => {
  const hook = await receiver(t);
  const { sim } = await simulator(t, hook.url);
  const sentSid = 'SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
  const text = await sim.sendInbound({ from: '+91 99999 99999', text: 'Hi there', replyTo: sentSid });
  t.ok(text.delivered);
  const [te] = await mapAll([hook.got.at(-1)!]);
  t.match(te, {
    event: 'incoming',
    providerMessageId: text.id,
    replyTo: sentSid,
    message: { from: '919999999999', wabaNumber: '14155238886', timestamp: /^\d{10}$/, type: 'text', text: { body: 'Hi there' } },
  });

  const button = await sim.sendInbound({ from: '919999999999', button: { payload: 'STOP_PROMOS', text: 'Stop' }, replyTo: sentSid });
  t.ok(button.delivered);
  t.match(formDecode(hook.got.at(-1)!.rawBody), { ButtonPayload: 'STOP_PROMOS', ButtonText: 'Stop', OriginalRepliedMessageSid: sentSid });
  t.match(await mapAll([hook.got.at(-1)!]), [{ event: 'incoming', replyTo: sentSid, message: { type: 'button', button: { payload: 'STOP_PROMOS', text: 'Stop' } } }]);

  const forged = { ...hook.got.at(-1)!, rawBody: hook.got.at(-1)!.rawBody.replace('STOP_PROMOS', 'OTHER') };
  t.match(await verifySignature(mapping, forged, SETTINGS), { ok: false }, 'a changed parameter breaks the signature');
  const moved = { ...hook.got.at(-1)!, url: hook.got.at(-1)!.url.replace('/demo', '/other') };
  t.match(await verifySignature(mapping, moved, SETTINGS), { ok: false }, 'so does another URL');
});

t.test('inbound image: MediaUrl0 is fetched with Basic auth through the media section', async (t) => {
  const hook = await receiver(t);
  const { sim } = await simulator(t, hook.url);
  const r = await sim.sendInbound({ from: '919999999999', image: { mimeType: 'image/png', caption: 'look' } });
  t.ok(r.delivered && r.mediaId);
  const [event] = await mapAll([hook.got.at(-1)!]);
  t.match(event, { event: 'incoming', message: { type: 'image', image: { mediaId: new RegExp(`^/2010-04-01/Accounts/${SETTINGS.accountSid}/Messages/SM[0-9a-f]{32}/Media/ME${r.mediaId}$`), mimeType: 'image/png', caption: 'look' } } });

  const s = { ...SETTINGS, baseUrl: sim.url };
  const mediaId = (event as unknown as { message: { image: { mediaId: string } } }).message.image.mediaId;
  t.equal(await planMediaLookup(mapping, mediaId, s), undefined, 'no look-up step');
  const download = await planMediaDownload(mapping, mediaId, s);
  t.equal(download.url, `${sim.url}${mediaId}`);
  const unauth = await request(download.url);
  await unauth.body.dump();
  t.equal(unauth.statusCode, 401, 'the Media URL needs the credentials');
  const res = await request(download.url, { headers: download.headers });
  await res.body.dump();
  t.equal(res.statusCode, 307, 'Twilio redirects to the file');
  const file = await request(String(res.headers.location));
  t.equal(file.statusCode, 200);
  t.equal(file.headers['content-type'], 'image/png');
  t.ok((await file.body.arrayBuffer()).byteLength > 0);
});
