// The redaction pass of `wabridge quarantine to-fixture`: fake values, consistent within a fixture,
// structure and types kept, nothing personal left.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { Redactor, kindOfKey, redactWebhook } from '../../engine/mapping/redact-fixture.js';

const meta = {
  object: 'whatsapp_business_account',
  entry: [
    {
      id: '102290129340398',
      changes: [
        {
          field: 'messages',
          value: {
            messaging_product: 'whatsapp',
            metadata: { display_phone_number: '15550783881', phone_number_id: '106540352242922' },
            contacts: [{ profile: { name: 'Sheena Nelson' }, wa_id: '16505551234' }],
            messages: [
              { from: '16505551234', id: 'wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdCNUY3', timestamp: '1750092000', type: 'text', text: { body: 'my card is 4111 and I live at 5 Elm St' } },
              { from: '16505551234', id: 'wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdCNUY4', timestamp: '1750092001', type: 'text', text: { body: 'my card is 4111 and I live at 5 Elm St' }, context: { from: '15550783881', id: 'wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdCNUY3' } },
            ],
            statuses: [{ id: 'wamid.OUT1', status: 'failed', timestamp: '1750092002', recipient_id: '16505551234', biz_opaque_callback_data: '21|1|1|1', errors: [{ code: 131026, title: 'Message undeliverable' }] }],
          },
        },
      ],
    },
  ],
};

/** Every string leaf, with its path. */
function leaves(v: unknown, path = ''): [string, unknown][] {
  if (Array.isArray(v)) return v.flatMap((x, i) => leaves(x, `${path}[${i}]`));
  if (typeof v === 'object' && v !== null) return Object.entries(v).flatMap(([k, x]) => leaves(x, `${path}.${k}`));
  return [[path, v]];
}

t.test('a Meta batch: personal values replaced, consistently; structure, types and the rest kept', async (t) => {
  const r = new Redactor();
  const out = r.value(meta) as typeof meta;
  const before = leaves(meta);
  const after = leaves(out);
  t.same(after.map(([p, v]) => [p, typeof v]), before.map(([p, v]) => [p, typeof v]), 'same paths, same JSON types');
  const text = JSON.stringify(out);
  for (const secret of ['Sheena', 'Nelson', '16505551234', '15550783881', '4111', 'Elm St', 'HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdCNUY3', '102290129340398', '106540352242922']) {
    t.notOk(text.includes(secret), `${secret} is gone`);
  }
  const v = out.entry[0]!.changes[0]!.value;
  type Msg = { from: string; id: string; timestamp: string; type: string; text: { body: string }; context: { from: string; id: string } };
  const [m1, m2] = v.messages as unknown as [Msg, Msg];
  t.equal(v.contacts[0]!.wa_id, m1.from, 'the same number gets the same fake in wa_id and from');
  t.equal(v.statuses[0]!.recipient_id, m1.from, '… and in recipient_id');
  t.equal(m2.context.id, m1.id, 'a reply still points at the message it answers');
  t.not(m1.id, m2.id, 'different ids stay different');
  t.equal(m1.text.body, m2.text.body, 'the same text gets the same fake');
  t.equal(m2.context.from, v.metadata.display_phone_number, 'the business number too');
  t.match(m1.id, /^wamid\.[A-Za-z0-9]{36}$/, 'an id keeps its wamid. prefix, length and character classes');
  t.equal(m1.id.length, meta.entry[0]!.changes[0]!.value.messages[0]!.id.length);
  t.match(m1.from, /^555\d{8}$/, 'a fake number, as long as the real one');
  t.equal(v.contacts[0]!.profile.name, 'Person 1');
  t.match(m1.text.body, /^Text \d+$/);
  t.same([m1.timestamp, m1.type, v.messaging_product, out.object, v.statuses[0]!.status, v.statuses[0]!.biz_opaque_callback_data], ['1750092000', 'text', 'whatsapp', 'whatsapp_business_account', 'failed', '21|1|1|1'], 'timestamps, types, enums and the CleverTap msgId stay');
  t.same(v.statuses[0]!.errors, [{ code: 131026, title: 'Message undeliverable' }], 'error codes and titles stay (the mapping maps them)');
  t.same(new Redactor().value(meta), out, 'the same input gives the same fixture on every run');
});

t.test('key kinds; numbers; phone numbers inside strings; credentials', async (t) => {
  t.equal(kindOfKey('X-Api-Key'), 'secret');
  t.equal(kindOfKey('access_token'), 'secret');
  t.equal(kindOfKey('ProfileName'), 'name');
  t.equal(kindOfKey('MessageSid'), 'id');
  t.equal(kindOfKey('messageId'), 'id');
  t.equal(kindOfKey('created_at'), 'time');
  t.equal(kindOfKey('status'), 'other');
  const r = new Redactor();
  t.equal(r.string('whatsapp:+14155238886', 'From'), `whatsapp:+${r.phoneDigits('14155238886')}`, 'the number inside a prefixed address');
  t.equal(r.string('call me on 919876543210 please', 'note'), `call me on ${r.phoneDigits('919876543210')} please`, 'a number in free text elsewhere');
  t.equal(r.string('1750092000', 'timestamp'), '1750092000', 'time keys keep their digits');
  t.equal(r.string('order 1234', 'note'), 'order 1234', 'short digit runs are not phone numbers');
  const n = r.number(919876543210, 'msisdn');
  t.equal(typeof n, 'number');
  t.equal(String(n), r.phoneDigits('919876543210'), 'a number stays a number, consistently with the string form');
  t.equal(r.number(131026, 'code'), 131026);
  t.equal(r.string('eyJhbGciOi.secret.value', 'token'), 'fake-secret-1');
  t.equal(r.string('eyJhbGciOi.secret.value', 'authorization'), 'fake-secret-1', 'same secret, same fake');
  t.equal(r.string('passport-scan.pdf', 'filename'), 'file-1.pdf', 'a file name keeps its extension');
  t.equal(r.string('', 'body'), '', 'empty stays empty');
  const link = r.string('https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages/MM0123456789abcdef0123456789abcdef/Media/ME0123456789abcdef0123456789abcdef', 'MediaUrl0');
  t.match(link, /^https:\/\/api\.twilio\.com\/2010-04-01\/Accounts\/[A-Za-z0-9]{34}\/Messages\/[A-Za-z0-9]{34}\/Media\/[A-Za-z0-9]{34}$/, 'a link keeps its host and shape');
  t.notOk(link.includes('0123456789abcdef'), 'its account, message and media ids are replaced');
  t.equal(r.string('https://cdn.example/media?id=5&sig=abcdefghijklmnopqrst', 'url'), `https://cdn.example/media?id=5&sig=${r.id('abcdefghijklmnopqrst')}`);
});

t.test('a whole webhook: headers without the signature or redacted values, form bodies, query', async (t) => {
  const form = 'SmsSid=SM0123456789abcdef0123456789abcdef&From=whatsapp%3A%2B14155238886&To=whatsapp%3A%2B15005550006&Body=Hello+there&ProfileName=Ana+Lopez&NumMedia=0';
  const red = redactWebhook(
    {
      rawBody: form,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': '[redacted]', host: 'wab.example', 'i-twiml-nonce': '[redacted]', 'x-home-region': 'us1' },
      query: { tenant: 'acme', from: '14155238886' },
    },
    'X-Twilio-Signature',
  );
  t.same(red.headers, { 'content-type': 'application/x-www-form-urlencoded', 'x-home-region': 'us1' });
  t.ok('text' in red.body);
  const params = new URLSearchParams((red.body as { text: string }).text);
  t.same([...params.keys()], ['SmsSid', 'From', 'To', 'Body', 'ProfileName', 'NumMedia'], 'keys and order kept');
  t.match(params.get('From'), /^whatsapp:\+555\d{8}$/);
  t.equal(params.get('Body'), 'Text 1');
  t.equal(params.get('ProfileName'), 'Person 1');
  t.equal(params.get('NumMedia'), '0');
  t.match(params.get('SmsSid'), /^[A-Z]{2}[0-9a-z]{32}$/);
  t.equal(red.query.from, params.get('From')!.slice('whatsapp:+'.length), 'the same number in query and body gets the same fake');
  t.equal(red.query.tenant, 'acme');

  const json = redactWebhook({ rawBody: JSON.stringify(meta), headers: { 'content-type': 'application/json', 'x-hub-signature-256': 'sha256=abc' }, query: {} }, 'X-Hub-Signature-256');
  t.same(json.headers, { 'content-type': 'application/json' }, 'the signature header is left to the golden runner, which signs with the test secret');
  t.same(json.body, { json: new Redactor().value(meta) });
});

t.test('a shipped fixture input redacts without losing its shape', async (t) => {
  const raw = JSON.parse(readFileSync(new URL('../../mappings/meta-cloud/fixtures/webhook-inbound-mixed-batch/input.json', import.meta.url), 'utf8')) as unknown;
  const out = new Redactor().value(raw);
  t.same(leaves(out).map(([p, v]) => [p, typeof v]), leaves(raw).map(([p, v]) => [p, typeof v]));
});
