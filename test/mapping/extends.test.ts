// `extends`: one mapping built on another (e.g. a BSP that proxies another BSP's API).
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMapping } from '../../engine/mapping/loader.js';
import { planSend } from '../../engine/mapping/send.js';
import { toCanonical } from '../../engine/mapping/pipeline.js';
import { MappingRegistry } from '../../engine/host/registry.js';

const HEADER = '# yaml-language-server: $schema=../../schemas/mapping.schema.json\n';
const PARENT = `${HEADER}name: parent
title: Parent
settings:
  token: { type: string, secret: true }
  phoneId: { type: string }
  baseUrl: { type: string, default: "https://parent.test" }
functions:
  body: |
    function($m) { {"to": $m.to, "text": $m.text.body} }
send:
  request:
    method: POST
    url: settings.baseUrl & "/" & settings.phoneId & "/messages"
    headers:
      Authorization: '"Bearer " & settings.token'
    body: $body(message)
  response:
    success: status = 200
    error: '{"code": 2004, "message": "x"}'
`;

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'wabridge-extends-'));
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), text);
  }
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

const message = () => {
  const c = toCanonical(JSON.stringify({ to: '919999999999', msgId: '1|2|3|4', type: 'text', isTemplate: false, text: { body: 'hi' } }));
  if (!c.ok) throw new Error('fixture message invalid');
  return c.message;
};

t.test('the child overrides keys, removes some with null, and inherits the rest', async (t) => {
  const root = tree({
    'parent/mapping.yaml': PARENT,
    'child/mapping.yaml': `${HEADER}name: child\ntitle: Child\nextends: parent\nsettings:\n  phoneId: null\n  token: null\n  apiKey: { type: string, secret: true }\n  baseUrl: { type: string, default: "https://child.test" }\nsend:\n  request:\n    url: settings.baseUrl & "/messages"\n    headers:\n      Authorization: null\n      X-Api-Key: settings.apiKey\n`,
  });
  const r = loadMapping(join(root, 'child'));
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
  t.same(Object.keys(r.mapping.settings).sort(), ['apiKey', 'baseUrl']);
  t.same(r.mapping.extends, ['parent']);
  const plan = await planSend(r.mapping, message(), { apiKey: 'k', baseUrl: 'https://child.test' });
  t.same(plan, { kind: 'request', request: { method: 'POST', url: 'https://child.test/messages', headers: { 'X-Api-Key': 'k', 'Content-Type': 'application/json' }, body: '{"to":"919999999999","text":"hi"}' } }, 'inherited body function, own url and headers');
  const parent = loadMapping(join(root, 'parent'));
  t.ok(parent.ok && parent.mapping.version !== r.mapping.version, 'versions differ');
});

t.test('errors in inherited expressions point into the parent file', async (t) => {
  const root = tree({
    'parent/mapping.yaml': PARENT.replace('"text": $m.text.body}', '"text": $m.text.body]'),
    'child/mapping.yaml': `${HEADER}name: child\ntitle: Child\nextends: parent\n`,
  });
  const r = loadMapping(join(root, 'child'));
  t.notOk(r.ok);
  if (!r.ok) t.match(r.errors[0]!.where, /parent\/mapping\.yaml:10:\d+$/);
});

t.test('cycles, missing parents and the folder name are reported', async (t) => {
  const root = tree({
    'a/mapping.yaml': `${HEADER}name: a\ntitle: A\nextends: b\n`,
    'b/mapping.yaml': `${HEADER}name: b\ntitle: B\nextends: a\n`,
    'c/mapping.yaml': `${HEADER}name: c\ntitle: C\nextends: nowhere\n`,
    'd/mapping.yaml': `${HEADER}name: parent\ntitle: D\nextends: parent\n`,
    'parent/mapping.yaml': PARENT,
  });
  const a = loadMapping(join(root, 'a'));
  t.match(!a.ok && a.errors[0]!.message, /cycle/);
  const c = loadMapping(join(root, 'c'));
  t.equal(!c.ok && c.errors[0]!.code, 'WAB_MAPPING_NOT_FOUND');
  t.match(!c.ok && c.errors[0]!.where, /c\/mapping\.yaml:4:\d+$/, 'at the extends line');
  const d = loadMapping(join(root, 'd'));
  t.match(!d.ok && d.errors[0]!.message, /must equal the folder name 'd'/, 'the child must name itself');
});

t.test('editing the parent reloads the child', async (t) => {
  const root = tree({
    'parent/mapping.yaml': PARENT,
    'child/mapping.yaml': `${HEADER}name: child\ntitle: Child\nextends: parent\n`,
  });
  const reg = new MappingRegistry(root);
  reg.loadAll();
  const before = reg.get('child')!.version;
  writeFileSync(join(root, 'parent/mapping.yaml'), `${PARENT}# edited\n`);
  await reg.reload('parent');
  t.not(reg.get('child')!.version, before, 'child picked up the parent edit');
});
