// The BSP simulator's own machinery (loading, scenarios, the control API, retries, close), played with
// the demo's mapping and its simulator.yaml: what it answers and posts must go back through the mapping
// (mapResponse, verifySignature, mapWebhook). What one BSP's answers and webhooks must look like is
// that BSP's folder's business: its fixtures and simulator.yaml `expect`, run by test/providers/.
import t, { type Test } from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { loadMapping, type Mapping } from '../../engine/mapping/loader.js';
import { planMediaDownload, planMediaLookup } from '../../engine/mapping/media.js';
import { toCanonical } from '../../engine/mapping/pipeline.js';
import { validatorFor } from '../../engine/mapping/schema-validator.js';
import { checkSettings, secretNames } from '../../engine/mapping/settings.js';
import { mapResponse, planSend, type HttpRequest } from '../../engine/mapping/send.js';
import { loadSimulator, startBspSimulator, type BspSimulator } from '../../engine/standins/bsp-simulator.js';
import { mapWebhook, verifySignature } from '../../engine/mapping/webhook.js';
import type { CanonicalMessage } from '../../engine/clevertap/model.js';
import { demoMapping } from '../support/demo.js';
import { webhookReceiver } from '../support/webhook-receiver.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const DIR = demoMapping().dir;
const NAME = basename(DIR);
const SETTINGS = parseYaml(readFileSync(join(DIR, 'fixtures/settings.yaml'), 'utf8')) as Record<string, unknown>;
const loaded = loadMapping(DIR);
if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.message).join('; '));
const mapping: Mapping = loaded.mapping;
const contract = mapping.contracts.webhookBody ? validatorFor(join(DIR, mapping.contracts.webhookBody)) : undefined;
/** The webhook body validates against the mapping's contracts.webhookBody, when it has one. */
const fitsContract = (raw: string) => contract === undefined || contract(JSON.parse(raw));

const receiver = (t: Test, answer?: () => number) => webhookReceiver(t, NAME, answer);

const logged = new WeakMap<BspSimulator, string[]>();

async function simulator(t: Test, webhookUrl: string, extra: Partial<Parameters<typeof startBspSimulator>[0]> = {}): Promise<BspSimulator> {
  const problems: string[] = [];
  const logger = { info() {}, warn: (o: object, m?: string) => problems.push(`${m} ${JSON.stringify(o)}`), error: (o: object, m?: string) => problems.push(`${m} ${JSON.stringify(o)}`) };
  const sim = await startBspSimulator({ mappingDir: DIR, settings: SETTINGS, webhookUrl, statusDelaysMs: { sent: 10, delivered: 30, read: 50 }, retryDelayMs: 10, logger, ...extra });
  t.teardown(() => sim.close());
  logged.set(sim, problems);
  return sim;
}

function message(overrides: Record<string, unknown> = {}, file = 'freeform-text.json'): CanonicalMessage {
  const payload = { ...JSON.parse(readFileSync(here(`../../examples/clevertap/${file}`), 'utf8')), ...overrides };
  const c = toCanonical(JSON.stringify(payload));
  if (!c.ok) throw new Error(JSON.stringify(c));
  return c.message;
}

/** What wabridge does for one send: plan with the mapping, call the simulator, map the answer. */
async function send(sim: BspSimulator, msg: CanonicalMessage, settings: Record<string, unknown> = {}, timeoutMs = 3000) {
  // with the mapping's defaults applied, as the host does
  const s = checkSettings(mapping.settings, { ...SETTINGS, baseUrl: sim.url, ...settings }, 'fixtures/settings.yaml');
  const plan = await planSend(mapping, msg, s);
  if (plan.kind !== 'request') throw new Error('expected a request');
  const req: HttpRequest = plan.request;
  const res = await request(req.url, { method: 'POST', headers: req.headers, body: req.body, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const text = await res.body.text();
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v;
  const mapped = await mapResponse(mapping, msg, s, { status: res.statusCode, headers, text });
  return { status: res.statusCode, text, mapped };
}

t.test('simulator.yaml loads, compiles, and reports problems at file:line:col', async (t) => {
  const r = loadSimulator(DIR);
  t.ok(r.ok, `${NAME} simulator.yaml loads`);
  if (r.ok) {
    t.equal(r.simulator.name, NAME);
    t.ok(r.simulator.expressions.length >= 10, 'every expression compiled');
  }

  const root = mkdtempSync(join(tmpdir(), 'wab-sim-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, NAME);
  mkdirSync(dir);
  copyFileSync(join(DIR, 'mapping.yaml'), join(dir, 'mapping.yaml'));
  // send.recipient, one line in the file, made an unclosed parenthesis (inside its quotes, if any)
  const original = readFileSync(join(DIR, 'simulator.yaml'), 'utf8');
  const recipient = /^( +recipient: *)(['"]?)(.+)$/m.exec(original);
  if (!recipient || /^[|>]/.test(recipient[3]!)) throw new Error(`${NAME} simulator.yaml: send.recipient is not a one-line expression`);
  const broken = `${recipient[1]}${recipient[2]}(${recipient[3]}`;
  const text = original.replace(recipient[0], broken);
  writeFileSync(join(dir, 'simulator.yaml'), text);
  const bad = loadSimulator(dir);
  t.notOk(bad.ok, 'a syntax error is refused');
  if (!bad.ok) {
    const line = text.split('\n').indexOf(broken) + 1;
    t.equal(bad.errors[0]?.code, 'WAB_MAPPING_COMPILE');
    t.match(bad.errors[0]?.where ?? '', new RegExp(`simulator\\.yaml:${line}:\\d+$`), 'points at the line');
    t.match(bad.errors[0]?.message ?? '', /send\.recipient/);
  }

  writeFileSync(join(dir, 'simulator.yaml'), original.replace(recipient[0], `${recipient[1]!.replace('recipient:', 'recipients:')}x`));
  const schema = loadSimulator(dir);
  t.notOk(schema.ok, 'a schema problem is refused');
  if (!schema.ok) t.ok(schema.errors.some((e) => /unknown key 'recipients'/.test(e.message) && /simulator\.yaml:\d+:\d+/.test(e.where ?? '')), 'names the key and its position');
});

t.test('accepted send: recorded, answered, then signed sent/delivered/read webhooks that map to status events', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const msg = message({ to: '+91 99999 99999' });
  const r = await send(sim, msg);
  t.equal(r.status, sim.simulator.send.accepted.status);
  t.same(r.mapped.answer, { status: 'success' });
  const id = r.mapped.providerMessageId!;
  t.ok(typeof id === 'string' && id !== '', `the BSP's id (${id})`);
  t.equal(sim.sent().length, 1);
  t.match(sim.sent()[0], { recipient: '919999999999', providerMessageId: id, answered: r.status });
  if (sim.simulator.send.msgId) t.equal(sim.sent()[0]!.msgId, msg.msgId, 'the msgId the request carried');

  await sim.idle();
  t.equal(hook.got.length, 3, 'three status webhooks');
  const events = [];
  for (const w of hook.got) {
    t.same(await verifySignature(mapping, w, SETTINGS), { ok: true }, 'signed as the mapping verifies');
    t.ok(fitsContract(w.rawBody), "fits the mapping's webhook contract");
    events.push(...(await mapWebhook(mapping, w, SETTINGS)));
  }
  const echoed = sim.simulator.send.msgId ? msg.msgId : undefined;
  t.same(events.map((e) => e.event === 'status' && [e.status, e.providerMessageId, e.msgId]), [
    ['sent', id, echoed],
    ['delivered', id, echoed],
    ['read', id, echoed],
  ]);
  t.ok(events.every((e) => e.event === 'status' && (e.timestamp === undefined || /^\d{10}$/.test(e.timestamp))), 'epoch-second timestamps');
  t.same(sim.webhooks().map((w) => [w.kind, w.status, w.providerMessageId, w.delivered]), [
    ['status', 'sent', id, true],
    ['status', 'delivered', id, true],
    ['status', 'read', id, true],
  ], 'webhooks() records each one, delivered');
  t.same(logged.get(sim), [], 'the simulator logged no problem');
});

t.test('statusWebhook builds a signed status for any id, without posting or recording it', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const built = await sim.statusWebhook({ providerMessageId: 'bsp-id-1', status: 'delivered', timestamp: '1750000000' });
  const w = { url: hook.url, headers: Object.fromEntries(Object.entries(built.headers).map(([k, v]) => [k.toLowerCase(), v])), query: {}, rawBody: built.rawBody };
  t.same(await verifySignature(mapping, w, SETTINGS), { ok: true }, 'signed');
  t.match(await mapWebhook(mapping, w, SETTINGS), [{ event: 'status', status: 'delivered', providerMessageId: 'bsp-id-1' }]);
  const failed = await sim.statusWebhook({ providerMessageId: 'bsp-id-2', status: 'failed' });
  const [event] = await mapWebhook(mapping, { ...w, headers: Object.fromEntries(Object.entries(failed.headers).map(([k, v]) => [k.toLowerCase(), v])), rawBody: failed.rawBody }, SETTINGS);
  t.match(event, { event: 'status', status: 'failed', providerMessageId: 'bsp-id-2', error: { code: Number } }, "failed carries the simulator's failedError");
  t.same([sim.webhooks(), hook.got], [[], []], 'nothing posted, nothing recorded');
});

t.test('shuffled scenario: each status posted twice, in a random order, each with the time it happened', async (t) => {
  const hook = await receiver(t);
  // A pinned source: Fisher-Yates over [s, s, d, d, r, r] with these draws gives d, s, r, d, r, s.
  const draws = [0.1, 0.9, 0.5, 0.2, 0.7];
  let i = 0;
  const sim = await simulator(t, hook.url, { statusDelaysMs: { sent: 10, delivered: 1200, read: 2400 }, random: () => draws[i++ % draws.length]! });
  sim.setScenario({ scenario: 'shuffled', times: 2 });
  const msg = message({ to: '+91 99999 99999' });
  const started = Math.floor(Date.now() / 1000);
  const r = await send(sim, msg);
  t.same(r.mapped.answer, { status: 'success' }, 'accepted as in success');
  const failing = await send(sim, message({ to: '919999990000' }));
  t.equal(sim.scenario().scenario, 'success', 'times: 2 used up');
  await sim.idle(10_000);
  const byMsg = new Map<string, { status: string; timestamp: string; raw: string }[]>();
  for (const w of hook.got) {
    t.same(await verifySignature(mapping, w, SETTINGS), { ok: true }, 'signed');
    t.ok(fitsContract(w.rawBody), "fits the mapping's webhook contract");
    for (const e of await mapWebhook(mapping, w, SETTINGS)) {
      if (e.event !== 'status') continue;
      byMsg.set(e.providerMessageId!, [...(byMsg.get(e.providerMessageId!) ?? []), { status: e.status, timestamp: e.timestamp!, raw: w.rawBody }]);
    }
  }
  const posted = byMsg.get(r.mapped.providerMessageId!) ?? [];
  t.same(posted.map((p) => p.status), ['delivered', 'sent', 'read', 'delivered', 'read', 'sent'], 'the pinned order: each status twice, delivered first');
  for (const s of ['sent', 'delivered', 'read']) {
    const two = posted.filter((p) => p.status === s);
    t.equal(two[0]?.raw, two[1]?.raw, `${s}: the second post is the same webhook, byte for byte`);
  }
  const at = Object.fromEntries(posted.map((p) => [p.status, Number(p.timestamp)]));
  t.ok(at.sent! >= started && at.sent! < at.delivered! && at.delivered! < at.read!, `timestamps in the order the statuses happened, not the order posted (${JSON.stringify(at)})`);
  t.same((byMsg.get(failing.mapped.providerMessageId!) ?? []).map((p) => p.status).sort(), ['failed', 'failed', 'sent', 'sent'], 'a failing recipient: sent and failed, twice each');
  t.same(logged.get(sim), [], 'the simulator logged no problem');
});

t.test('error scenarios answer as simulator.yaml declares and map to CleverTap codes', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const expected: [string, number][] = [
    ['auth', 2000],
    ['template', 2001],
    ['number', 2002],
    ['rate', 2004],
    ['server', 2004],
  ];
  for (const [scenario, code] of expected) {
    sim.setScenario(scenario as 'auth');
    const r = await send(sim, message());
    const http = sim.simulator.send.errors[scenario as 'auth'].status;
    t.equal(r.status, http, `${scenario}: HTTP ${http}`);
    t.equal(r.mapped.answer.status === 'failure' && r.mapped.answer.error.code, code, `${scenario} → ${code}`);
  }
  sim.setScenario('success');
  t.same((await send(sim, message())).mapped.answer, { status: 'success' }, 'back to success');

  sim.setScenario({ scenario: 'server', times: 1 });
  t.equal((await send(sim, message())).status, sim.simulator.send.errors.server.status, 'times: 1 applies once');
  t.equal((await send(sim, message())).status, sim.simulator.send.accepted.status, '...then success again');

  if (sim.simulator.authorized) {
    const wrong = Object.fromEntries(secretNames(mapping.settings).filter((k) => SETTINGS[k] !== undefined).map((k) => [k, `not-the-${k}`]));
    const r = await send(sim, message(), wrong);
    t.equal(r.mapped.answer.status === 'failure' && r.mapped.answer.error.code, 2000, 'wrong credentials are an auth error whatever the scenario');
  }

  await sim.idle();
  t.throws(() => sim.setScenario('bogus' as 'auth'), /unknown scenario/);
});

t.test('slow and hang scenarios', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  sim.setScenario({ scenario: 'slow', delayMs: 300 });
  const started = Date.now();
  const r = await send(sim, message());
  t.ok(Date.now() - started >= 280, 'answered after the delay');
  t.same(r.mapped.answer, { status: 'success' });

  sim.setScenario('hang');
  await t.rejects(send(sim, message(), {}, 200), 'a hanging send never answers (client times out)');
  t.equal(sim.sent().at(-1)?.answered, 'hang');
  await sim.idle();
});

t.test('control API: scenario, inbound, requests', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const post = async (path: string, body: unknown) => {
    const res = await request(`${sim.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  };
  t.match(await post('/_sim/scenario', { scenario: 'rate' }), { status: 200, body: { scenario: 'rate' } });
  t.equal((await send(sim, message())).status, sim.simulator.send.errors.rate.status);
  t.match(await post('/_sim/scenario', { scenario: 'nope' }), { status: 400 });
  await post('/_sim/scenario', { scenario: 'success' });

  const reqs = await request(`${sim.url}/_sim/requests`);
  const list = (await reqs.body.json()) as unknown[];
  t.equal(list.length, 1);

  const sentId = 'bsp-message-answered-1';
  const inbound = await post('/_sim/inbound', { from: '+91 99999 99999', text: 'Hi there', replyTo: sentId });
  t.match(inbound, { status: 200, body: { kind: 'text', delivered: true, id: String } });
  const w = hook.got.at(-1)!;
  t.same(await verifySignature(mapping, w, SETTINGS), { ok: true });
  t.ok(fitsContract(w.rawBody), "fits the mapping's webhook contract");
  const [text, ...more] = await mapWebhook(mapping, w, SETTINGS);
  t.same(more, [], 'one event');
  t.match(text, { event: 'incoming', providerMessageId: inbound.body.id, replyTo: sentId, message: { from: '919999999999', type: 'text', text: { body: 'Hi there' } } });
  t.ok(text?.event === 'incoming' && /^\d{10}$/.test(text.message.timestamp ?? ''), 'stamped with the time it was sent');

  const button = await sim.sendInbound({ from: '919999999999', button: { payload: 'STOP_PROMOS', text: 'Stop' }, replyTo: sentId });
  t.ok(button.delivered);
  t.match(await mapWebhook(mapping, hook.got.at(-1)!, SETTINGS), [{ event: 'incoming', replyTo: sentId, message: { type: 'button', button: { payload: 'STOP_PROMOS', text: 'Stop' } } }]);

  t.match(await post('/_sim/inbound', { from: '919999999999' }), { status: 400 }, 'inbound needs content');
  t.match(await post('/_sim/inbound', { text: 'no sender' }), { status: 400, body: { error: /from/ } }, 'inbound needs a sender');
});

t.test('inbound image and the media look-up, through the mapping\'s media section', async (t) => {
  const hook = await receiver(t);
  const sim = await simulator(t, hook.url);
  const r = await sim.sendInbound({ from: '919999999999', image: { mimeType: 'image/png', caption: 'look' } });
  t.ok(r.delivered && r.mediaId);
  const [event] = await mapWebhook(mapping, hook.got.at(-1)!, SETTINGS);
  t.match(event, { event: 'incoming', message: { type: 'image', image: { mediaId: r.mediaId, mimeType: 'image/png', caption: 'look' } } });
  t.ok(fitsContract(hook.got.at(-1)!.rawBody), "fits the mapping's webhook contract");

  const s = checkSettings(mapping.settings, { ...SETTINGS, baseUrl: sim.url }, 'fixtures/settings.yaml');
  const lookup = await planMediaLookup(mapping, r.mediaId!, s);
  let body: unknown;
  if (lookup) {
    const res = await request(lookup.url, { method: 'GET', headers: lookup.headers });
    t.equal(res.statusCode, 200, "the simulator's look-up route answers");
    body = await res.body.json();
  }
  const download = await planMediaDownload(mapping, r.mediaId!, s, body);
  const file = await request(download.url, { headers: download.headers });
  t.equal(file.statusCode, 200);
  t.equal(file.headers['content-type'], 'image/png');
  t.ok((await file.body.arrayBuffer()).byteLength > 0);
});

t.test('webhook delivery is retried at most 3 times', async (t) => {
  const hook = await receiver(t, () => 500);
  const errors: unknown[] = [];
  const logger = { info() {}, warn() {}, error: (o: object) => errors.push(o) };
  const sim = await simulator(t, hook.url, { logger });
  const r = await sim.sendInbound({ from: '919999999999', text: 'x' });
  t.equal(r.delivered, false);
  t.equal(r.outcome, 500);
  t.equal(hook.got.length, 4, 'one attempt plus three retries');
  t.equal(errors.length, 1, 'logged once');
});

t.test('webhooks beyond the connections wait their turn: the timeout runs from the POST, not from the queue', async (t) => {
  // A receiver that takes 60 ms per webhook behind one connection: nine webhooks need 540 ms, well
  // past the 150 ms timeout, yet each one is posted once and none is aborted while it waits.
  let open = 0;
  let most = 0;
  const got: string[] = [];
  const server = createServer((req, res) => {
    open++;
    most = Math.max(most, open);
    req.resume();
    req.on('end', () =>
      setTimeout(() => {
        open--;
        got.push(req.url ?? '');
        res.end();
      }, 60),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/${NAME}/demo`;
  const sim = await simulator(t, url, { webhookConnections: 1, webhookTimeoutMs: 150, statusDelaysMs: { sent: 1, delivered: 2, read: 3 } });
  for (let i = 0; i < 3; i++) t.equal((await send(sim, message({ msgId: `queue-${i}` }))).status, 200);
  await sim.idle(10_000);
  t.equal(got.length, 9, 'three statuses for each of three sends');
  t.equal(most, 1, 'one connection: one webhook in flight at a time');
  t.same(
    sim.webhooks().map((w) => [w.delivered, w.attempts]),
    Array.from({ length: 9 }, () => [true, 1]),
    'each delivered at its first attempt',
  );
  t.same(logged.get(sim), [], 'nothing given up');
});

t.test('close() stops scheduled webhooks and releases hanging requests', async (t) => {
  const hook = await receiver(t);
  const sim = await startBspSimulator({ mappingDir: DIR, settings: SETTINGS, webhookUrl: hook.url, statusDelaysMs: { sent: 5_000, delivered: 10_000, read: 20_000 } });
  await send(sim, message());
  sim.setScenario('hang');
  const hanging = send(sim, message(), {}, 10_000).then(
    () => 'answered',
    () => 'dropped',
  );
  while (sim.sent().length < 2) await new Promise((r) => setTimeout(r, 5));
  const started = Date.now();
  await sim.close();
  t.equal(await hanging, 'dropped');
  t.ok(Date.now() - started < 2000, 'closes promptly');
  t.equal(hook.got.length, 0, 'no webhook after close');
  await sim.idle();
});
