// The send flow without I/O: CleverTap message → BSP request, BSP response / transport failure →
// CleverTap answer, and the answer for payloads that cannot be understood.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CanonicalMessage } from '../../engine/clevertap/model.js';
import { WabError } from '../../engine/mapping/errors.js';
import { loadMapping, type Mapping } from '../../engine/mapping/loader.js';
import { answerForIssues, prepareSend, toCanonical } from '../../engine/mapping/pipeline.js';
import { formDecode, formEncode, mapResponse, mapTransportError, planSend, type HttpRequest, type SendPlan } from '../../engine/mapping/send.js';
import { rejectedWith } from '../support/rejected.js';

const HEADER = '# yaml-language-server: $schema=../../schemas/mapping.schema.json\n';
const root = mkdtempSync(join(tmpdir(), 'wab-send-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let seq = 0;

function loaded(dir: string): Mapping {
  const r = loadMapping(dir);
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
  return r.mapping;
}

/** A mapping `m` whose `send:` section is given. */
function withSend(send: string): Mapping {
  const dir = join(root, String(seq++), 'm');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'mapping.yaml'), `${HEADER}name: m\ntitle: T\nsettings:\n  key: { type: string }\nsend:\n${send}`);
  return loaded(dir);
}

const example = loaded(fileURLToPath(new URL('./example-bsp', import.meta.url)));
const exampleSettings = { apiKey: 'k-1234', baseUrl: 'https://api.example-bsp.test', sender: '15550001111', webhookSecret: 'ws', verifyToken: 'vt' };

function canonical(payload: unknown): CanonicalMessage {
  const c = toCanonical(JSON.stringify(payload));
  if (!c.ok) throw new Error(`payload does not normalize: ${JSON.stringify(c.answer)}`);
  return c.message;
}

const text = canonical({ payloadVersion: 0.1, to: '919999999999', msgId: '1|2|3|4', type: 'text', isTemplate: false, text: { body: 'hi' } });

function request(plan: SendPlan): HttpRequest {
  if (plan.kind !== 'request') throw new Error(`expected a request, got ${JSON.stringify(plan)}`);
  return plan.request;
}

const wabError = (p: Promise<unknown>) => rejectedWith(p, WabError);

t.test('the validation payload is answered with success, without building a request', async (t) => {
  const validation = canonical({
    payloadVersion: 0.1,
    to: '+919999999999',
    msgId: '0|0|0|0',
    isTemplate: true,
    template: { namespace: 'whatsapp:hsm:technology:generic:verify', languageCode: 'en' },
  });
  t.equal(validation.isValidation, true, 'recognized as the validation payload');
  // Settings the mapping would need to build a request are missing: a request would fail.
  t.same(await planSend(example, validation, {}), { kind: 'answer', answer: { status: 'success' } });

  const unreachable = withSend(`  reject: '$reject(2001, "would refuse")'\n  request:\n    method: POST\n    url: '"ftp://never"'\n  response:\n    success: "false"\n    error: "{}"\n`);
  t.same(await planSend(unreachable, validation, {}), { kind: 'answer', answer: { status: 'success' } }, 'not even reject runs');

  const other = canonical({ payloadVersion: 0.1, to: '919999999999', msgId: '1|2|3|4', isTemplate: true, template: { namespace: 'order_ready', languageCode: 'en' } });
  t.equal(other.isValidation, false, 'an ordinary template is not the validation payload');
  t.equal((await planSend(example, other, exampleSettings)).kind, 'request');
});

t.test('the example mapping builds its request', async (t) => {
  const r = request(await planSend(example, text, exampleSettings));
  t.equal(r.method, 'POST');
  t.equal(r.url, 'https://api.example-bsp.test/v1/messages');
  t.same(r.headers, { Authorization: 'Key k-1234', 'X-Trace': '1|2|3|4', 'Content-Type': 'application/json' });
  t.same(JSON.parse(r.body ?? 'null'), { from: '15550001111', to: '+919999999999', ref: '1|2|3|4', text: 'hi' });

  const audio = canonical({ payloadVersion: 0.1, to: '919999999999', msgId: '1|2|3|4', type: 'audio', isTemplate: false, audio: { mediaURL: 'https://x.test/a.mp3' } });
  t.same(await planSend(example, audio, exampleSettings), { kind: 'answer', answer: { status: 'failure', error: { code: 2001, message: 'audio is not supported by example-bsp' } } }, 'send.reject refuses with its code');
});

t.test('headers and query parameters', async (t) => {
  const m = withSend(`  request:
    method: GET
    url: '"https://x.test/send?fixed=1"'
    query:
      a: '"x y"'
      gone: undefined
      n: "42"
    headers:
      X-Undefined: undefined
      X-Null: "null"
      X-Missing-Field: message.nosuchfield
      X-Keep: '"kept"'
      X-Number: "7"
      X-Bool: "true"
  response:
    success: "true"
    error: "{}"
`);
  const r = request(await planSend(m, text, { key: 'k' }));
  t.same(r.headers, { 'X-Keep': 'kept', 'X-Number': '7', 'X-Bool': 'true' }, 'undefined and null drop the header; numbers and booleans become text');
  t.equal(r.url, 'https://x.test/send?fixed=1&a=x+y&n=42', 'query appended, URL-encoded, undefined dropped');
  t.equal(r.body, undefined, 'no body, no Content-Type');

  const objectHeader = withSend(`  request:\n    method: GET\n    url: '"https://x.test"'\n    headers:\n      X-Obj: '{"a": 1}'\n  response:\n    success: "true"\n    error: "{}"\n`);
  const e = await wabError(planSend(objectHeader, text, { key: 'k' }));
  t.equal(e.code, 'WAB_MAPPING_OUTPUT', 'an object is not a header value');
  t.match(e.message, /send\.request\.headers\.X-Obj/);
});

t.test('form encoding', async (t) => {
  const m = withSend(`  request:
    method: POST
    url: '"https://x.test/form"'
    encoding: form
    body: |
      {
        "list": [1, "two", {"k": true}],
        "obj": {"a": [1, 2]},
        "nul": null,
        "mixed": [null, "q"],
        "s": "x y&z=é",
        "f": false,
        "n": 3.5
      }
  response:
    success: "true"
    error: "{}"
`);
  const r = request(await planSend(m, text, { key: 'k' }));
  t.equal(r.headers['Content-Type'], 'application/x-www-form-urlencoded');
  const params = [...new URLSearchParams(r.body)];
  t.same(params, [
    ['list', '1'],
    ['list', 'two'],
    ['list', '{"k":true}'],
    ['obj', '{"a":[1,2]}'],
    ['mixed', 'q'],
    ['s', 'x y&z=é'],
    ['f', 'false'],
    ['n', '3.5'],
  ], 'arrays repeat the key, objects are JSON text, nulls are left out');

  const typed = withSend(`  request:\n    method: POST\n    url: '"https://x.test/form"'\n    encoding: form\n    headers:\n      content-type: '"application/x-www-form-urlencoded; charset=utf-8"'\n    body: '{"a": 1}'\n  response:\n    success: "true"\n    error: "{}"\n`);
  const r2 = request(await planSend(typed, text, { key: 'k' }));
  t.same(r2.headers, { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' }, "the mapping's own Content-Type (any case) is kept, not doubled");

  const arrayBody = withSend(`  request:\n    method: POST\n    url: '"https://x.test/form"'\n    encoding: form\n    body: '[1, 2]'\n  response:\n    success: "true"\n    error: "{}"\n`);
  t.equal((await wabError(planSend(arrayBody, text, { key: 'k' }))).code, 'WAB_MAPPING_OUTPUT', 'a form body must be an object');

  t.equal(formEncode({ a: [1, null, 'x'], u: undefined }, 'b'), 'a=1&a=x');
  t.same(formDecode('a=1&a=2&a=3&b=x+y&c='), { a: ['1', '2', '3'], b: 'x y', c: '' }, 'formDecode: repeated keys become arrays');
});

t.test('the URL must be absolute http(s)', async (t) => {
  for (const [url, what] of [
    ['"ftp://x.test/file"', 'ftp'],
    ['"javascript:alert(1)"', 'javascript:'],
    ['"/v1/messages"', 'a relative URL'],
    ['undefined', 'no URL at all'],
  ] as const) {
    const m = withSend(`  request:\n    method: GET\n    url: '${url}'\n  response:\n    success: "true"\n    error: "{}"\n`);
    const e = await wabError(planSend(m, text, { key: 'k' }));
    t.equal(e.code, 'WAB_MAPPING_OUTPUT', what);
    t.match(e.message, /send\.request\.url/, `${what}: names the slot`);
  }
  const ok = withSend(`  request:\n    method: GET\n    url: '"http://x.test"'\n  response:\n    success: "true"\n    error: "{}"\n`);
  t.equal(request(await planSend(ok, text, { key: 'k' })).url, 'http://x.test/', 'plain http is allowed');
});

t.test("one declaration, URLs that change from message to message: each is checked and normalized as its own", async (t) => {
  const m = withSend(`  request:\n    method: GET\n    url: settings.key\n  response:\n    success: "true"\n    error: "{}"\n`);
  const urlFor = async (key: string) => request(await planSend(m, text, { key })).url;
  // (what the last message's URL was must not leak into the next: the check remembers the last one)
  for (let round = 0; round < 2; round++) {
    t.equal(await urlFor('https://A.test/x y'), 'https://a.test/x%20y');
    t.equal(await urlFor('https://A.test/x y'), 'https://a.test/x%20y', 'the same URL again');
    t.equal(await urlFor('https://b.test/'), 'https://b.test/');
    const e = await wabError(planSend(m, text, { key: 'ftp://b.test/' }));
    t.match(e.message, /send\.request\.url: must be http or https/, 'a bad URL after a good one is still refused');
    t.equal(await urlFor('https://b.test/'), 'https://b.test/', 'and the good one after it still passes');
  }
});

t.test('response mapping', async (t) => {
  const m = withSend(`  request:
    method: POST
    url: '"https://x.test"'
  response:
    success: status = 200 and $type(body) = "object"
    providerMessageId: body.id
    error: |
      {
        "code": status = 500 ? 1999 : status = 501 ? undefined : status = 502 ? "2003" : status = 503 ? "x" : 2002,
        "message": $type(body) = "string" ? "text: " & body : "json: " & $string(body)
      }
`);
  const respond = (status: number, body: string, type = 'application/json') => mapResponse(m, text, {}, { status, headers: { 'Content-Type': type }, text: body });

  t.same(await respond(200, '{"id": "bsp-1"}'), { answer: { status: 'success' }, providerMessageId: 'bsp-1' });
  t.same(await respond(200, '{}'), { answer: { status: 'success' } }, 'no id, no providerMessageId');
  t.same(await respond(400, '<html><body>Bad Gateway</body></html>', 'text/html'), { answer: { status: 'failure', error: { code: 2002, message: 'text: <html><body>Bad Gateway</body></html>' } } }, 'a non-JSON body reaches the mapping as text');
  t.same(await respond(400, '{"broken": ', 'application/json'), { answer: { status: 'failure', error: { code: 2002, message: 'text: {"broken": ' } } }, 'JSON that does not parse is text too');
  t.same(await respond(400, '{"e": 1}', 'text/plain'), { answer: { status: 'failure', error: { code: 2002, message: 'json: {"e":1}' } } }, 'JSON is parsed whatever the Content-Type says');
  t.same(await respond(502, 'down', 'text/plain'), { answer: { status: 'failure', error: { code: 2003, message: 'text: down' } } }, 'a numeric string code is accepted');

  for (const [status, what] of [
    [500, 'code 1999'],
    [501, 'a missing code'],
    [503, 'a non-numeric code'],
  ] as const) {
    const e = await wabError(respond(status, 'x', 'text/plain'));
    t.equal(e.code, 'WAB_MAPPING_OUTPUT', what);
    t.match(e.message, /send\.response\.error/, `${what}: names the slot`);
  }

  const headersSeen = withSend(`  request:\n    method: POST\n    url: '"https://x.test"'\n  response:\n    success: "true"\n    providerMessageId: headers."x-message-id"\n    error: "{}"\n`);
  t.same(await mapResponse(headersSeen, text, {}, { status: 200, headers: { 'X-Message-ID': 'h-1' }, text: '' }), { answer: { status: 'success' }, providerMessageId: 'h-1' }, 'response headers arrive lower-cased');
});

t.test('transport errors', async (t) => {
  const timeout = await mapTransportError(example, text, exampleSettings, { kind: 'timeout', message: 'no answer within 900 ms' });
  const connect = await mapTransportError(example, text, exampleSettings, { kind: 'connect', message: 'ECONNREFUSED 10.0.0.1:443' });
  t.equal(timeout.status === 'failure' && timeout.error.code, 2004, 'default code 2004');
  t.equal(connect.status === 'failure' && connect.error.code, 2004);
  t.match(timeout.status === 'failure' && timeout.error.message, /in time.*no answer within 900 ms/, 'a timeout says so and keeps the detail');
  t.match(connect.status === 'failure' && connect.error.message, /connected.*ECONNREFUSED/, 'a connection failure says so and keeps the detail');

  const m = withSend(`  request:\n    method: POST\n    url: '"https://x.test"'\n  response:\n    success: "true"\n    error: "{}"\n  transportError: |\n    error.kind = "connect" ? {"code": 2003, "message": "down: " & error.message} : error.kind = "network" ? {"code": 42}\n`);
  t.same(await mapTransportError(m, text, {}, { kind: 'connect', message: 'refused' }), { status: 'failure', error: { code: 2003, message: 'down: refused' } }, 'the mapping decides');
  const fallback = await mapTransportError(m, text, {}, { kind: 'timeout', message: 'slow' });
  t.equal(fallback.status === 'failure' && fallback.error.code, 2004, 'undefined from the mapping falls back to 2004');
  t.equal((await wabError(mapTransportError(m, text, {}, { kind: 'network', message: 'reset' }))).code, 'WAB_MAPPING_OUTPUT', 'a bad code from the mapping is a mapping error');
});

t.test('answers for payloads that cannot be understood', async (t) => {
  const issues = [
    { path: 'to', message: 'to is missing', code: 2002 as const },
    { path: 'msgId', message: 'must look like i|campaign|batch|j', code: 2004 as const },
    { path: 'text.body', message: 'must be a string', code: 2001 as const },
  ];
  const answer = answerForIssues(issues);
  t.equal(answer.status === 'failure' && answer.error.code, 2002, "the first issue's code");
  const listed = answer.status === 'failure' ? answer.error.message : '';
  for (const i of issues) {
    t.ok(listed.includes(i.path), `names ${i.path}`);
    t.ok(listed.includes(i.message), `says "${i.message}"`);
  }
  t.ok(listed.indexOf('to is missing') < listed.indexOf('must look like') && listed.indexOf('must look like') < listed.indexOf('must be a string'), 'in order');
  t.same(answerForIssues([]), { status: 'failure', error: { code: 2004, message: 'invalid payload' } }, 'no issues: 2004');

  const invalid = toCanonical(JSON.stringify({ payloadVersion: 0.1, isTemplate: false, type: 'text' }));
  t.equal(invalid.ok, false);
  if (!invalid.ok && invalid.reason === 'invalid') {
    t.ok(invalid.issues.length >= 2, 'several issues found');
    t.same(invalid.answer, answerForIssues(invalid.issues), 'toCanonical answers with answerForIssues');
    const message = invalid.answer.status === 'failure' ? invalid.answer.error.message : '';
    for (const issue of invalid.issues) t.ok(message.includes(issue.path) && message.includes(issue.message), `lists ${issue.path}`);
  } else t.fail('expected reason "invalid"');

  const notJson = await prepareSend(example, '{"to": ', exampleSettings);
  t.equal(notJson.kind === 'answer' && notJson.answer.status === 'failure' && notJson.answer.error.code, 2004, 'bytes that are not JSON: 2004');
  const plan = await prepareSend(example, JSON.stringify({ payloadVersion: 0.1, to: '919999999999', msgId: '1|2|3|4', type: 'text', isTemplate: false, text: { body: 'hi' } }), exampleSettings);
  t.equal(plan.kind, 'request', 'a good payload goes all the way to a request');
});
