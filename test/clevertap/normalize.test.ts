import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { normalize, parseMsgId, normalizeLanguage, repairText } from '../../engine/clevertap/normalize.js';
import { parseCleverTapJson } from '../../engine/clevertap/lenient-json.js';
import type { CanonicalMessage, NormalizeIssue } from '../../engine/clevertap/model.js';

type Obj = Record<string, unknown>;
const EXAMPLES = fileURLToPath(new URL('../../examples/clevertap/', import.meta.url));
const exampleFiles = readdirSync(EXAMPLES).filter((f) => f.endsWith('.json'));
const load = (name: string): Obj => JSON.parse(readFileSync(EXAMPLES + name, 'utf8')) as Obj;

function ok(payload: unknown): CanonicalMessage {
  const r = normalize(payload);
  if (!r.ok) throw new Error('expected ok, got ' + JSON.stringify(r.issues));
  return r.message;
}
function issues(payload: unknown): NormalizeIssue[] {
  const r = normalize(payload);
  if (r.ok) throw new Error('expected issues, got ' + JSON.stringify(r.message));
  return r.issues;
}

const template = (components: unknown[] = [], over: Obj = {}): Obj => ({
  payloadVersion: 0.1,
  to: '919999999999',
  wabaNumber: '919999999998',
  isTemplate: true,
  msgId: '1|2|3|4',
  template: { namespace: 'sample', languageCode: 'en' },
  components,
  ...over,
});
const freeform = (over: Obj = {}): Obj => ({
  payloadVersion: 0.1,
  to: '919999999999',
  wabaNumber: '919999999998',
  msgId: '1|2|3|4',
  isTemplate: false,
  type: 'text',
  text: { body: 'hello' },
  ...over,
});
const body = (text: string, ...params: string[]): Obj => ({ type: 'body', body: { text, parameters: params.map((p) => ({ type: 'text', text: p })) } });
const button = (subTypeKey: string, subType: string, parameters?: unknown[], index = 0): Obj => ({
  type: 'button',
  index,
  buttonText: 'Go',
  [subTypeKey]: subType,
  ...(parameters === undefined ? {} : { parameters }),
});
const imageHeader = (mediaURL: string): Obj => ({ type: 'header', header: { type: 'image', image: { mediaURL } } });

t.test('every example normalizes (except the documented httpa:// typo)', async (t) => {
  t.ok(exampleFiles.length >= 18, 'examples found');
  for (const f of exampleFiles) {
    const r = normalize(load(f));
    if (f === 'template-image-dynamic-url-bad-scheme.json') {
      t.notOk(r.ok, f);
      if (!r.ok) t.match(r.issues, [{ code: 2001, path: 'components[0].header.image.mediaURL', message: /"httpa"/ }], f);
      continue;
    }
    t.ok(r.ok, f, r.ok ? {} : { issues: r.issues });
  }
});

t.test('doc sample: template-file-header-custom-props, whole canonical shape', async (t) => {
  const m = ok(load('template-file-header-custom-props.json'));
  t.same(m, {
    payloadVersion: '0.1',
    msgId: '0|0|0|0',
    msgIdParts: { i: '0', campaignId: '0', batchId: '0', j: '0' },
    to: '7658734869',
    wabaNumber: '9407178156',
    isTemplate: true,
    isValidation: false,
    type: 'template',
    template: {
      name: 'sample_template',
      languageCode: 'en',
      language: 'en',
      header: {
        type: 'file',
        mediaURL: 'https://d1510fwumr3byl.cloudfront.net/dist/1400000001/i/f90291d5c12140b1b36a9047c407ad75.pdf?v=1724156050',
        filename: 'OctoberCM2',
      },
      body: { text: 'Hey User, This test templates', parameters: [{ type: 'text', text: 'User' }] },
      footer: { text: 'Please reply "stop" to optout' },
      buttons: [
        { index: 0, subType: 'copyCode', text: 'Copy offer code', couponCode: 'BLACKFRIDAY20' },
        { index: 1, subType: 'staticUrl', text: 'Visit App', url: 'https://www.clevertap.com' },
        { index: 2, subType: 'staticUrl', text: 'Check Out Now', url: 'https://www.clevertap.com' },
        { index: 3, subType: 'quickReply', text: 'Show more' },
        { index: 4, subType: 'quickReply', text: 'Not Now' },
        { index: 5, subType: 'quickReply', text: 'STOP' },
      ],
    },
    customProps: { Key1: '$$Value1', key2: '$$Value2' },
  });
});

t.test('doc samples: details', async (t) => {
  const footer = ok(load('template-body-footer.json'));
  t.same(footer.template?.footer, { text: 'this is footer' }, 'footertext');
  t.equal(footer.template?.language, 'en_GB', 'en(uk)');
  t.equal(footer.template?.languageCode, 'en(uk)', 'languageCode kept as sent');
  t.equal(footer.wabaNumber, '91999999XXXX', 'wabaNumber not validated strictly');
  t.equal(footer.payloadVersion, '0.1');

  const lto = ok(load('template-lto-copy-code.json'));
  t.same(lto.template?.limitedTimeOffer, { text: 'Buy 1 Get 1 Free', expirationTimeMs: 1712081380237 });
  t.same(lto.template?.buttons.map((b) => b.subType), ['copyCode', 'dynamicUrl', 'callPhone', 'quickReply', 'quickReply', 'quickReply']);
  t.same(lto.template?.buttons[1], { index: 1, subType: 'dynamicUrl', text: 'Check Out Now', urlSuffix: '0' });
  t.same(lto.template?.buttons[2], { index: 2, subType: 'callPhone', text: 'Call support', phoneNumber: '+91999999999' });
  t.equal(lto.to, '919999999244', '"+" stripped');
  t.equal(lto.isValidation, false, 'msgId 0|0|0|0 alone is not validation');

  const carousel = ok(load('template-carousel.json'));
  const cards = carousel.template?.carousel?.cards ?? [];
  t.equal(cards.length, 2);
  t.same(cards.map((c) => c.index), [0, 1], 'card index = position');
  t.same(cards[1]?.header, { type: 'image', mediaURL: 'https://hatrabbits.com/wp-content/uploads/2017/01/random.jpg' });
  t.same(cards[1]?.buttons.map((b) => [b.subType, b.url ?? b.urlSuffix]), [['staticUrl', 'https://www.clevertap.com'], ['dynamicUrl', '0']]);
  t.equal(cards[0]?.body?.parameters.length, 2);

  const cta = ok(load('template-image-dynamic-url.json'));
  t.same(cta.template?.header, { type: 'image', mediaURL: 'https://example.com/image.png' }, 'scheme-less URL gets https://');
  t.same(cta.template?.buttons.map((b) => b.subType), ['dynamicUrl', 'callPhone'], 'equal indexes keep their order');
  t.equal(cta.msgIdParts.variant, '5');

  const all = ok(load('template-all-components.json'));
  t.same(all.template?.header, { type: 'text', text: 'Hello {{1}}', parameters: [{ type: 'text', text: 'Jane' }] });
  t.same(all.template?.buttons[0], { index: 0, subType: 'copyCode', text: 'Copy offer code', couponCode: 'SUMMER20' }, 'sub_type copy_code');
  t.same(all.template?.buttons[3], { index: 3, subType: 'quickReply', text: 'Stop', payload: 'STOP_PROMOS' });
  t.same(all.template?.carousel?.cards.map((c) => c.header?.type), ['image', 'video'], '"image/video" resolved from the key');
  t.same(all.customProps, { key1: 'Value1', Key2: 'Value2' });
  t.equal(all.template?.language, 'en_US');

  t.same(ok(load('template-location-header.json')).template?.header, {
    type: 'location', latitude: '40.7128', longitude: '74.0060', name: 'Central Park', address: 'New York, NY 10024',
  });
  t.equal(ok(load('template-video-header.json')).template?.language, 'pt_BR');

  const audio = ok(load('freeform-audio.json'));
  t.equal(audio.msgId, '25596363|1639561857|20220227|25596363', 'msg_id');
  t.same(audio.audio, { mediaURL: 'https://www.example.com/audio.mp3' });
  t.equal(audio.type, 'audio');
  t.same(ok(load('freeform-file.json')).file, { mediaURL: 'https://www.example.com/document.pdf', caption: 'This is body', filename: 'sample.pdf' });
  t.same(ok(load('freeform-image.json')).image, { mediaURL: 'https://www.example.com/image.png', caption: 'This is body' });
  t.same(ok(load('freeform-text.json')).text, { body: 'This is message body' });
  t.same(ok(load('freeform-location.json')).location, { latitude: '40.7128', longitude: '74.0060' });

  const validation = ok(load('validation.json'));
  t.equal(validation.isValidation, true);
  t.equal(validation.template?.name, 'whatsapp:hsm:technology:generic:verify');
});

t.test('payloadVersion spellings and forms', async (t) => {
  for (const key of ['payloadVersion', 'payloadversion', 'paytloadVersion', 'paypoadVersion']) {
    const p = freeform({ payloadVersion: undefined, [key]: 0.1 });
    t.equal(ok(p).payloadVersion, '0.1', key);
  }
  t.equal(ok(freeform({ payloadVersion: '0.1' })).payloadVersion, '0.1', 'string');
  t.equal(ok(freeform({ payloadVersion: undefined })).payloadVersion, '0.1', 'absent -> default');
  t.equal(ok(freeform({ payloadVersion: 0.2 })).payloadVersion, '0.2');
  t.match(issues(freeform({ payloadVersion: {} })), [{ code: 2004, path: 'payloadVersion' }]);
});

t.test('msgId / msg_id and parseMsgId', async (t) => {
  t.equal(ok(freeform({ msgId: undefined, msg_id: 'a|b' })).msgId, 'a|b');
  t.same(parseMsgId('i|campaignID|batchID|j|variant'), { i: 'i', campaignId: 'campaignID', batchId: 'batchID', j: 'j', variant: 'variant' });
  t.same(parseMsgId('25596363|1639561857|20220227|25596363'), { i: '25596363', campaignId: '1639561857', batchId: '20220227', j: '25596363' });
  t.same(parseMsgId('single'), { i: 'single' });
  t.same(parseMsgId('a||c'), { i: 'a', campaignId: '', batchId: 'c' });
  t.same(ok(freeform({ msgId: '1|2|3|4|B' })).msgIdParts, { i: '1', campaignId: '2', batchId: '3', j: '4', variant: 'B' });
});

t.test('isTemplate as boolean, string or absent', async (t) => {
  t.equal(ok(template([], { isTemplate: 'true' })).isTemplate, true);
  t.equal(ok(freeform({ isTemplate: 'false' })).isTemplate, false);
  t.equal(ok(freeform({ isTemplate: 'FALSE' })).isTemplate, false);
  t.equal(ok(template([], { isTemplate: undefined })).type, 'template', 'inferred from template');
  t.equal(ok(freeform({ isTemplate: undefined })).type, 'text', 'inferred from absence of template');
  t.match(issues(freeform({ isTemplate: 'yes' })), [{ code: 2004, path: 'isTemplate' }]);
});

t.test('to and wabaNumber cleanup', async (t) => {
  t.equal(ok(freeform({ to: '+91 (999) 999-9999' })).to, '919999999999');
  t.equal(ok(freeform({ to: '919999999999' })).to, '919999999999');
  t.equal(ok(freeform({ to: 919999999999 })).to, '919999999999', 'number');
  t.equal(ok(freeform({ wabaNumber: '+91 99999-99999' })).wabaNumber, '919999999999');
  t.equal(ok(freeform({ wabaNumber: '$$Mobilenumber' })).wabaNumber, '$$Mobilenumber', 'not validated');
  t.notOk('wabaNumber' in ok(freeform({ wabaNumber: undefined })), 'absent stays absent');
  t.match(issues(freeform({ to: '+9199XXXXXXX' })), [{ code: 2002, path: 'to', message: /other than digits/ }], 'doc placeholder');
  t.match(issues(freeform({ to: '+91 99' })), [{ code: 2002, path: 'to', message: /4 digits/ }]);
  t.match(issues(freeform({ to: '1234567890123456' })), [{ code: 2002, path: 'to' }]);
  t.match(issues(freeform({ to: undefined })), [{ code: 2002, path: 'to', message: /missing/ }]);
  t.match(issues(freeform({ to: '' })), [{ code: 2002, path: 'to' }]);
});

t.test('button subType spellings', async (t) => {
  const cases: [string, string, unknown[], Obj][] = [
    ['subType', 'dynamicUrl', [{ type: 'text', text: 'x' }], { subType: 'dynamicUrl', urlSuffix: 'x' }],
    ['subType', 'DYNAMICURL', [{ type: 'text', text: 'x' }], { subType: 'dynamicUrl', urlSuffix: 'x' }],
    ['sub_type', 'url', [{ type: 'text', text: 'x' }], { subType: 'dynamicUrl', urlSuffix: 'x' }],
    ['subType', 'dynamic_url', [{ type: 'text', text: 'x' }], { subType: 'dynamicUrl', urlSuffix: 'x' }],
    ['subType', 'staticUrl', [{ type: 'text', text: 'https://a.b' }], { subType: 'staticUrl', url: 'https://a.b' }],
    ['subType', 'quickReply', [{ type: 'payload', payload: 'P' }], { subType: 'quickReply', payload: 'P' }],
    ['sub_type', 'quick_reply', [{ type: 'payload', payload: 'P' }], { subType: 'quickReply', payload: 'P' }],
    ['subType', 'callPhone', [{ type: 'text', text: '+1555' }], { subType: 'callPhone', phoneNumber: '+1555' }],
    ['sub_type', 'phone_number', [{ type: 'text', text: '+1555' }], { subType: 'callPhone', phoneNumber: '+1555' }],
    ['sub_type', 'copy_code', [{ type: 'coupon_code', coupon_code: 'C' }], { subType: 'copyCode', couponCode: 'C' }],
    ['subType', 'copyCode', [{ type: 'coupon_code', coupon_code: 'C' }], { subType: 'copyCode', couponCode: 'C' }],
    ['subType', 'COPY_CODE', [{ type: 'coupon_code', coupon_code: 'C' }], { subType: 'copyCode', couponCode: 'C' }],
  ];
  for (const [key, value, params, expected] of cases) {
    const b = ok(template([button(key, value, params)])).template?.buttons[0];
    t.same(b, { index: 0, text: 'Go', ...expected }, `${key}: ${value}`);
  }
  t.same(ok(template([button('subType', 'quickReply')])).template?.buttons[0], { index: 0, subType: 'quickReply', text: 'Go' }, 'no parameters: no value');
  const sorted = ok(template([button('subType', 'quickReply', undefined, 2), button('subType', 'quickReply', undefined, 0), button('subType', 'quickReply', undefined, 1)]));
  t.same(sorted.template?.buttons.map((b) => b.index), [0, 1, 2], 'sorted by index');
  t.equal(ok(template([{ ...button('subType', 'quickReply'), index: '3' }])).template?.buttons[0]?.index, 3, 'numeric string index');
  t.match(issues(template([{ ...button('subType', 'quickReply'), index: 'x' }])), [{ code: 2001, path: 'components[0].index' }]);
});

t.test('footer variants', async (t) => {
  t.same(ok(template([{ type: 'footer', footer: 'f' }])).template?.footer, { text: 'f' });
  t.same(ok(template([{ type: 'footer', footertext: 'f' }])).template?.footer, { text: 'f' });
  t.same(ok(template([{ type: 'footer', footer: { text: 'f' } }])).template?.footer, { text: 'f' });
  t.match(issues(template([{ type: 'footer' }])), [{ code: 2001, path: 'components[0].footer' }]);
});

t.test('header variants', async (t) => {
  const h = (header: Obj): unknown => ok(template([{ type: 'header', header }])).template?.header;
  t.same(h({ type: 'file', file: { mediaURL: 'https://a.b/x.pdf', filename: 'x.pdf' } }), { type: 'file', mediaURL: 'https://a.b/x.pdf', filename: 'x.pdf' });
  t.same(h({ type: 'document', document: { mediaURL: 'https://a.b/x.pdf' } }), { type: 'file', mediaURL: 'https://a.b/x.pdf' });
  t.same(h({ type: 'file', document: { mediaURL: 'https://a.b/x.pdf' } }), { type: 'file', mediaURL: 'https://a.b/x.pdf' }, 'type file, key document');
  t.same(h({ type: 'document', file: { mediaURL: 'https://a.b/x.pdf' } }), { type: 'file', mediaURL: 'https://a.b/x.pdf' }, 'type document, key file');
  t.same(h({ type: 'image/video', video: { mediaURL: 'https://a.b/v.mp4' } }), { type: 'video', mediaURL: 'https://a.b/v.mp4' });
  t.same(h({ type: 'image/video', image: { mediaURL: 'https://a.b/i.png' } }), { type: 'image', mediaURL: 'https://a.b/i.png' });
  t.same(h({ type: 'audio', audio: { mediaURL: 'https://a.b/a.mp3' } }), { type: 'audio', mediaURL: 'https://a.b/a.mp3' });
  t.same(h({ type: 'text', text: { text: 'Hi {{1}}', parameters: [{ type: 'text', text: 'Jo' }] } }), { type: 'text', text: 'Hi {{1}}', parameters: [{ type: 'text', text: 'Jo' }] });
  t.same(h({ type: 'location', location: { latitude: 1.5, longitude: -2 } }), { type: 'location', latitude: '1.5', longitude: '-2' }, 'numeric coordinates');
  t.match(issues(template([{ type: 'header', header: { type: 'image/video' } }])), [{ code: 2001, path: 'components[0].header', message: /"image" or "video"/ }]);
  t.match(issues(template([{ type: 'header', header: { type: 'sticker', sticker: {} } }])), [{ code: 2001, path: 'components[0].header.type' }]);
  t.match(issues(template([{ type: 'header', header: { type: 'location', location: { latitude: '1' } } }])), [{ code: 2001, path: 'components[0].header.location.longitude' }]);
});

t.test('media URLs', async (t) => {
  const url = (u: string): unknown => ok(template([imageHeader(u)])).template?.header;
  t.same(url('www.example.com/a.png'), { type: 'image', mediaURL: 'https://www.example.com/a.png' });
  t.same(url('example.com/image.png'), { type: 'image', mediaURL: 'https://example.com/image.png' });
  t.same(url('//cdn.example.com/a.png'), { type: 'image', mediaURL: 'https://cdn.example.com/a.png' });
  t.same(url('http://example.com/a.png'), { type: 'image', mediaURL: 'http://example.com/a.png' }, 'http kept');
  t.same(url('HTTPS://example.com/a.png'), { type: 'image', mediaURL: 'HTTPS://example.com/a.png' });
  t.match(issues(template([imageHeader('httpa://www.example.com/image.png')])), [{ code: 2001, path: 'components[0].header.image.mediaURL', message: /scheme "httpa"/ }]);
  t.match(issues(template([imageHeader('ftp://example.com/a.png')])), [{ code: 2001, message: /scheme "ftp"/ }]);
  t.match(issues(freeform({ type: 'image', image: { mediaURL: 'javascript:alert(1)' } })), [{ code: 2001, path: 'image.mediaURL', message: /not a valid URL/ }]);
  t.match(issues(template([imageHeader('')])), [{ code: 2001, path: 'components[0].header.image.mediaURL' }]);
  t.same(ok(freeform({ type: 'image', image: { mediaUrl: 'a.com/x.png' } })).image, { mediaURL: 'https://a.com/x.png' }, 'mediaUrl spelling');
});

t.test('languageCode normalization', async (t) => {
  const table: [string, string][] = [
    ['en', 'en'], ['EN', 'en'], ['en_US', 'en_US'], ['en-us', 'en_US'], ['en(uk)', 'en_GB'], ['en(UK)', 'en_GB'],
    ['en_GB', 'en_GB'], ['pt-br', 'pt_BR'], ['pt_BR', 'pt_BR'], [' es-419 ', 'es_419'], ['zh-hant-tw', 'zh_Hant_TW'],
  ];
  for (const [raw, want] of table) t.equal(normalizeLanguage(raw), want, raw);
  // worked out once per code: the same answers the second time, and after more codes than are kept
  for (const [raw, want] of table) t.equal(normalizeLanguage(raw), want, `${raw} again`);
  for (let i = 0; i < 600; i++) normalizeLanguage(`x${i}-y${i}`);
  t.equal(normalizeLanguage('x599-y599'), 'x599_Y599');
  for (const [raw, want] of table) t.equal(normalizeLanguage(raw), want, `${raw} after 600 other codes`);
  const m = ok(template([], { template: { namespace: 'x', languageCode: 'en(UK)' } }));
  t.same([m.template?.languageCode, m.template?.language], ['en(UK)', 'en_GB']);
});

t.test('mojibake and β repair in text values', async (t) => {
  t.equal(repairText('\u00e2\u20ac\u0153Hi\u00e2\u20ac\u009d'), '\u201cHi\u201d', 'â€œ … â€<9D>');
  t.equal(repairText('\u00e2\u20ac\u0153Hi\u00e2\u20ac'), '\u201cHi\u201d', 'bare â€ at the end is a closing quote');
  t.equal(repairText('it\u00e2\u20ac\u2122s'), 'it\u2019s', 'â€™');
  t.equal(repairText('\u00e2\u20ac\u02dcx'), '\u2018x', 'â€˜');
  t.equal(repairText('a \u00e2\u20ac\u201c b'), 'a \u2013 b', 'â€“');
  t.equal(repairText('a \u00e2\u20ac\u201d b'), 'a \u2014 b', 'â€”');
  t.equal(repairText('\u03b2This is body\u03b2'), '\u201cThis is body\u201d', 'β-wrapped value');
  t.equal(repairText('\u03b2-blocker'), '\u03b2-blocker', 'β-blocker untouched');
  t.equal(repairText('take a \u03b2-blocker'), 'take a \u03b2-blocker');
  t.equal(repairText('user\u03b2s'), 'user\u03b2s', 'β inside text untouched');
  t.equal(repairText('\u03b2\u03b9\u03b2\u03bb\u03af\u03bf \u03b2'), '\u03b2\u03b9\u03b2\u03bb\u03af\u03bf \u03b2', 'Greek text untouched');
  t.equal(repairText('\u03b2\u03b2'), '\u03b2\u03b2', 'too short');
  t.equal(repairText('plain'), 'plain');
  const m = ok(template([body('\u03b2This is body\u03b2', 'it\u00e2\u20ac\u2122s')]));
  t.same(m.template?.body, { text: '\u201cThis is body\u201d', parameters: [{ type: 'text', text: 'it\u2019s' }] });
  t.same(ok(freeform({ type: 'image', image: { mediaURL: 'a.com/i.png', caption: '\u03b2This is message body\u03b2' } })).image?.caption, '\u201cThis is message body\u201d');
  t.same(ok(freeform({ type: 'file', file: { mediaURL: 'a.com/f.pdf', filename: '\u03b2sample_document.pdf\u03b2' } })).file?.filename, '\u201csample_document.pdf\u201d');
  t.same(ok(freeform({ text: { body: 'take a \u03b2-blocker' } })).text, { body: 'take a \u03b2-blocker' });
});

t.test('freeform types', async (t) => {
  t.same(ok(freeform({ type: 'document', document: { mediaURL: 'a.com/f.pdf' } })).file, { mediaURL: 'https://a.com/f.pdf' }, 'type document');
  t.same(ok(freeform({ type: 'file', document: { mediaURL: 'a.com/f.pdf' } })).file, { mediaURL: 'https://a.com/f.pdf' }, 'type file, key document');
  t.equal(ok(freeform({ type: 'document', document: { mediaURL: 'a.com/f.pdf' } })).type, 'file');
  t.same(ok(freeform({ type: 'video', video: { mediaURL: 'a.com/v.mp4', caption: 'c' } })).video, { mediaURL: 'https://a.com/v.mp4', caption: 'c' });
  t.same(ok(freeform({ type: 'Image', image: { mediaURL: 'a.com/i.png' } })).type, 'image', 'case-insensitive');
  t.same(ok(freeform({ type: undefined, text: undefined, audio: { mediaURL: 'a.com/a.mp3' } })).type, 'audio', 'type inferred from the only object');
  const text = ok(freeform());
  t.notOk('template' in text);
  t.notOk('extra' in text, 'nothing unknown');
});

t.test('unknown top-level fields are kept in extra', async (t) => {
  const m = ok(template([body('b')], { campaignName: 'x', nested: { a: [1] } }));
  t.same(m.extra, { campaignName: 'x', nested: { a: [1] } });
  const f = ok(freeform({ image: { mediaURL: 'a.com/i.png' }, priority: 'high' }));
  t.same(f.extra, { image: { mediaURL: 'a.com/i.png' }, priority: 'high' }, 'content object of another type is not dropped');
  t.same(ok(freeform({ template: { namespace: 'n' } })).extra, { template: { namespace: 'n' } });
  t.notOk('extra' in ok(template([body('b')])));
});

t.test('customProps', async (t) => {
  t.same(ok(template([{ customProps: [{ a: '1' }, { b: 2 }] }])).customProps, { a: '1', b: 2 });
  t.same(ok(template([{ type: 'customProps', customProps: [{ a: '1' }] }])).customProps, { a: '1' });
  t.same(ok(freeform({ customProps: [{ a: '1' }] })).customProps, { a: '1' }, 'top-level');
  t.match(issues(template([{ customProps: 'x' }])), [{ code: 2001, path: 'components[0].customProps' }]);
  t.match(issues(template([{ customProps: [{ a: 1 }, 'x'] }])), [{ code: 2001, path: 'components[0].customProps[1]' }]);
});

t.test('isValidation depends on the namespace only', async (t) => {
  const verify = { namespace: 'whatsapp:hsm:technology:generic:verify', languageCode: 'en' };
  t.equal(ok(template([body('b')], { template: verify, msgId: '5|6|7|8' })).isValidation, true);
  t.equal(ok(template([body('b')], { msgId: '0|0|0|0' })).isValidation, false);
  t.equal(ok(freeform({ msgId: '0|0|0|0' })).isValidation, false);
});

t.test('error paths and codes', async (t) => {
  t.same(issues('{"to":1}'), [{ path: '', code: 2004, message: 'payload must be a JSON object (got string)' }]);
  t.match(issues(null), [{ path: '', code: 2004 }]);
  t.match(issues([]), [{ path: '', code: 2004, message: /array/ }]);
  t.match(issues(freeform({ msgId: undefined })), [{ code: 2004, path: 'msgId', message: 'msgId is missing' }]);
  t.match(issues(freeform({ msgId: undefined, msg_id: '' })), [{ code: 2004, path: 'msg_id' }]);
  t.match(issues(template([], { template: { languageCode: 'en' } })), [{ code: 2001, path: 'template.namespace' }]);
  t.match(issues(template([], { template: { namespace: 'n' } })), [{ code: 2001, path: 'template.languageCode' }]);
  t.match(issues(template([], { template: undefined })), [{ code: 2001, path: 'template' }]);
  t.match(issues(template([{ type: 'header', header: { type: 'image', image: {} } }])), [{ code: 2001, path: 'components[0].header.image.mediaURL', message: /missing/ }]);
  t.match(issues(template([body('b'), { type: 'body', body: { parameters: [{ type: 'text' }] } }])), [
    { code: 2001, path: 'components[1].body.parameters[0].text' },
  ]);
  t.match(issues(template([button('subType', 'whatever')])), [{ code: 2001, path: 'components[0].subType', message: /"whatever"/ }]);
  t.match(issues(template([button('sub_type', 'flow')])), [{ code: 2001, path: 'components[0].sub_type' }], 'path names the key as sent');
  t.match(issues(template([{ type: 'button', index: 0 }])), [{ code: 2001, path: 'components[0].subType', message: /missing/ }]);
  t.match(issues(template([{ type: 'sticker' }])), [{ code: 2001, path: 'components[0].type', message: /"sticker"/ }]);
  t.match(issues(template([body('a'), body('b')])), [{ code: 2001, path: 'components[1]', message: /second body/ }]);
  t.match(issues(template([{ type: 'carousel', cards: [{ components: [{ type: 'footer', footer: 'x' }] }] }])), [
    { code: 2001, path: 'components[0].cards[0].components[0].type' },
  ]);
  t.match(issues(template([{ type: 'limited_time_offer', parameters: [{ type: 'limited_time_offer', limited_time_offer: { expiration_time_ms: 'soon' } }] }])), [
    { code: 2001, path: 'components[0].parameters[0].limited_time_offer.expiration_time_ms' },
  ]);
  t.match(issues(freeform({ type: 'image', text: undefined })), [{ code: 2001, path: 'image', message: /needs its "image" object/ }]);
  t.match(issues(freeform({ type: 'document', text: undefined })), [{ code: 2001, path: 'file' }]);
  t.match(issues(freeform({ type: 'sticker' })), [{ code: 2001, path: 'type', message: /"sticker"/ }]);
  t.match(issues(freeform({ type: 'text/audio/file/image/location/video' })), [{ code: 2001, path: 'type' }]);
  t.match(issues(freeform({ text: { body: '' } })), [{ code: 2001, path: 'text.body' }]);
  t.match(issues(freeform({ type: 'location', location: { latitude: '1' } })), [{ code: 2001, path: 'location.longitude' }]);
  t.equal(ok(freeform({ type: undefined })).type, 'text', 'type inferred from the text object');
});

t.test('the contract\'s bounds', async (t) => {
  // msgId: "This can be upto 60 characters long".
  const sixty = '1|2|3|' + 'x'.repeat(54);
  t.equal(ok(freeform({ msgId: sixty })).msgId, sixty, '60 characters pass');
  t.same(issues(freeform({ msgId: sixty + 'y' })), [{ path: 'msgId', code: 2001, message: "msgId is 61 characters long; CleverTap's msgId is at most 60" }]);
  t.match(issues(freeform({ msgId: undefined, msg_id: 'x'.repeat(10_000) })), [{ path: 'msg_id', code: 2001, message: /msg_id is 10000 characters long.*at most 60/ }], 'names the key as sent');
  t.equal(ok(freeform({ msgId: `  ${sixty}  ` })).msgId, sixty, 'counted after trimming');
  t.equal(ok(freeform({ msgId: '😀'.repeat(60) })).msgId.length, 120, 'counted in characters, not UTF-16 units');
  t.match(issues(freeform({ msgId: '😀'.repeat(61) })), [{ path: 'msgId', code: 2001, message: /61 characters/ }]);
  t.match(issues(template([], { msgId: 'x'.repeat(61), to: 'abc' })), [{ path: 'msgId', code: 2001 }, { path: 'to', code: 2002 }], 'msgId first, every problem listed');
  // Data Type String in the template table; a value of another type was silently dropped before.
  t.match(issues(template([{ type: 'button', index: 0, subType: 'quickReply', buttonText: 7 }])), [{ path: 'components[0].buttonText', code: 2001, message: /must be a string \(got number\)/ }]);
  t.match(issues(template([{ type: 'body', body: { text: ['a'], parameters: [] } }])), [{ path: 'components[0].body.text', code: 2001, message: /got array/ }]);
  t.match(issues(template([{ type: 'header', header: { type: 'text', text: { text: {}, parameters: [] } } }])), [{ path: 'components[0].header.text.text', code: 2001 }]);
  t.match(issues(template([{ type: 'header', header: { type: 'file', file: { mediaURL: 'https://a.test/x.pdf', filename: 1 } } }])), [{ path: 'components[0].header.file.filename', code: 2001 }]);
  t.match(issues(template([{ type: 'header', header: { type: 'location', location: { latitude: '1', longitude: '2', name: true, address: {} } } }])), [
    { path: 'components[0].header.location.name', code: 2001 },
    { path: 'components[0].header.location.address', code: 2001 },
  ]);
  t.match(issues(template([{ type: 'limited_time_offer', text: 5 }])), [{ path: 'components[0].text', code: 2001 }]);
  t.match(issues(freeform({ type: 'image', text: undefined, image: { mediaURL: 'https://a.test/i.png', caption: 3 } })), [{ path: 'image.caption', code: 2001 }]);
  t.match(issues(freeform({ type: 'document', text: undefined, document: { mediaURL: 'https://a.test/d.pdf', filename: [] } })), [{ path: 'document.filename', code: 2001 }]);
  t.same(issues(freeform({ text: { body: 42 } })), [{ path: 'text.body', code: 2001, message: 'text.body must be a string (got number)' }], 'one problem, not two');
  t.notOk('caption' in ok(freeform({ type: 'image', text: undefined, image: { mediaURL: 'https://a.test/i.png', caption: null } })).image!, 'null is absent');
  t.match(issues(freeform({ wabaNumber: { n: 1 } })), [{ path: 'wabaNumber', code: 2004, message: /got object/ }]);
  // Already enforced, listed in docs/clevertap-model.md "Bounds": allowed values and integers.
  t.match(issues(template([{ type: 'button', index: 1.5, subType: 'quickReply' }])), [{ path: 'components[0].index', code: 2001 }], 'button.index Integer');
  t.match(issues(template([{ type: 'header', header: { type: 'sticker', sticker: {} } }])), [{ path: 'components[0].header.type', code: 2001 }], 'header.type');
  t.match(issues(template([{ type: 'button', index: 0, subType: 'dynamicUrl', parameters: { type: 'text', text: 'x' } }])), [{ path: 'components[0].parameters', code: 2001, message: /must be an array/ }], 'button.parameters Array');
  t.match(issues(template([{ type: 'body', body: { text: 'b', parameters: 'x' } }])), [{ path: 'components[0].body.parameters', code: 2001 }], 'body parameters Array');
  t.match(issues(template([{ type: 'header', header: { type: 'location', location: { latitude: '1' } } }])), [{ path: 'components[0].header.location.longitude', code: 2001 }], 'location header coordinates');
});

t.test('all problems are reported at once', async (t) => {
  const all = issues({
    to: '12',
    isTemplate: true,
    template: { languageCode: 'en' },
    components: [imageHeader('httpa://x.y/z.png'), button('subType', 'nope')],
  });
  t.same(all.map((i) => [i.code, i.path]), [
    [2004, 'msgId'],
    [2002, 'to'],
    [2001, 'components[0].header.image.mediaURL'],
    [2001, 'components[1].subType'],
    [2001, 'template.namespace'],
  ]);
});

t.test('keys that are not identifiers are bracketed in paths', async (t) => {
  t.match(issues(template([{ type: 'header', header: { type: 'image', image: { mediaURL: 'ftp://x' } } }])), [{ path: 'components[0].header.image.mediaURL' }]);
  t.match(issues(template([button('subType', 'x')])), [{ path: 'components[0].subType' }]);
});

t.test('normalize does not mutate its input', async (t) => {
  const p = load('template-all-components.json');
  const before = JSON.stringify(p);
  ok(p);
  t.equal(JSON.stringify(p), before);
});

t.test('lenient JSON: doc copy-paste delimiters', async (t) => {
  // Verbatim from the doc's freeform audio sample (β as key delimiter).
  const doc = '{\n"payloadVersion":0.1,\n"to": "919999999999",\n\u03b2msg_id\u03b2:"25596363|1639561857|20220227|25596363",\n"wabaNumber": "91999999XXXX",\n"type": "audio",\n"isTemplate": false,\n"audio": {\n"mediaURL": "www.example.com/audio.mp3"\n}\n}';
  const r = parseCleverTapJson(doc);
  t.ok(r.ok);
  if (r.ok) {
    t.same(r.value, load('freeform-audio.json'), 'equals the retyped example');
    t.equal(ok(r.value).msgId, '25596363|1639561857|20220227|25596363');
  }
  t.same(parseCleverTapJson('{\u201ca\u201d: \u201cb\u201d}'), { ok: true, value: { a: 'b' } }, 'curly quotes');
  t.same(parseCleverTapJson('{\u201ea\u201c: 1}'), { ok: true, value: { a: 1 } }, 'low-9 quote');
  t.same(parseCleverTapJson('{"a": "\u201cquoted\u201d \u03b2"}'), { ok: true, value: { a: '\u201cquoted\u201d \u03b2' } }, 'inside strings untouched (fast path)');
  t.same(parseCleverTapJson('{\u03b2a\u03b2: "x \u03b2 \u201cy\u201d", "b": "\\"q\\""}'), { ok: true, value: { a: 'x \u03b2 \u201cy\u201d', b: '"q"' } }, 'repair skips string contents and escapes');
  t.same(parseCleverTapJson('{\u201ca": 1}'), { ok: true, value: { a: 1 } }, 'curly open, straight close');
  t.same(parseCleverTapJson('[1, 2]'), { ok: true, value: [1, 2] });
});

t.test('lenient JSON: errors name line and column', async (t) => {
  // The doc's 4th template sample: header component not closed before the next one.
  const broken = '{\n"components": [\n{\n"type": "header",\n"header": {}\n{\n"type": "body"\n}\n]\n}';
  t.same(parseCleverTapJson(broken), { ok: false, error: 'invalid JSON at line 6, column 1: unexpected "{", expected \',\' or \'}\'' });
  t.match(parseCleverTapJson('{"a": 1,\n "b": }'), { ok: false, error: /line 2, column 7/ });
  t.match(parseCleverTapJson('{"a": [1, 2'), { ok: false, error: /line 1, column 12: unexpected end of input/ });
  t.match(parseCleverTapJson('{"a": "x\ny"}'), { ok: false, error: /line 1, column 9: control character/ });
  t.match(parseCleverTapJson('{"a": 1} x'), { ok: false, error: /column 10: unexpected "x", expected end of input/ });
  t.match(parseCleverTapJson('{"timestamp": "1", //Event timestamp\n}'), { ok: false, error: /line 1, column 20/ }, 'comments are not repaired');
  t.match(parseCleverTapJson(''), { ok: false, error: /unexpected end of input/ });
  t.match(parseCleverTapJson('{\u03b2a: 1}'), { ok: false, error: /line 1/ }, 'unterminated β string');
  const deep = '['.repeat(100000);
  t.match(parseCleverTapJson(deep), { ok: false, error: /unexpected end of input/ }, 'deep nesting: no stack overflow');
});
