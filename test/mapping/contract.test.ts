// contracts.enforce: every send body held to contracts.requestBody before the BSP call, in the mapping
// layer (so the host, `wabridge map` and the goldens agree); the loader's cross-checks for it.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CanonicalMessage } from '../../engine/clevertap/model.js';
import { contractViolation } from '../../engine/mapping/contract.js';
import { loadMapping, type LoadResult, type Mapping } from '../../engine/mapping/loader.js';
import { toCanonical } from '../../engine/mapping/pipeline.js';
import { compileFresh } from '../../engine/mapping/schema-validator.js';
import { planSend } from '../../engine/mapping/send.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'wab-contract-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let seq = 0;

const settings = { apiKey: 'k', baseUrl: 'https://api.example-bsp.test', sender: '15550001111', webhookSecret: 'ws', verifyToken: 'vt' };
const loaded = (r: LoadResult): Mapping => {
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
  return r.mapping;
};
const example = loaded(loadMapping(join(HERE, 'example-bsp')));
const guarded = loaded(loadMapping(join(HERE, 'guarded-bsp')));

function canonical(payload: unknown): CanonicalMessage {
  const c = toCanonical(JSON.stringify(payload));
  if (!c.ok) throw new Error(JSON.stringify(c.answer));
  return c.message;
}
const textMessage = (body: string) => canonical({ payloadVersion: 0.1, to: '919999999999', msgId: '1|2|3|4', type: 'text', isTemplate: false, text: { body } });

/** A mapping `m` in a fresh folder: its mapping.yaml and the files beside it. */
function folder(yaml: string, files: Record<string, string> = {}): string {
  const dir = join(root, String(seq++), 'm');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'mapping.yaml'), `# yaml-language-server: $schema=../../schemas/mapping.schema.json\nname: m\ntitle: T\n${yaml}`);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}
const SEND = `send:
  request:
    method: POST
    url: '"https://x.test"'
    body: '{"text": message.text.body, "to": message.to}'
  response:
    success: "true"
    error: '{"code": 2004}'
`;
const SHORT_TEXT = JSON.stringify({ type: 'object', properties: { text: { type: 'string', maxLength: 5 } } });

t.test('a body within the contract is sent exactly as without enforce', async (t) => {
  const m = textMessage('Your order is ready.');
  t.ok(guarded.send.guard, 'guarded-bsp compiled its contract');
  t.equal(example.send.guard, undefined, 'no guard without enforce');
  t.same(await planSend(guarded, m, settings), await planSend(example, m, settings));
});

t.test('a body that breaks it is answered 2001 with the path, schema path and keyword, and no request', async (t) => {
  const plan = await planSend(guarded, textMessage('x'.repeat(161)), settings);
  t.same(plan, {
    kind: 'answer',
    answer: {
      status: 'failure',
      error: { code: 2001, message: 'send.request.body breaks contracts.requestBody (request.schema.json): /text must NOT have more than 160 characters (schema #/properties/text/maxLength, keyword maxLength)' },
    },
  });
  t.equal((await planSend(guarded, textMessage('x'.repeat(160)), settings)).kind, 'request', 'the bound itself passes');
  t.equal((await planSend(example, textMessage('x'.repeat(161)), settings)).kind, 'request', 'the same body without enforce is sent');
});

t.test('send.reject still answers first; the validation payload never reaches the guard', async (t) => {
  const audio = canonical({ payloadVersion: 0.1, to: '919999999999', msgId: '1|2|3|4', type: 'audio', isTemplate: false, audio: { mediaURL: 'https://a.test/a.mp3' } });
  t.match(await planSend(guarded, audio, settings), { kind: 'answer', answer: { error: { code: 2001, message: 'audio is not supported by example-bsp' } } });
  const validation = canonical({ payloadVersion: 0.1, to: '919999999999', msgId: '0|0|0|0', isTemplate: true, template: { namespace: 'whatsapp:hsm:technology:generic:verify', languageCode: 'en' } });
  t.same(await planSend(guarded, validation, settings), { kind: 'answer', answer: { status: 'success' } });
});

t.test('contractViolation', async (t) => {
  const guard = { schema: 's.json', validate: compileFresh(join(HERE, 'guarded-bsp', 'request.schema.json')) };
  const body = { from: '15550001111', to: '+919999999999', ref: 'r', text: 'hi', media: undefined };
  // additionalProperties: false sees the undefined key; JSON drops it, so the wire body is checked.
  t.equal(contractViolation(guard, body, JSON.stringify(body)), undefined, 'a key JSON drops does not refuse');
  t.equal(contractViolation(guard, undefined, undefined), 'send.request.body is empty; contracts.requestBody (s.json) expects one');
  t.match(contractViolation(guard, { from: '1' }, '{"from":"1"}'), /^send\.request\.body breaks contracts\.requestBody \(s\.json\): \/ must have required property 'to' \(schema #\/required, keyword required\)$/);
});

t.test('the guard follows an edited schema (hot reload compiles it afresh)', async (t) => {
  const dir = folder(`contracts:\n  requestBody: body.schema.json\n  enforce: true\n${SEND}`, { 'body.schema.json': SHORT_TEXT });
  const m = textMessage('abcdefgh');
  t.match(await planSend(loaded(loadMapping(dir)), m, {}), { kind: 'answer', answer: { error: { code: 2001, message: /\/text must NOT have more than 5 characters/ } } });
  writeFileSync(join(dir, 'body.schema.json'), JSON.stringify({ type: 'object', properties: { text: { type: 'string', maxLength: 50 } } }));
  t.equal((await planSend(loaded(loadMapping(dir)), m, {})).kind, 'request', 'the edited schema applies');
});

t.test('loader cross-checks', async (t) => {
  const errorsOf = (r: LoadResult) => (r.ok ? [] : r.errors.map((e) => `${e.code} ${e.message.slice((e.where ?? '').length + 2)} @${/:(\d+:\d+)$/.exec(e.where ?? '')?.[1]}`));
  t.same(errorsOf(loadMapping(folder(`contracts:\n  enforce: true\n${SEND}`))), ['WAB_MAPPING_SCHEMA contracts.enforce: needs contracts.requestBody, the schema send bodies are held to @5:12']);
  const form = SEND.replace('method: POST\n', 'method: POST\n    encoding: form\n');
  t.same(errorsOf(loadMapping(folder(`contracts:\n  requestBody: b.json\n  enforce: true\n${form}`, { 'b.json': SHORT_TEXT }))), ['WAB_MAPPING_SCHEMA contracts.enforce: checks JSON bodies; send.request.encoding is form @6:12']);
  t.match(errorsOf(loadMapping(folder(`contracts:\n  requestBody: b.json\n  enforce: true\n${SEND}`, { 'b.json': '{"type": "nonsense"}' }))), [/^WAB_MAPPING_SCHEMA contracts\.requestBody: b\.json does not compile: .* @5:16$/]);
  t.match(errorsOf(loadMapping(folder(`contracts:\n  enforce: "yes"\n${SEND}`))), [/contracts\.enforce: must be boolean/]);
  const off = loaded(loadMapping(folder(`contracts:\n  requestBody: b.json\n  enforce: false\n${SEND}`, { 'b.json': '{"type": "nonsense"}' })));
  t.equal(off.send.guard, undefined, 'enforce: false compiles nothing at run time (the goldens still use the contract)');
  t.equal(guarded.contracts.enforce, true, 'inherited send, own contract');
});
