// loadMapping's options for tooling (the console playground): an unsaved text standing for the
// folder's mapping.yaml, and functions rewritten before they are compiled; and what each compiled
// expression says of its origin (where it starts, the functions compiled into it).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { loadMapping, type Mapping } from '../../engine/mapping/loader.js';

const EXAMPLE = fileURLToPath(new URL('./example-bsp', import.meta.url));
const onDisk = readFileSync(join(EXAMPLE, 'mapping.yaml'), 'utf8');
const lineOf = (text: string, needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;

function ok(r: ReturnType<typeof loadMapping>): Mapping {
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
  return r.mapping;
}

t.test('text stands for the file: its errors at its lines, under the file name; the file is untouched', async (t) => {
  const disk = ok(loadMapping(EXAMPLE));
  t.equal(ok(loadMapping(EXAMPLE, undefined, { text: onDisk })).version, disk.version, 'the same text, the same version');

  const doc = parseDocument(onDisk);
  doc.setIn(['send', 'response', 'success'], 'status = = 200');
  const text = doc.toString();
  const r = loadMapping(EXAMPLE, undefined, { text });
  t.notOk(r.ok);
  const e = r.ok ? undefined : r.errors[0];
  t.equal(e?.code, 'WAB_MAPPING_COMPILE');
  t.match(e?.where, new RegExp(`mapping\\.yaml:${lineOf(text, 'status = = 200')}:\\d+$`));

  const edited = parseDocument(onDisk);
  edited.setIn(['send', 'response', 'success'], 'false');
  const m = ok(loadMapping(EXAMPLE, undefined, { text: edited.toString() }));
  t.not(m.version, disk.version);
  t.equal(await m.send.response.success.evaluate({ status: 200 }), false);
  t.equal(readFileSync(join(EXAMPLE, 'mapping.yaml'), 'utf8'), onDisk);
});

t.test('rewriteFunction: each function compiled from the rewritten text; syntax checked on the original', async (t) => {
  const seen: string[] = [];
  const m = ok(loadMapping(EXAMPLE, undefined, { rewriteFunction: (name, text) => (seen.push(name), text.replace('$ps.text', '"rewritten"')) }));
  t.same(seen.sort(), ['media', 'params']);
  const uses = m.expressions.find((e) => e.uses?.some((u) => u.name === 'params'));
  t.ok(uses, 'a slot that calls $params');
  t.match(uses!.source, /"rewritten"/);
  const badText = onDisk.replace('function($ps) { $ps.text }', 'function($ps) { $ps.text ) }');
  const bad = loadMapping(EXAMPLE, undefined, { text: badText, rewriteFunction: (_name, text) => `(${text})` });
  const e = bad.ok ? undefined : bad.errors[0];
  t.match(e?.where, new RegExp(`mapping\\.yaml:${lineOf(badText, '$ps.text )')}:\\d+$`), 'a broken function is reported at its own line, as written');
});

t.test('each compiled expression knows where it starts and which functions it carries', async (t) => {
  const m = ok(loadMapping(EXAMPLE));
  for (const e of m.expressions) t.match(e.where, /mapping\.yaml:\d+:\d+$/, e.name);
  const body = m.send.request.body!;
  t.equal(Number(/:(\d+):\d+$/.exec(body.where!)?.[1]) >= lineOf(onDisk, 'body:'), true, 'at or after the body key');
  for (const u of m.expressions.flatMap((e) => e.uses ?? [])) t.equal(Number(/:(\d+):\d+$/.exec(u.where)?.[1]), lineOf(onDisk, `${u.name}: |`) + 1, `$${u.name} declared on the line after its key`);
});
