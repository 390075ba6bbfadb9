import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Ajv2020Mod from 'ajv/dist/2020.js';
import addFormatsMod from 'ajv-formats';
import type { ValidateFunction } from 'ajv';
import { normalize } from '../../engine/clevertap/normalize.js';

type Obj = Record<string, unknown>;

// CJS interop: tsc (nodenext) types these default imports as module.exports; both packages also set
// module.exports.default to the same value, so `.default` is right under tsc, tsx and plain node.
const Ajv2020 = Ajv2020Mod.default;
const addFormats = addFormatsMod.default;

const ROOT = new URL('../../', import.meta.url);
const SCHEMAS = fileURLToPath(new URL('schemas/clevertap/', ROOT));
const EXAMPLES = fileURLToPath(new URL('examples/clevertap/', ROOT));
const ID = 'https://wabridge.dev/schemas/clevertap/';
const readJson = (path: string): Obj => JSON.parse(readFileSync(path, 'utf8')) as Obj;
const schemaFiles = readdirSync(SCHEMAS).filter((f) => f.endsWith('.schema.json'));

// strictRequired is off: it forbids `required` inside anyOf/if-then branches, which is how the
// msgId|msg_id alternatives and "the object named by type" rules are expressed.
const ajv = new Ajv2020({ strict: true, strictRequired: false, allErrors: true });
addFormats(ajv);
for (const f of schemaFiles) ajv.addSchema(readJson(SCHEMAS + f));
const validator = (name: string): ValidateFunction => {
  const v = ajv.getSchema(`${ID}${name}.schema.json`);
  if (v === undefined) throw new Error(`no schema ${name}`);
  return v;
};
const check = (name: string, data: unknown): { valid: boolean; errors: unknown } => {
  const v = validator(name);
  const valid = v(data);
  return { valid, errors: v.errors };
};

t.test('every schema compiles in strict mode with a matching $id', async (t) => {
  t.same(schemaFiles.sort(), [
    'answer.schema.json',
    'canonical-message.schema.json',
    'freeform-message.schema.json',
    'incoming-callback.schema.json',
    'status-callback.schema.json',
    'template-message.schema.json',
    'validation-message.schema.json',
  ]);
  for (const f of schemaFiles) {
    const schema = readJson(SCHEMAS + f);
    t.equal(schema.$id, ID + f, `${f} $id`);
    t.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema', `${f} draft`);
    t.doesNotThrow(() => validator(f.replace('.schema.json', '')), `${f} compiles`);
  }
});

const wireSchemaOf = (f: string): string =>
  f === 'validation.json' ? 'validation-message' : f.startsWith('template-') ? 'template-message' : 'freeform-message';
const examples = readdirSync(EXAMPLES).filter((f) => f.endsWith('.json'));

t.test('every example validates against its wire schema', async (t) => {
  for (const f of examples) {
    const r = check(wireSchemaOf(f), readJson(EXAMPLES + f));
    t.ok(r.valid, `${f} is a valid ${wireSchemaOf(f)}`, { errors: r.errors });
  }
  t.ok(check('template-message', readJson(EXAMPLES + 'validation.json')).valid, 'validation is also a template message');
  t.notOk(check('validation-message', readJson(EXAMPLES + 'template-body-footer.json')).valid, 'an ordinary template is not a validation message');
  t.notOk(check('freeform-message', readJson(EXAMPLES + 'template-body-footer.json')).valid, 'template is not freeform');
  t.notOk(check('template-message', readJson(EXAMPLES + 'freeform-text.json')).valid, 'freeform is not template');
});

t.test('wire schemas reject what CleverTap never sends', async (t) => {
  const base = readJson(EXAMPLES + 'template-lto-copy-code.json');
  t.notOk(check('template-message', { ...base, msgId: undefined }).valid, 'no msgId');
  t.notOk(check('template-message', { ...base, components: [{ type: 'button', index: 0, subType: 'flow' }] }).valid, 'unknown subType');
  t.notOk(check('template-message', { ...base, components: [{ type: 'header', header: { type: 'image', video: { mediaURL: 'x' } } }] }).valid, 'header object mismatch');
  const ff = readJson(EXAMPLES + 'freeform-image.json');
  t.notOk(check('freeform-message', { ...ff, image: undefined }).valid, 'type without its object');
  t.notOk(check('freeform-message', { ...ff, type: 'sticker' }).valid, 'unsupported type');
});

t.test('every normalized example validates against canonical-message', async (t) => {
  for (const f of examples) {
    const r = normalize(readJson(EXAMPLES + f));
    if (!r.ok) {
      t.equal(f, 'template-image-dynamic-url-bad-scheme.json', `${f} is the only example that does not normalize`);
      continue;
    }
    const c = check('canonical-message', r.message);
    t.ok(c.valid, `${f} canonical`, { errors: c.errors });
  }
});

t.test('canonical-message rejects shapes the model forbids', async (t) => {
  const r = normalize(readJson(EXAMPLES + 'template-lto-copy-code.json'));
  if (!r.ok) throw new Error('example must normalize');
  const m = r.message as unknown as Obj & { template: Obj & { buttons: Obj[] } };
  const withButton = (b: Obj): Obj => ({ ...m, template: { ...m.template, buttons: [b] } });
  t.ok(check('canonical-message', withButton({ index: 0, subType: 'copyCode', couponCode: 'X' })).valid);
  t.notOk(check('canonical-message', withButton({ index: 0, subType: 'copyCode', urlSuffix: 'X' })).valid, 'field of another subType');
  t.notOk(check('canonical-message', withButton({ index: 0, subType: 'copy_code' })).valid, 'wire spelling');
  t.notOk(check('canonical-message', { ...m, to: '+919999999244' }).valid, '"+" in to');
  t.notOk(check('canonical-message', { ...m, payloadVersion: 0.1 }).valid, 'numeric payloadVersion');
  t.notOk(check('canonical-message', { ...m, template: undefined }).valid, 'template type without template');
  t.notOk(check('canonical-message', { ...m, msg_id: m.msgId }).valid, 'unknown top-level key (must be in extra)');
  t.notOk(check('canonical-message', { ...m, type: 'image', isTemplate: false }).valid, 'image without image');
  const header = { type: 'image', mediaURL: 'www.example.com/a.png' };
  t.notOk(check('canonical-message', { ...m, template: { ...m.template, header } }).valid, 'scheme-less URL');
});

t.test('answer schema', async (t) => {
  t.ok(check('answer', { status: 'success' }).valid);
  t.ok(check('answer', { status: 'failure', error: { code: 2000, message: 'Invalid Credentials' } }).valid);
  t.ok(check('answer', { status: 'failure', error: { code: 2004, message: 'Other' } }).valid);
  t.ok(check('answer', { message: 'Too many requests to process' }).valid, '429 body');
  t.notOk(check('answer', { status: 'failure', error: { code: 1004, message: 'x' } }).valid, 'callback code in an answer');
  t.notOk(check('answer', { status: 'failure', error: { code: 2005, message: 'x' } }).valid);
  t.notOk(check('answer', { status: 'failure', error: { message: 'Unable to process the request' } }).valid, 'doc sample without code: wabridge always sends one');
  t.notOk(check('answer', { status: 'failure' }).valid);
  t.notOk(check('answer', { status: 'success | failure' }).valid);
  t.notOk(check('answer', { message: 'Bad Request' }).valid, 'wabridge answers bad requests with failure 2001/2004');
});

const callback = (name: string): Obj => readJson(`${EXAMPLES}callbacks/${name}`);
const canonicalCallbacks = readdirSync(`${EXAMPLES}callbacks/canonical`).filter((f) => f.endsWith('.json'));
const callbackSchemaOf = (f: string): string => (f.startsWith('status-') ? 'status-callback' : 'incoming-callback');

t.test('canonical callbacks validate against the emitted-form schemas', async (t) => {
  t.ok(canonicalCallbacks.length >= 10);
  for (const f of canonicalCallbacks) {
    const r = check(callbackSchemaOf(f), callback(`canonical/${f}`));
    t.ok(r.valid, f, { errors: r.errors });
  }
});

t.test('documented callback samples: quirks are rejected, their canonical fixes accepted', async (t) => {
  const rename = (o: Obj, from: string, to: string): Obj => {
    const { [from]: v, ...rest } = o;
    return { ...rest, [to]: v };
  };
  // As documented.
  t.ok(check('status-callback', callback('status-delivered.json')).valid, 'delivered sample is already canonical');
  t.ok(check('status-callback', callback('status-clicked-format.json')).valid, 'Clicked without timestamp, as CleverTap documents it');
  t.notOk(check('status-callback', callback('status-failed.json')).valid, 'paytloadVersion rejected');
  t.notOk(check('status-callback', callback('status-clicked.json')).valid, '"ts" rejected');
  t.notOk(check('incoming-callback', callback('incoming-file.json')).valid, '"document" object rejected');
  t.notOk(check('incoming-callback', callback('incoming-location.json')).valid, 'payloadversion rejected');

  // Canonical fixes, equal to the files in callbacks/canonical/.
  const failed = rename(callback('status-failed.json'), 'paytloadVersion', 'payloadVersion');
  t.same(failed, callback('canonical/status-failed.json'));
  t.ok(check('status-callback', failed).valid);
  const location = rename(callback('incoming-location.json'), 'payloadversion', 'payloadVersion');
  t.same(location, callback('canonical/incoming-location.json'));
  t.ok(check('incoming-callback', location).valid);
  const [click] = callback('status-clicked.json').statuses as Obj[];
  const { ts, ...clickRest } = click ?? {};
  const clicked = { payloadVersion: '0.1', statuses: [{ ...clickRest, timestamp: String(ts) }] };
  t.ok(check('status-callback', clicked).valid, 'Clicked with ts -> timestamp string');

  // Other spellings the emitted forms must not use.
  const delivered = callback('canonical/status-delivered.json');
  const status = (s: Obj): Obj => ({ payloadVersion: '0.1', statuses: [{ msgId: 'm', timestamp: '1647441774', ...s }] });
  for (const key of ['payloadversion', 'paytloadVersion', 'paypoadVersion']) {
    t.notOk(check('status-callback', rename(delivered, 'payloadVersion', key)).valid, `${key} rejected`);
  }
  t.notOk(check('status-callback', { ...delivered, payloadVersion: 0.1 }).valid, 'numeric payloadVersion rejected');
  t.notOk(check('status-callback', status({ status: 'clicked', url: 'u', shortUrl: 's', userAgent: 'a' })).valid, 'lower-case clicked rejected');
  t.notOk(check('status-callback', status({ status: 'failed' })).valid, 'failed without error');
  t.notOk(check('status-callback', status({ status: 'failed', error: { code: '1004', title: 'x' } })).valid, 'string error code');
  t.notOk(check('status-callback', status({ status: 'failed', error: { code: 2004, title: 'x' } })).valid, 'answer code in a callback');
  t.notOk(check('status-callback', status({ status: 'read', error: { code: 1004, title: 'x' } })).valid, 'error on a non-failed status');
  t.notOk(check('status-callback', status({ status: 'sent', timestamp: 1647441774 })).valid, 'numeric timestamp');
  t.notOk(check('status-callback', status({ status: 'delivered', msg_id: 'm' })).valid, 'msg_id rejected');
  t.notOk(check('status-callback', status({ status: 'Clicked' })).valid, 'Clicked without url, shortUrl, userAgent');
  t.notOk(check('status-callback', { payloadVersion: '0.1', statuses: [{ msgId: 'm', status: 'sent' }] }).valid, 'sent without timestamp');

  const file = callback('canonical/incoming-file.json');
  const fileObj = file.file as Obj;
  t.notOk(check('incoming-callback', rename(file, 'file', 'document')).valid, 'document key rejected');
  t.notOk(check('incoming-callback', { ...file, type: 'document' }).valid, 'type document rejected');
  t.notOk(check('incoming-callback', { ...file, file: { ...fileObj, mimeType: undefined } }).valid, 'mimeType required');
  t.notOk(check('incoming-callback', { ...file, file: { ...fileObj, mediaURL: 'www.example.com/document.pdf' } }).valid, 'scheme-less mediaURL');
  t.notOk(check('incoming-callback', { ...file, text: { body: 'x' } }).valid, 'object of another type');
  t.notOk(check('incoming-callback', { ...file, type: 'voice' }).valid, 'voice with a file object');
  // type voice (a tenant's incomingAudioType) carries the doc's audio object; there is no voice object.
  const audio = { payloadVersion: '0.1', from: '919999999999', wabaNumber: '919999999998', timestamp: '1647441774', type: 'audio', audio: { mediaURL: 'https://m.test/a.ogg', mimeType: 'audio/ogg' } };
  t.ok(check('incoming-callback', audio).valid, 'audio with its audio object');
  t.ok(check('incoming-callback', { ...audio, type: 'voice' }).valid, 'voice with the audio object');
  t.notOk(check('incoming-callback', rename({ ...audio, type: 'voice' }, 'audio', 'voice')).valid, 'no voice object');
  t.notOk(check('incoming-callback', { ...audio, type: 'voice', audio: undefined }).valid, 'voice without the audio object');
  t.notOk(check('incoming-callback', { ...file, from: '+919999999999' }).valid, '"+" in from');
  t.notOk(check('incoming-callback', { ...file, context: { msg_id: 'x' } }).valid, 'context.msg_id');
});
