// The webhook flow without I/O: signatures, handshakes, and BSP bodies → events checked against
// schemas/events.schema.json.
import t from 'tap';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WabError } from '../../engine/mapping/errors.js';
import { loadMapping, type Mapping } from '../../engine/mapping/loader.js';
import { handshake, mapWebhook, parseWebhookBody, sign, verifySignature, type WebhookRequest } from '../../engine/mapping/webhook.js';
import { rejectedWith } from '../support/rejected.js';

const HEADER = '# yaml-language-server: $schema=../../schemas/mapping.schema.json\n';
const root = mkdtempSync(join(tmpdir(), 'wab-webhook-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let seq = 0;

function loaded(dir: string): Mapping {
  const r = loadMapping(dir);
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
  return r.mapping;
}

/** A mapping `m` with the given `webhook:` section (and settings). */
function withWebhook(webhook: string, settings = '  secret: { type: string }\n'): Mapping {
  const dir = join(root, String(seq++), 'm');
  mkdirSync(dir, { recursive: true });
  const send = 'send:\n  request:\n    method: GET\n    url: \'"https://x.test"\'\n  response:\n    success: "true"\n    error: "{}"\n';
  writeFileSync(join(dir, 'mapping.yaml'), `${HEADER}name: m\ntitle: T\nsettings:\n${settings}${send}webhook:\n${webhook}`);
  return loaded(dir);
}

const example = loaded(fileURLToPath(new URL('./example-bsp', import.meta.url)));
const settings = { apiKey: 'k-1234', baseUrl: 'https://api.example-bsp.test', sender: '15550001111', webhookSecret: 'hook-secret', verifyToken: 'verify-me' };

const req = (rawBody: string, headers: Record<string, string> = {}, query: Record<string, string | string[]> = {}): WebhookRequest => ({
  url: 'https://bridge.test/v1/tenants/t1/webhook',
  headers,
  query,
  rawBody,
});

const wabError = (p: Promise<unknown>) => rejectedWith(p, WabError);

t.test('verifySignature (hmac-sha256, hex, "sha256=" prefix)', async (t) => {
  const body = '{"statuses":[{"id":"ex-1","state":"read","ts":1700000000}]}';
  const good = `sha256=${createHmac('sha256', 'hook-secret').update(body, 'utf8').digest('hex')}`;
  const check = (headers: Record<string, string>, s: Record<string, unknown> = settings, raw = body) => verifySignature(example, req(raw, headers), s);

  t.same(await check({ 'X-Example-Signature': good }), { ok: true }, 'correct signature accepted');
  t.same(await check({ 'x-example-signature': good }), { ok: true }, 'header name is case-insensitive');
  t.same(await check({ 'X-Example-Signature': good.toUpperCase().replace('SHA256=', 'sha256=') }), { ok: true }, 'hex digits in upper case');

  const rejected = async (what: string, headers: Record<string, string>, s?: Record<string, unknown>, raw?: string) => {
    let r;
    try {
      r = await check(headers, s, raw);
    } catch (e) {
      t.fail(`${what}: threw ${(e as Error).message}`);
      return;
    }
    t.equal(r.ok, false, what);
    t.ok(!r.ok && r.reason.length > 0, `${what}: says why`);
  };
  await rejected('wrong signature', { 'X-Example-Signature': `sha256=${createHmac('sha256', 'other-secret').update(body).digest('hex')}` });
  await rejected('body changed after signing', { 'X-Example-Signature': good }, settings, `${body} `);
  await rejected('missing header', {});
  await rejected('empty header', { 'X-Example-Signature': '' });
  await rejected('prefix missing', { 'X-Example-Signature': good.slice('sha256='.length) });
  await rejected('wrong prefix', { 'X-Example-Signature': good.replace('sha256=', 'sha1=') });
  await rejected('shorter signature (different length)', { 'X-Example-Signature': good.slice(0, -2) });
  await rejected('longer signature (different length)', { 'X-Example-Signature': `${good}00` });
  await rejected('not hex at all', { 'X-Example-Signature': 'sha256=zzzz' });
  await rejected('empty secret', { 'X-Example-Signature': `sha256=${createHmac('sha256', '').update(body).digest('hex')}` }, { ...settings, webhookSecret: '' });
  await rejected('secret missing from settings', { 'X-Example-Signature': good }, { ...settings, webhookSecret: undefined });

  const missing = await check({});
  t.match(!missing.ok && missing.reason, /X-Example-Signature/, 'the reason names the header');
});

t.test('sign() round-trips through verifySignature', async (t) => {
  const body = '{"inbound":[]}';
  const header = sign(example, body, 'hook-secret');
  t.match(header, /^sha256=[0-9a-f]{64}$/);
  t.same(await verifySignature(example, req(body, { 'X-Example-Signature': header }), settings), { ok: true });
  t.equal((await verifySignature(example, req(body, { 'X-Example-Signature': sign(example, body, 'nope') }), settings)).ok, false, 'signed with another secret');

  const sha1 = withWebhook('  signature:\n    header: X-Acme-Signature\n    algorithm: hmac-sha1\n    encoding: base64\n    secret: secret\n    payload: url & $join($map($sort($keys(body)), function($k) { $k & $lookup(body, $k) }))\n  events: "[]"\n');
  const form = 'To=%2B15550001111&From=%2B919999999999&Body=hi';
  const formReq = (headers: Record<string, string>) => ({ ...req(form, { 'Content-Type': 'application/x-www-form-urlencoded', ...headers }) });
  const payload = `${formReq({}).url}BodyhiFrom+919999999999To+15550001111`;
  const sig = sign(sha1, payload, 's3cret');
  t.equal(sig, createHmac('sha1', 's3cret').update(payload).digest('base64'), 'hmac-sha1, base64, no prefix');
  t.same(await verifySignature(sha1, formReq({ 'X-Acme-Signature': sig }), { secret: 's3cret' }), { ok: true }, 'a signature over a payload expression (URL + sorted form fields)');
  t.equal((await verifySignature(sha1, formReq({ 'X-Acme-Signature': sign(sha1, form, 's3cret') }), { secret: 's3cret' })).ok, false, 'signing the raw body instead does not match');

  const none = withWebhook('  events: "[]"\n');
  t.same(await verifySignature(none, req('{}'), { secret: 'x' }), { ok: true }, 'no signature declared: accepted');
  t.throws(() => sign(none, 'x', 'y'), { code: 'WAB_MAPPING_SCHEMA' }, 'sign() needs a declared signature');
});

t.test('handshake', async (t) => {
  t.same(await handshake(example, { headers: {}, query: { mode: 'verify', token: 'verify-me', challenge: 'ch-42' } }, settings), { status: 200, body: 'ch-42' }, 'match + accept → 200 with the challenge');
  t.same(await handshake(example, { headers: {}, query: { mode: 'verify', token: 'wrong', challenge: 'ch-42' } }, settings), { status: 403, body: 'verification token mismatch' }, 'wrong token → 403');
  t.equal(await handshake(example, { headers: {}, query: { token: 'verify-me', challenge: 'ch-42' } }, settings), undefined, 'not a handshake → undefined');
  t.equal(await handshake(withWebhook('  events: "[]"\n'), { headers: {}, query: { mode: 'verify' } }, { secret: 'x' }), undefined, 'no handshake declared → undefined');

  const viaHeader = withWebhook('  handshake:\n    match: headers."x-verify" = "yes"\n    accept: "true"\n    respond: "undefined"\n  events: "[]"\n');
  t.same(await handshake(viaHeader, { headers: { 'X-Verify': 'yes' }, query: {} }, { secret: 'x' }), { status: 200, body: '' }, 'headers are lower-cased; an undefined answer is an empty body');
});

t.test('mapWebhook', async (t) => {
  // events: body.events, so each case hands the events in directly.
  const echo = withWebhook('  events: body.events\n');
  const events = (value: unknown) => mapWebhook(echo, req(JSON.stringify({ events: value }), { 'Content-Type': 'application/json' }), { secret: 'x' });
  const read = { event: 'status', providerMessageId: 'p-1', status: 'read', timestamp: '1700000000' };

  t.same(await events([read]), [read], 'an array of events');
  t.same(await events(read), [read], 'a single event is wrapped into an array');
  t.same(await events([]), [], 'an empty result is []');
  t.same(await mapWebhook(echo, req('{}', { 'Content-Type': 'application/json' }), { secret: 'x' }), [], 'an undefined result is []');
  t.same(await mapWebhook(echo, req(''), { secret: 'x' }), [], 'an empty body is []');

  const invalid: [string, unknown[], RegExp][] = [
    ['status "bogus"', [read, { ...read, status: 'bogus' }], /events\[1\]\.status/],
    ['failed without error', [{ ...read, status: 'failed' }], /events\[0\]/],
    ['error code 999', [{ ...read, status: 'failed', error: { code: 999, title: 'x' } }], /events\[0\]\.error\.code/],
    ['incoming without from', [read, read, { event: 'incoming', message: { timestamp: '1', type: 'text', text: { body: 'hi' } } }], /events\[2\]\.message/],
    ['status without any id', [{ event: 'status', status: 'read' }], /events\[0\]/],
    ['unknown event kind', [{ event: 'reaction', providerMessageId: 'p' }], /events\[0\]/],
  ];
  for (const [what, value, where] of invalid) {
    const e = await wabError(events(value));
    t.equal(e.code, 'WAB_MAPPING_OUTPUT', what);
    t.match(e.message, where, `${what}: names the event`);
  }

  t.test('events come out as plain JSON data, whatever the expression built them from', async (t) => {
    // most events are handed on as the mapping built them; anything JSON would change goes through JSON
    const odd = withWebhook(
      '  events: |\n    body.items.{"event": "status", "providerMessageId": id, "status": "read", "providerError": {"zero": -0, "seq": $$.body.list.n, "one": $$.body.one.n, "deep": {"seq": $$.body.list.n}}}\n',
    );
    const body = JSON.stringify({ items: [{ id: 'p-1' }, { id: 'p-2' }], list: [{ n: 1 }, { n: 2 }], one: [{ n: 3 }] });
    const out = await mapWebhook(odd, req(body, { 'Content-Type': 'application/json' }), { secret: 'x' });
    t.strictSame(JSON.parse(JSON.stringify(out)), out, 'the same as its JSON round trip');
    t.same(Object.keys(out), ['0', '1'], 'a sequence of events becomes a plain array');
    const pe = out[0]!.event === 'status' ? (out[0]!.providerError as { zero: number; seq: number[]; one: number; deep: { seq: number[] } }) : undefined;
    t.ok(Object.is(pe?.zero, 0), '-0 becomes 0');
    t.same(Object.keys(pe?.seq ?? {}), ['0', '1'], 'a nested sequence carries no flags');
    t.same(Object.keys(pe?.deep.seq ?? {}), ['0', '1'], 'nor one deeper down');
    t.equal(pe?.one, 3);
    const plain = withWebhook('  events: |\n    body.items.{"event": "status", "providerMessageId": id, "status": "read"}\n');
    t.same(await mapWebhook(plain, req(body, { 'Content-Type': 'application/json' }), { secret: 'x' }), [
      { event: 'status', providerMessageId: 'p-1', status: 'read' },
      { event: 'status', providerMessageId: 'p-2', status: 'read' },
    ]);
  });

  t.test('the example mapping', async (t) => {
    const body = JSON.stringify({ statuses: [{ id: 'ex-2', state: 'failed', ts: 1700000001, reason: 'nope' }], inbound: [] });
    t.same(await mapWebhook(example, req(body, { 'content-type': 'application/json' }), settings), [
      { event: 'status', providerMessageId: 'ex-2', status: 'failed', timestamp: '1700000001', error: { code: 1009, title: 'nope' } },
    ]);
  });
});

t.test('request bodies', async (t) => {
  const form = withWebhook('  events: |\n    body.MessageSid ? {"event": "status", "providerMessageId": body.MessageSid, "status": body.MessageStatus, "recipient": $join(body.To, ",")}\n');
  const raw = 'MessageSid=SM1&MessageStatus=delivered&To=%2B1555&To=%2B1666';
  t.same(await mapWebhook(form, req(raw, { 'Content-Type': 'application/x-www-form-urlencoded; charset=UTF-8' }), { secret: 'x' }), [
    { event: 'status', providerMessageId: 'SM1', status: 'delivered', recipient: '+1555,+1666' },
  ], 'a form-encoded body reaches the mapping as an object; repeated keys as arrays');
  t.same(parseWebhookBody('a=1&b=x+y&a=2&a=3&c=', 'application/x-www-form-urlencoded'), { a: ['1', '2', '3'], b: 'x y', c: '' });
  t.same(parseWebhookBody('{"a": [1]}', 'application/json'), { a: [1] });
  t.same(parseWebhookBody('{"a": 1}', undefined), { a: 1 }, 'JSON when no Content-Type is given');

  t.throws(() => parseWebhookBody('{"a": ', 'application/json'), { code: 'WAB_INPUT_INVALID' }, 'invalid JSON');
  const e = await wabError(mapWebhook(form, req('not json', { 'Content-Type': 'application/json' }), { secret: 'x' }));
  t.equal(e.code, 'WAB_INPUT_INVALID', 'mapWebhook on an invalid JSON body');
});
