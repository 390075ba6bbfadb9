// What every BSP folder (mappings/<bsp>/) must prove against the local stand-in, whatever the BSP:
// its simulator.yaml plays the BSP, and every answer and webhook goes back through its mapping.yaml to
// the CleverTap answer or event the contract wants. Nothing here names a BSP; what is BSP-specific is
// data in the folder: simulator.yaml (shapes, `expect`, `handshake`) and the golden fixtures, whose
// shapes the simulator's answers must have. The goldens themselves run in test/mapping/golden.test.ts.
import type { Test } from 'tap';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import type { CanonicalMessage } from '../../engine/clevertap/model.js';
import { loadMapping, type Mapping } from '../../engine/mapping/loader.js';
import { planMediaDownload, planMediaLookup } from '../../engine/mapping/media.js';
import { toCanonical } from '../../engine/mapping/pipeline.js';
import { validatorFor } from '../../engine/mapping/schema-validator.js';
import { checkSettings } from '../../engine/mapping/settings.js';
import { formDecode, mapResponse, planSend } from '../../engine/mapping/send.js';
import { handshake, mapWebhook, splitWebhook, verifySignature, type WebhookEvent, type WebhookRequest } from '../../engine/mapping/webhook.js';
import { loadSimulator, startBspSimulator, type BspSimulator, type ErrorScenario } from '../../engine/standins/bsp-simulator.js';
import { webhookReceiver } from '../support/webhook-receiver.js';

const EXAMPLES = fileURLToPath(new URL('../../examples/clevertap/', import.meta.url));
const TEMPLATE = 'template-body-footer.json';
const FREEFORM = 'freeform-text.json';
const RECIPIENT = '919999999999';
const FAILING_RECIPIENT = '919999990000';

/** What CleverTap must be answered for each error scenario (docs/errors.md). */
const SCENARIO_CODES: [ErrorScenario, number][] = [['auth', 2000], ['template', 2001], ['number', 2002], ['rate', 2004], ['server', 2004]];

interface Expect {
  failed?: object;
  incoming?: object;
  button?: object;
  accepted?: { template?: object; freeform?: object };
  sentStatus?: { template?: object; freeform?: object };
}

type Json = Record<string, unknown>;

/** Every folder under `root` with a mapping.yaml: the BSPs the suite runs for. */
export function providerDirs(root: string): string[] {
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(root, d.name, 'mapping.yaml')))
    .map((d) => join(root, d.name))
    .sort();
}

function message(file: string, overrides: Json = {}): CanonicalMessage {
  const c = toCanonical(JSON.stringify({ ...(JSON.parse(readFileSync(join(EXAMPLES, file), 'utf8')) as Json), ...overrides }));
  if (!c.ok) throw new Error(JSON.stringify(c));
  return c.message;
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


/**
 * Whether two JSON values have the same keys all the way down (values ignored: ids, dates and texts
 * differ); arrays by their first element, and an empty array fits any array. Two bodies of one shape
 * are the same message kind in the BSP's format.
 */
function sameShape(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) return Array.isArray(a) && Array.isArray(b) && (a.length === 0 || b.length === 0 || sameShape(a[0], b[0]));
  const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object';
  if (!isObject(a) || !isObject(b)) return !isObject(a) && !isObject(b);
  const keys = Object.keys(a).sort();
  return JSON.stringify(keys) === JSON.stringify(Object.keys(b).sort()) && keys.every((k) => sameShape(a[k], b[k]));
}

/** Every key path of a JSON value (`a.b[].c`), arrays through all their items. */
function keyPaths(v: unknown, at = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) {
    for (const item of v) keyPaths(item, `${at}[]`, out);
  } else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      const path = at ? `${at}.${k}` : k;
      out.add(path);
      keyPaths(x, path, out);
    }
  }
  return out;
}

/** For a failure message: the fixture body nearest in shape, and the key paths that differ. */
function nearest(bodies: { name: string; body?: unknown }[], body: unknown): { fixture?: string; onlyInSimulator?: string[]; onlyInFixture?: string[] } {
  const mine = keyPaths(body);
  let best: { fixture?: string; onlyInSimulator?: string[]; onlyInFixture?: string[] } = {};
  let bestCount = Infinity;
  for (const f of bodies) {
    const theirs = keyPaths(f.body);
    const onlyInSimulator = [...mine].filter((k) => !theirs.has(k));
    const onlyInFixture = [...theirs].filter((k) => !mine.has(k));
    if (onlyInSimulator.length + onlyInFixture.length < bestCount) {
      bestCount = onlyInSimulator.length + onlyInFixture.length;
      best = { fixture: f.name, onlyInSimulator, onlyInFixture };
    }
  }
  return best;
}

function parseBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

interface FixtureCase {
  name: string;
  kind: string;
  status: number;
  /** input.json, or input.txt form-decoded. */
  body?: unknown;
  /** The input was input.txt (form-encoded). */
  form?: boolean;
  /** The CleverTap answer its expected.json holds (response fixtures). */
  code?: number | 'success';
}

/** The folder's golden fixtures, as far as the suite compares the simulator with them. */
function fixtureCases(dir: string): FixtureCase[] {
  const root = join(dir, 'fixtures');
  if (!existsSync(root)) return [];
  const out: FixtureCase[] = [];
  for (const name of readdirSync(root).sort()) {
    const f = (file: string) => join(root, name, file);
    if (!existsSync(f('fixture.yaml'))) continue;
    const fixture = parseYaml(readFileSync(f('fixture.yaml'), 'utf8')) as { kind: string; status?: number };
    const c: FixtureCase = { name, kind: fixture.kind, status: fixture.status ?? 200 };
    if (existsSync(f('input.json'))) c.body = JSON.parse(readFileSync(f('input.json'), 'utf8')) as unknown;
    else if (existsSync(f('input.txt'))) {
      c.body = formDecode(readFileSync(f('input.txt'), 'utf8'));
      c.form = true;
    }
    const answer = existsSync(f('expected.json')) ? (JSON.parse(readFileSync(f('expected.json'), 'utf8')) as { answer?: { status: string; error?: { code: number } } }).answer : undefined;
    if (answer) c.code = answer.status === 'success' ? 'success' : answer.error!.code;
    out.push(c);
  }
  return out;
}

/** Changes one character in the middle of a string, to one that is a digit in hex and base64 alike: the smallest forgery. */
function tamper(s: string): string {
  const i = Math.floor(s.length / 2);
  return s.slice(0, i) + (s[i] === '0' ? '1' : '0') + s.slice(i + 1);
}

/** Runs every check for the BSP folder `dir`. */
export async function providerSuite(t: Test, dir: string): Promise<void> {
  const loaded = loadMapping(dir);
  t.ok(loaded.ok, 'mapping.yaml loads', { diagnostic: !loaded.ok, errors: loaded.ok ? [] : loaded.errors.map((e) => `${e.where}: ${e.message}`) });
  const simLoaded = loadSimulator(dir);
  t.ok(simLoaded.ok, 'simulator.yaml loads', { diagnostic: !simLoaded.ok, errors: simLoaded.ok ? [] : simLoaded.errors.map((e) => `${e.where}: ${e.message}`) });
  if (!loaded.ok || !simLoaded.ok) return;
  const mapping: Mapping = loaded.mapping;
  const bsp = mapping.name;
  t.ok('baseUrl' in mapping.settings, 'the mapping declares a baseUrl setting, so the simulator can stand in for the BSP (docs/standins.md)');
  if (!('baseUrl' in mapping.settings)) return;
  const expectations = ((parseYaml(readFileSync(join(dir, 'simulator.yaml'), 'utf8')) as { expect?: Expect }).expect ?? {}) as Expect;
  const fixtureSettings = (parseYaml(readFileSync(join(dir, 'fixtures', 'settings.yaml'), 'utf8')) as Json | null) ?? {};
  const secrets = Object.entries(mapping.settings).filter(([, d]) => d.secret).map(([k]) => k);
  const fixtures = fixtureCases(dir);
  const responses = fixtures.filter((f) => f.kind === 'response' && f.body !== undefined && f.code !== undefined);
  const webhookKeys = new Set(fixtures.filter((f) => f.kind === 'webhook').flatMap((f) => [...keyPaths(f.body)]));
  const contract = mapping.contracts.webhookBody ? validatorFor(join(mapping.dir, mapping.contracts.webhookBody)) : undefined;

  /** A simulator on a port known in advance: its own links (media) are built from baseUrl. */
  async function stand(t: Test) {
    const hook = await webhookReceiver(t, bsp);
    const port = await freePort();
    const settings = checkSettings(mapping.settings, { ...fixtureSettings, baseUrl: `http://127.0.0.1:${port}` }, `${bsp}/fixtures/settings.yaml`);
    const problems: string[] = [];
    const note = (o: object, m?: string) => problems.push(`${m} ${JSON.stringify(o)}`);
    const sim = await startBspSimulator({ mappingDir: dir, settings, webhookUrl: hook.url, port, statusDelaysMs: { sent: 10, delivered: 30, read: 50 }, retryDelayMs: 10, logger: { info() {}, warn: note, error: note } });
    t.teardown(() => sim.close());
    return { sim, hook, settings, problems };
  }

  /** What wabridge does for one send: plan with the mapping, call the simulator, map the answer. */
  async function send(settings: Json, msg: CanonicalMessage) {
    const plan = await planSend(mapping, msg, settings);
    if (plan.kind !== 'request') throw new Error(`expected a request, got ${JSON.stringify(plan)}`);
    const req = plan.request;
    const res = await request(req.url, { method: req.method, headers: req.headers, body: req.body, headersTimeout: 3000, bodyTimeout: 3000 });
    const text = await res.body.text();
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v;
    const mapped = await mapResponse(mapping, msg, settings, { status: res.statusCode, headers, text });
    return { status: res.statusCode, body: parseBody(text), mapped };
  }

  /** The simulator answered in the shape of one of the folder's response fixtures with the same outcome. */
  function sameShapeAsAFixture(t: Test, what: string, status: number, body: unknown, code: number | 'success') {
    const like = responses.filter((f) => f.status === status && f.code === code);
    const found = like.some((f) => sameShape(f.body, body));
    t.ok(found, `${what}: HTTP ${status} in the shape of a response fixture answered ${code} (${like.map((f) => f.name).join(', ') || 'none has that status and outcome'})`, { diagnostic: !found, got: body, ...(found ? {} : nearest(like, body)) });
  }

  /** Verifies one webhook as the host would (and forgeries of it), then maps it. */
  async function eventsOf(t: Test, hooks: WebhookRequest[], settings: Json): Promise<WebhookEvent[]> {
    const events: WebhookEvent[] = [];
    const sig = mapping.webhook?.signature;
    for (const w of hooks) {
      t.same(await verifySignature(mapping, w, settings), { ok: true }, sig ? `signed as ${sig.header} declares` : 'no signature declared: accepted as sent');
      const header = sig && Object.keys(w.headers).find((h) => h.toLowerCase() === sig.header.toLowerCase());
      if (sig && header) {
        const forgeries: [string, WebhookRequest][] = [
          ['a tampered signature', { ...w, headers: { ...w.headers, [header]: tamper(w.headers[header]!) } }],
          ['a changed body', { ...w, rawBody: `${w.rawBody} ` }],
          ['no signature header', { ...w, headers: Object.fromEntries(Object.entries(w.headers).filter(([h]) => h !== header)) }],
        ];
        // Whatever else the signed payload reads (a nonce header, the URL) must be covered too.
        const payload = sig.payload?.text ?? '';
        for (const [, name] of payload.matchAll(/headers\.`?([A-Za-z0-9_-]+)`?/g)) {
          const h = Object.keys(w.headers).find((k) => k.toLowerCase() === name!.toLowerCase());
          t.ok(h, `the ${name} header the signature covers is sent`);
          if (h) forgeries.push([`a changed ${h} header`, { ...w, headers: { ...w.headers, [h]: tamper(w.headers[h]!) } }]);
        }
        if (/(^|[^.\w$])url\b/.test(payload)) forgeries.push(['another URL', { ...w, url: w.url.replace('/demo', '/other') }]);
        for (const [what, forged] of forgeries) t.match(await verifySignature(mapping, forged, settings), { ok: false }, `${what} is rejected`);
      }
      const body = /x-www-form-urlencoded/.test(w.headers['content-type'] ?? '') ? formDecode(w.rawBody) : parseBody(w.rawBody);
      // Webhooks have optional fields the fixtures show one at a time: every key path the simulator
      // sends must stand in some webhook fixture (no invented or misspelt field).
      const unknown = [...keyPaths(body)].filter((k) => !webhookKeys.has(k));
      t.same(unknown, [], 'every field of the body stands in a webhook fixture', { diagnostic: unknown.length > 0, got: body });
      if (contract && /json/.test(w.headers['content-type'] ?? '')) {
        const valid = contract(JSON.parse(w.rawBody));
        t.ok(valid, `the body validates against ${mapping.contracts.webhookBody}`, { diagnostic: !valid, errors: contract.errors ?? [] });
      }
      events.push(...(await mapWebhook(mapping, w, settings)));
    }
    return events;
  }

  const epochNow = (ts: string | undefined) => ts === undefined || (/^\d{10}$/.test(ts) && Math.abs(Number(ts) - Date.now() / 1000) < 600);

  t.test('simulator.yaml names its folder', async (t) => {
    t.equal(simLoaded.simulator.name, bsp);
  });

  t.test('template and freeform sends are accepted, then sent/delivered/read statuses map back', async (t) => {
    const { sim, hook, settings, problems } = await stand(t);
    for (const file of [TEMPLATE, FREEFORM]) {
      const msg = message(file);
      const r = await send(settings, msg);
      t.same(r.mapped.answer, { status: 'success' }, `${file}: success`);
      t.equal(r.status, sim.simulator.send.accepted.status, `${file}: HTTP ${sim.simulator.send.accepted.status}`);
      sameShapeAsAFixture(t, file, r.status, r.body, 'success');
      const kind = file === TEMPLATE ? 'template' : 'freeform';
      if (expectations.accepted?.[kind]) t.match(r.body, expectations.accepted[kind], `${file}: the answer as simulator.yaml expect.accepted.${kind} says`);
      const id = r.mapped.providerMessageId;
      t.ok(typeof id === 'string' && id !== '', `${file}: the BSP's message id is read (${id})`);
      t.match(sim.sent().at(-1), { recipient: RECIPIENT, providerMessageId: id, answered: r.status }, `${file}: the simulator took the request the mapping built as a send to ${RECIPIENT}`);
      if (sim.simulator.send.msgId) t.equal(sim.sent().at(-1)!.msgId, msg.msgId, `${file}: the request carries CleverTap's msgId`);

      await sim.idle(5000);
      t.equal(hook.got.length, 3, `${file}: three status webhooks`);
      const sentHook = hook.got[0];
      if (expectations.sentStatus?.[kind] && sentHook) {
        const body = /x-www-form-urlencoded/.test(sentHook.headers['content-type'] ?? '') ? formDecode(sentHook.rawBody) : parseBody(sentHook.rawBody);
        t.match(body, expectations.sentStatus[kind], `${file}: the sent webhook as simulator.yaml expect.sentStatus.${kind} says`);
      }
      const events = await eventsOf(t, hook.got.splice(0), settings);
      t.same(events.map((e) => e.event === 'status' && [e.status, e.providerMessageId, e.msgId]), [
        ['sent', id, sim.simulator.send.msgId ? msg.msgId : undefined],
        ['delivered', id, sim.simulator.send.msgId ? msg.msgId : undefined],
        ['read', id, sim.simulator.send.msgId ? msg.msgId : undefined],
      ], `${file}: statuses keyed by the BSP's id, ${sim.simulator.send.msgId ? 'with the msgId the BSP echoes' : 'without msgId (the BSP echoes none: the host correlates)'}`);
      t.ok(events.every((e) => e.event === 'status' && epochNow(e.timestamp)), `${file}: timestamps, when the BSP gives one, are epoch seconds of now`);
    }
    t.same(problems, [], 'the simulator logged no problem');
  });

  t.test(`a recipient ending in 0000 gets sent, then failed with a 1xxx code`, async (t) => {
    const { sim, hook, settings } = await stand(t);
    const msg = message(FREEFORM, { to: FAILING_RECIPIENT });
    const r = await send(settings, msg);
    t.same(r.mapped.answer, { status: 'success' });
    await sim.idle(5000);
    t.equal(hook.got.length, 2, 'two status webhooks');
    const events = await eventsOf(t, hook.got.splice(0), settings);
    const msgId = sim.simulator.send.msgId ? msg.msgId : undefined;
    t.match(events, [
      { event: 'status', status: 'sent', providerMessageId: r.mapped.providerMessageId },
      { event: 'status', status: 'failed', providerMessageId: r.mapped.providerMessageId, error: { code: Number }, providerError: Object },
    ]);
    t.ok(events.every((e) => e.event === 'status' && e.msgId === msgId), 'msgId as the BSP echoes it');
    const failed = events[1] as { error?: { code: number } } | undefined;
    t.ok(failed?.error && failed.error.code >= 1000 && failed.error.code < 2000, `a delivery error code (${failed?.error?.code})`);
    if (expectations.failed) t.match(events[1], expectations.failed, 'as simulator.yaml expect.failed says');
  });

  t.test('error scenarios map to CleverTap codes 2000-2004; wrong credentials are 2000 whatever the scenario', async (t) => {
    const { sim, settings } = await stand(t);
    for (const file of [TEMPLATE, FREEFORM]) {
      for (const [scenario, code] of SCENARIO_CODES) {
        sim.setScenario(scenario);
        const r = await send(settings, message(file));
        const http = sim.simulator.send.errors[scenario].status;
        t.equal(r.status, http, `${file} ${scenario}: HTTP ${http}`);
        t.equal(r.mapped.answer.status === 'failure' && r.mapped.answer.error.code, code, `${file} ${scenario} -> ${code}`);
        sameShapeAsAFixture(t, `${file} ${scenario}`, r.status, r.body, code);
      }
    }
    sim.setScenario('success');
    t.same((await send(settings, message(TEMPLATE))).mapped.answer, { status: 'success' }, 'back to success');
    if (sim.simulator.authorized) {
      // Those the tenant set (not defaults), then every one: a secret that is empty by default can
      // switch the auth scheme (a bearer token over Basic), and both schemes must refuse wrong values.
      const given = secrets.filter((k) => fixtureSettings[k] !== undefined);
      const wrong = (keys: string[]) => ({ ...settings, ...Object.fromEntries(keys.map((k) => [k, `not-the-${k}`])) });
      const r = await send(wrong(given), message(FREEFORM));
      t.equal(r.mapped.answer.status === 'failure' && r.mapped.answer.error.code, 2000, `wrong ${given.join(', ')} -> 2000`);
      const rest = secrets.filter((k) => !given.includes(k));
      if (rest.length > 0) {
        const all = await send(wrong(secrets), message(FREEFORM));
        t.equal(all.mapped.answer.status === 'failure' && all.mapped.answer.error.code, 2000, `every secret setting wrong (${secrets.join(', ')}) -> 2000`);
      }
    }
    await sim.idle(5000);
  });

  t.test('inbound text, button and image webhooks map to incoming events', async (t) => {
    const { sim, hook, settings, problems } = await stand(t);
    const sent = await send(settings, message(FREEFORM));
    await sim.idle(5000);
    hook.got.length = 0;
    const replyTo = sent.mapped.providerMessageId!;

    const text = await sim.sendInbound({ from: '+91 99999 99999', text: 'Hi there', replyTo });
    t.ok(text.delivered, 'text delivered');
    const [te] = await eventsOf(t, hook.got.splice(0), settings);
    t.match(te, { event: 'incoming', providerMessageId: text.id, replyTo, message: { from: RECIPIENT, wabaNumber: /^\d{6,15}$/, type: 'text', text: { body: 'Hi there' } } });
    t.ok(epochNow((te as { message?: { timestamp?: string } } | undefined)?.message?.timestamp), 'an epoch-second timestamp of now');
    if (expectations.incoming) t.match(te, { message: expectations.incoming }, 'as simulator.yaml expect.incoming says');

    const tap = { payload: 'STOP_PROMOS', text: 'Stop' };
    const button = await sim.sendInbound({ from: RECIPIENT, button: tap, replyTo });
    t.ok(button.delivered, 'button delivered');
    const [be] = await eventsOf(t, hook.got.splice(0), settings);
    t.match(be, { event: 'incoming', providerMessageId: button.id, replyTo, message: { from: RECIPIENT, type: 'button', button: expectations.button ?? tap, ...expectations.incoming } });

    if (sim.simulator.webhooks.image) {
      for (const image of [{ mimeType: 'image/png', caption: 'look' }, { mimeType: 'image/jpeg' }]) {
        const r = await sim.sendInbound({ from: RECIPIENT, image });
        t.ok(r.delivered && r.mediaId, `${image.mimeType} image delivered`);
        const [ie] = await eventsOf(t, hook.got.splice(0), settings);
        t.match(ie, { event: 'incoming', providerMessageId: r.id, message: { from: RECIPIENT, type: 'image', ...expectations.incoming } });
        const got = (ie as { message?: { image?: { mediaId?: string; mediaURL?: string; mimeType?: string; caption?: string } } } | undefined)?.message?.image ?? {};
        t.equal(got.caption, image.caption, `caption ${image.caption ?? 'absent'}`);
        if (got.mimeType !== undefined) t.equal(got.mimeType, image.mimeType, 'the mime type sent');
        await fetchable(t, sim, settings, got, r.mediaId!, image.mimeType);
      }
    }
    t.same(problems, [], 'the simulator logged no problem');
  });

  /** The image an incoming event names can be fetched from the simulator the way the host would. */
  async function fetchable(t: Test, sim: BspSimulator, settings: Json, image: { mediaId?: string; mediaURL?: string }, simMediaId: string, mimeType: string) {
    if (image.mediaURL !== undefined) {
      t.ok(image.mediaURL.includes(simMediaId), 'the mediaURL names the file');
      if (!image.mediaURL.startsWith(sim.url)) return; // a URL on the BSP's real media host: never fetched
      const file = await request(image.mediaURL);
      t.equal(file.statusCode, 200, 'the mediaURL is fetchable without credentials');
      t.ok((await file.body.arrayBuffer()).byteLength > 0, 'and has bytes');
      return;
    }
    t.ok(image.mediaId, 'a mediaId (or a mediaURL)');
    if (!image.mediaId) return;
    const lookup = await planMediaLookup(mapping, image.mediaId, settings);
    let body: unknown;
    let first = lookup && { url: lookup.url, method: lookup.method, headers: lookup.headers };
    if (lookup) {
      const res = await request(lookup.url, { method: lookup.method, headers: lookup.headers });
      t.equal(res.statusCode, 200, 'the media look-up is answered');
      body = parseBody(await res.body.text());
    }
    const download = await planMediaDownload(mapping, image.mediaId, settings, body);
    t.ok(download.url.startsWith(sim.url), `the file is fetched from the BSP (${download.url})`);
    first ??= { url: download.url, method: 'GET', headers: download.headers };
    if (!sim.simulator.media) return; // no media route simulated: the plan is all there is to check
    let res = await request(download.url, { headers: download.headers });
    if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location) {
      await res.body.dump();
      res = await request(String(res.headers.location));
    }
    t.equal(res.statusCode, 200, 'the file is downloaded');
    t.equal(res.headers['content-type'], mimeType, 'as the type it was sent with');
    t.ok((await res.body.arrayBuffer()).byteLength > 0, 'and has bytes');
    if (sim.simulator.authorized && Object.keys(first.headers).length > 0) {
      const denied = await request(first.url, { method: first.method as 'GET' });
      await denied.body.dump();
      t.equal(denied.statusCode, 401, 'without the credentials the media is refused');
    }
  }

  // The quarantine maps a batch item by item when the whole fails (docs/mapping-format.md): cut into
  // pieces, a webhook that maps must give the same events, so no item is lost or mapped twice.
  t.test('webhook.split: the pieces of every JSON webhook fixture map alone to the events of the whole', async (t) => {
    if (!mapping.webhook?.split) return t.pass('no split declared');
    const settings = checkSettings(mapping.settings, { ...fixtureSettings, baseUrl: 'http://127.0.0.1:9' }, `${bsp}/fixtures/settings.yaml`);
    const sorted = (events: WebhookEvent[]) => events.map((e) => JSON.stringify(e)).sort();
    let batches = 0;
    for (const f of fixtures.filter((x) => x.kind === 'webhook' && !x.form && x.body !== null && typeof x.body === 'object')) {
      const req: WebhookRequest = { url: 'http://127.0.0.1:3000/v1/tenants/test/webhook', headers: { 'content-type': 'application/json' }, query: {}, rawBody: JSON.stringify(f.body) };
      let whole: WebhookEvent[];
      try {
        whole = await mapWebhook(mapping, req, settings);
      } catch {
        continue; // a fixture of a refused body: nothing to compare the pieces with
      }
      const pieces = (await splitWebhook(mapping, req, settings)) ?? [];
      const parts: WebhookEvent[] = [];
      for (const p of pieces) parts.push(...(await mapWebhook(mapping, p, settings)));
      t.same(sorted(parts), sorted(whole), `${f.name}: ${pieces.length} piece(s), ${whole.length} event(s)`);
      if (pieces.length > 1) batches++;
    }
    t.comment(`${batches} fixture(s) of several items`);
  });

  t.test('webhook handshake', async (t) => {
    const { sim, settings } = await stand(t);
    const declared = mapping.webhook?.handshake !== undefined && mapping.webhook?.handshake !== null;
    t.equal(sim.simulator.handshake !== undefined, declared, declared ? 'the mapping declares one: simulator.yaml says how the BSP sends it' : 'none declared, none simulated');
    const req = await sim.handshakeRequest();
    if (!declared || !req) return;
    t.same(await handshake(mapping, { headers: {}, query: req.query }, settings), { status: 200, body: req.answer }, 'answered as the BSP expects');
    const forged = await sim.handshakeRequest(Object.fromEntries(secrets.map((k) => [k, `not-the-${k}`])));
    t.match(await handshake(mapping, { headers: {}, query: forged!.query }, settings), { status: 403 }, 'a BSP configured with other secrets is refused');
  });
}

