// The bench's hand-written baseline against the engine running the mapping it re-implements (both
// from bench/handwritten/): for every send and webhook golden fixture both must give exactly the same
// result, so that benchmarking one against the other compares like with like.
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { BASELINE_MAPPING_DIR, baselineSend, baselineWebhookEvents, type BaselineSettings } from '../../bench/handwritten/baseline.js';
import { loadMapping } from '../../engine/mapping/loader.js';
import { toCanonical } from '../../engine/mapping/pipeline.js';
import { planSend } from '../../engine/mapping/send.js';
import { checkSettings } from '../../engine/mapping/settings.js';
import { mapWebhook } from '../../engine/mapping/webhook.js';
import type { CanonicalMessage } from '../../engine/clevertap/model.js';

const dir = BASELINE_MAPPING_DIR;
const loaded = loadMapping(dir);
if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.message).join('\n'));
const mapping = loaded.mapping;
const baseSettings = parseYaml(readFileSync(join(dir, 'fixtures', 'settings.yaml'), 'utf8')) as Record<string, unknown>;

interface Case {
  name: string;
  input: string;
  settings: Record<string, unknown>;
}

/** Every fixture of `kind` with a JSON input, with its settings (fixture overrides applied, as the golden runner does). */
function cases(kind: 'send' | 'webhook'): Case[] {
  const out: Case[] = [];
  for (const d of readdirSync(join(dir, 'fixtures'), { withFileTypes: true })) {
    if (!d.isDirectory()) continue;
    const caseDir = join(dir, 'fixtures', d.name);
    const fixture = parseYaml(readFileSync(join(caseDir, 'fixture.yaml'), 'utf8')) as { kind: string; settings?: Record<string, unknown> };
    if (fixture.kind !== kind || !existsSync(join(caseDir, 'input.json'))) continue;
    const settings = checkSettings(mapping.settings, { ...baseSettings, ...fixture.settings }, `${d.name}/fixture.yaml settings`);
    out.push({ name: d.name, input: readFileSync(join(caseDir, 'input.json'), 'utf8'), settings });
  }
  return out;
}

t.test('send: baselineSend gives planSend’s plan, body bytes included', async (t) => {
  const all = cases('send');
  let compared = 0;
  let requests = 0;
  let refusedByNormalizer = 0;
  for (const c of all) {
    const canonical = toCanonical(c.input);
    if (!canonical.ok) {
      // The CleverTap normalizer answers before any mapping runs: there is nothing to compare.
      refusedByNormalizer++;
      t.comment(`${c.name}: refused by the normalizer (${canonical.reason}), no mapping involved`);
      continue;
    }
    const engine = await planSend(mapping, canonical.message, c.settings);
    const mine = baselineSend(canonical.message, c.settings as BaselineSettings);
    t.strictSame(mine, engine, `${c.name}: same ${engine.kind}`);
    if (engine.kind === 'request' && mine.kind === 'request') {
      t.equal(mine.request.body, engine.request.body, `${c.name}: body byte-identical`);
      requests++;
    }
    compared++;
  }
  t.ok(compared > 0, 'there are send fixtures to compare');
  t.ok(requests > 0 && requests < compared, 'both requests and refusals/answers are covered');
  t.equal(compared + refusedByNormalizer, all.length, `every send fixture with input.json is compared (${compared}) or refused by the normalizer (${refusedByNormalizer})`);
  t.comment(`send: ${compared} fixtures compared (${requests} requests, ${compared - requests} answers), ${refusedByNormalizer} refused before the mapping`);
});

t.test('webhook: baselineWebhookEvents gives mapWebhook’s events', async (t) => {
  const all = cases('webhook');
  let compared = 0;
  let events = 0;
  for (const c of all) {
    // Signature verification is not part of mapWebhook (the host runs verifySignature first).
    const req = { url: 'http://127.0.0.1/webhook', headers: { 'content-type': 'application/json' }, query: {}, rawBody: c.input };
    const engine = await mapWebhook(mapping, req, c.settings);
    const mine = baselineWebhookEvents(JSON.parse(c.input), c.settings);
    // mapWebhook hands out plain JSON (absent keys dropped); compare the same way, key order included.
    t.strictSame(JSON.parse(JSON.stringify(mine)), engine, `${c.name}: same events`);
    t.equal(JSON.stringify(mine), JSON.stringify(engine), `${c.name}: same JSON, key order included`);
    compared++;
    events += engine.length;
  }
  t.ok(compared > 0, 'there are webhook fixtures to compare');
  t.ok(events > 0, 'the fixtures produce events');
  t.equal(compared, all.length, `every webhook fixture with input.json is compared (${compared})`);
  t.comment(`webhook: ${compared} fixtures compared, ${events} events`);
});

/** The canonical message of a send fixture, to derive the cases no fixture reaches. */
function fixtureMessage(name: string): CanonicalMessage {
  const c = toCanonical(readFileSync(join(dir, 'fixtures', name, 'input.json'), 'utf8'));
  if (!c.ok) throw new Error(`${name} does not normalize`);
  return c.message;
}

t.test('send: refusals and corners the fixtures do not reach', async (t) => {
  const settings = checkSettings(mapping.settings, baseSettings);
  const variants: [string, string, (m: CanonicalMessage) => void][] = [
    ['carousel card with a document header', 'send-ct-sample-carousel', (m) => void (m.template!.carousel!.cards[1]!.header = { type: 'file', mediaURL: 'https://x.test/a.pdf', filename: 'a' })],
    ['carousel card without header, body or buttons', 'send-ct-sample-carousel', (m) => void (m.template!.carousel!.cards[0] = { index: 0, buttons: [] })],
    ['dynamic URL button without suffix', 'send-ct-sample-image-dynamic-url', (m) => void delete m.template!.buttons[0]!.urlSuffix],
    ['copy-code button without code', 'send-ct-sample-lto-copy-code', (m) => void delete m.template!.buttons[0]!.couponCode],
    ['audio header and a broken button: the header speaks first', 'send-template-header-audio-rejected', (m) => void m.template!.buttons.push({ index: 0, subType: 'dynamicUrl' })],
    ['quick reply with an empty payload', 'send-template-quick-reply-payload', (m) => void (m.template!.buttons[0]!.payload = '')],
    ['freeform message of an unsupported type', 'send-freeform-text', (m) => void (m.type = 'template')],
    ['location header with untidy whitespace', 'send-template-header-location', (m) => void Object.assign(m.template!.header!, { latitude: ' 40.78\t\n', longitude: '-73.9  ' })],
    ['freeform location with padded and non-numeric coordinates', 'send-freeform-location', (m) => void (m.location = { latitude: ' 037.50 ', longitude: 'east' })],
  ];
  for (const [what, name, change] of variants) {
    const message = structuredClone(fixtureMessage(name));
    change(message);
    const engine = await planSend(mapping, message, settings);
    t.strictSame(baselineSend(message, settings as BaselineSettings), engine, `${what}: same ${engine.kind === 'answer' && engine.answer.status === 'failure' ? `refusal (${engine.answer.error.code})` : engine.kind}`);
  }
});

t.test('webhook: corners the fixtures do not reach', async (t) => {
  const settings = checkSettings(mapping.settings, baseSettings);
  // Webhook bodies are edited by hand below: loosely typed on purpose.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const read = (name: string) => JSON.parse(readFileSync(join(dir, 'fixtures', name, 'input.json'), 'utf8')) as { entry: { changes: { field?: string; value: Record<string, any> }[] }[] };
  const variants: [string, string, (b: ReturnType<typeof read>) => void][] = [
    ['failed status without errors', 'webhook-status-failed-131026', (b) => void delete b.entry[0]!.changes[0]!.value.statuses[0].errors],
    ['failed status with an empty errors list', 'webhook-status-failed-131026', (b) => void (b.entry[0]!.changes[0]!.value.statuses[0].errors = [])],
    ['error with a message but no title', 'webhook-status-failed-131050', (b) => void delete b.entry[0]!.changes[0]!.value.statuses[0].errors[0].title],
    ['statuses as a lone object, change without field', 'webhook-status-sent', (b) => {
      const change = b.entry[0]!.changes[0]!;
      delete change.field;
      change.value.statuses = change.value.statuses[0];
    }],
    ['coordinates beyond 15 significant digits', 'webhook-inbound-location', (b) => void Object.assign(b.entry[0]!.changes[0]!.value.messages[0].location, { latitude: 0.1 + 0.2, longitude: -122.14898100000001 })],
    ['interactive reply of another kind', 'webhook-inbound-interactive-button-reply', (b) => void (b.entry[0]!.changes[0]!.value.messages[0].interactive.type = 'nfm_reply')],
  ];
  for (const [what, name, change] of variants) {
    const body = read(name);
    change(body);
    const rawBody = JSON.stringify(body);
    const engine = await mapWebhook(mapping, { url: 'http://127.0.0.1/webhook', headers: { 'content-type': 'application/json' }, query: {}, rawBody }, settings);
    t.equal(JSON.stringify(baselineWebhookEvents(JSON.parse(rawBody), settings)), JSON.stringify(engine), `${what}: same events`);
  }
});
