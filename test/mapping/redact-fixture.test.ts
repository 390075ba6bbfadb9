// The redaction pass of `wabridge quarantine to-fixture`: fake values, consistent within a fixture,
// structure and types kept, nothing personal left. The webhooks here are a made-up BSP's ("acme");
// each real BSP's key names are in its mapping (fixtures.redact), checked against its own fixtures below.
import t from 'tap';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadMapping, mappingDirs } from '../../engine/mapping/loader.js';
import { Redactor, keyKinds, kindOfKey, redactWebhook, type RedactKeys } from '../../engine/mapping/redact-fixture.js';

/** Acme's own names: the generic rules would not know `handset` is a phone number nor `nick` a name. */
const ACME: RedactKeys = { phone: ['handset', 'line_number'], name: ['nick'], id: ['AcmeSid'] };

const acme = {
  kind: 'batch',
  account: { id: '102290129340398', line_number: '15550783881' },
  contacts: [{ nick: 'Sheena Nelson', handset: '16505551234' }],
  messages: [
    { from: '16505551234', id: 'msg.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdCNUY3', timestamp: '1750092000', type: 'text', text: { body: 'my card is 4111 and I live at 5 Elm St' } },
    { from: '16505551234', id: 'msg.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdCNUY4', timestamp: '1750092001', type: 'text', text: { body: 'my card is 4111 and I live at 5 Elm St' }, context: { from: '15550783881', id: 'msg.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdCNUY3' } },
  ],
  statuses: [{ id: 'msg.OUT1', status: 'failed', timestamp: '1750092002', recipient: '16505551234', reference: '21|1|1|1', errors: [{ code: 131026, title: 'Message undeliverable' }] }],
};

/** Every leaf, with its path. */
function leaves(v: unknown, path = ''): [string, unknown][] {
  if (Array.isArray(v)) return v.flatMap((x, i) => leaves(x, `${path}[${i}]`));
  if (typeof v === 'object' && v !== null) return Object.entries(v).flatMap(([k, x]) => leaves(x, `${path}.${k}`));
  return [[path, v]];
}

t.test('a batch: personal values replaced, consistently; structure, types and the rest kept', async (t) => {
  const r = new Redactor(ACME);
  const out = r.value(acme) as typeof acme;
  t.same(leaves(out).map(([p, v]) => [p, typeof v]), leaves(acme).map(([p, v]) => [p, typeof v]), 'same paths, same JSON types');
  const text = JSON.stringify(out);
  for (const secret of ['Sheena', 'Nelson', '16505551234', '15550783881', '4111', 'Elm St', 'HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdCNUY3', '102290129340398']) {
    t.notOk(text.includes(secret), `${secret} is gone`);
  }
  type Msg = { from: string; id: string; timestamp: string; type: string; text: { body: string }; context: { from: string; id: string } };
  const [m1, m2] = out.messages as unknown as [Msg, Msg];
  t.equal(out.contacts[0]!.handset, m1.from, "the same number gets the same fake under the mapping's key and under from");
  t.equal(out.statuses[0]!.recipient, m1.from, '… and under recipient');
  t.equal(m2.context.id, m1.id, 'a reply still points at the message it answers');
  t.not(m1.id, m2.id, 'different ids stay different');
  t.equal(m1.text.body, m2.text.body, 'the same text gets the same fake');
  t.equal(m2.context.from, out.account.line_number, 'the business number too');
  t.match(m1.id, /^msg\.[A-Za-z0-9]{36}$/, 'an id keeps its word. prefix, length and character classes');
  t.equal(m1.id.length, acme.messages[0]!.id.length);
  t.match(m1.from, /^555\d{8}$/, 'a fake number, as long as the real one');
  t.equal(out.contacts[0]!.nick, 'Person 1', "a name under the mapping's key");
  t.match(m1.text.body, /^Text \d+$/);
  t.same([m1.timestamp, m1.type, out.kind, out.statuses[0]!.status, out.statuses[0]!.reference], ['1750092000', 'text', 'batch', 'failed', '21|1|1|1'], 'timestamps, types, enums and the CleverTap msgId stay');
  t.same(out.statuses[0]!.errors, [{ code: 131026, title: 'Message undeliverable' }], 'error codes and titles stay (the mapping maps them)');
  t.same(new Redactor(ACME).value(acme), out, 'the same input gives the same fixture on every run');
  const generic = new Redactor().value(acme) as typeof acme;
  t.equal(generic.contacts[0]!.nick, 'Sheena Nelson', "without the mapping's keys an unknown key keeps its text");
});

t.test('key kinds; numbers; phone numbers inside strings; credentials', async (t) => {
  t.equal(kindOfKey('X-Api-Key'), 'secret');
  t.equal(kindOfKey('access_token'), 'secret');
  t.equal(kindOfKey('display_name'), 'name');
  t.equal(kindOfKey('messageId'), 'id');
  t.equal(kindOfKey('created_at'), 'time');
  t.equal(kindOfKey('status'), 'other');
  t.equal(kindOfKey('AcmeSid'), 'other', 'a BSP-specific id name is not a generic rule');
  t.equal(kindOfKey('acmesid', keyKinds(ACME)), 'id', "… the mapping's list names it, matched case-insensitively");
  t.equal(kindOfKey('from', keyKinds({ time: ['from'] })), 'time', "the mapping's list wins over a generic name");
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
  const link = r.string('https://media.acme.test/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages/MM0123456789abcdef0123456789abcdef/Media/ME0123456789abcdef0123456789abcdef', 'MediaUrl0');
  t.match(link, /^https:\/\/media\.acme\.test\/2010-04-01\/Accounts\/[A-Za-z0-9]{34}\/Messages\/[A-Za-z0-9]{34}\/Media\/[A-Za-z0-9]{34}$/, 'a link keeps its host and shape');
  t.notOk(link.includes('0123456789abcdef'), 'its account, message and media ids are replaced');
  t.equal(r.string('https://cdn.example/media?id=5&sig=abcdefghijklmnopqrst', 'url'), `https://cdn.example/media?id=5&sig=${r.id('abcdefghijklmnopqrst')}`);
});

t.test('a whole webhook: headers without the signature or redacted values, form bodies, query', async (t) => {
  const form = 'AcmeSid=SM0123456789abcdef0123456789abcdef&From=whatsapp%3A%2B14155238886&To=whatsapp%3A%2B15005550006&Body=Hello+there&nick=Ana+Lopez&NumMedia=0';
  const red = redactWebhook(
    {
      rawBody: form,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-acme-signature': '[redacted]', host: 'wab.example', 'x-acme-nonce': '[redacted]', 'x-home-region': 'us1' },
      query: { tenant: 'acme', from: '14155238886' },
    },
    { signatureHeader: 'X-Acme-Signature', keys: ACME },
  );
  t.same(red.headers, { 'content-type': 'application/x-www-form-urlencoded', 'x-home-region': 'us1' });
  t.ok('text' in red.body);
  const params = new URLSearchParams((red.body as { text: string }).text);
  t.same([...params.keys()], ['AcmeSid', 'From', 'To', 'Body', 'nick', 'NumMedia'], 'keys and order kept');
  t.match(params.get('From'), /^whatsapp:\+555\d{8}$/);
  t.equal(params.get('Body'), 'Text 1');
  t.equal(params.get('nick'), 'Person 1', "the mapping's keys apply to form fields too");
  t.equal(params.get('NumMedia'), '0');
  t.match(params.get('AcmeSid'), /^[A-Z]{2}[0-9a-z]{32}$/);
  t.not(params.get('AcmeSid'), 'SM0123456789abcdef0123456789abcdef');
  t.equal(red.query.from, params.get('From')!.slice('whatsapp:+'.length), 'the same number in query and body gets the same fake');
  t.equal(red.query.tenant, 'acme');

  const json = redactWebhook({ rawBody: JSON.stringify(acme), headers: { 'content-type': 'application/json', 'x-acme-signature-256': 'sha256=abc' }, query: {} }, { signatureHeader: 'X-Acme-Signature-256', keys: ACME });
  t.same(json.headers, { 'content-type': 'application/json' }, 'the signature header is left to the golden runner, which signs with the test secret');
  t.same(json.body, { json: new Redactor(ACME).value(acme) });
});

// Every shipped mapping, whatever its BSP: its webhook fixtures redact with its own fixtures.redact
// without losing their shape, and no number under a key it calls a phone key is left.
const MAPPINGS = fileURLToPath(new URL('../../mappings', import.meta.url));
for (const dir of mappingDirs(MAPPINGS)) {
  t.test(`${dir.slice(MAPPINGS.length + 1)}: its webhook fixtures redact with its key names`, async (t) => {
    const loaded = loadMapping(dir);
    if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.message).join('; '));
    const keys = loaded.mapping.fixtures.redact;
    const kinds = keyKinds(keys);
    let inputs = 0;
    for (const c of readdirSync(join(dir, 'fixtures'), { withFileTypes: true })) {
      const at = (f: string) => join(dir, 'fixtures', c.name, f);
      if (!c.isDirectory() || !existsSync(at('fixture.yaml')) || !/kind: webhook/.test(readFileSync(at('fixture.yaml'), 'utf8'))) continue;
      // a form body is checked as the object of its fields, which is how the redaction reads it
      const form = existsSync(at('input.txt')) ? new URLSearchParams(readFileSync(at('input.txt'), 'utf8')) : undefined;
      if (!form && !existsSync(at('input.json'))) continue;
      const raw = form ? Object.fromEntries(form) : (JSON.parse(readFileSync(at('input.json'), 'utf8')) as unknown);
      const r = new Redactor(keys);
      const out = form ? Object.fromEntries(new URLSearchParams(r.form(form.toString()))) : r.value(raw);
      t.same(leaves(out).map(([p, v]) => [p, typeof v]), leaves(raw).map(([p, v]) => [p, typeof v]), `${c.name}: same paths, same JSON types`);
      const text = JSON.stringify(out);
      const phones = leaves(raw).filter(([p, v]) => kindOfKey(/\.([^.[\]]+)(\[\d+\])*$/.exec(p)?.[1], kinds) === 'phone' && /\d{6,}/.test(String(v)));
      for (const [p, v] of phones) for (const run of String(v).match(/\d{6,}/g)!) if (!/^555/.test(run)) t.notOk(text.includes(run), `${c.name}: ${p} is gone`);
      inputs++;
    }
    t.pass(`${inputs} webhook inputs`);
  });
}
