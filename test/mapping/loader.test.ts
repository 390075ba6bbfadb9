// Loading a mapping: schema problems, YAML problems and cross-checks are reported with a dotted path
// and the file:line:col of the offending key or value, all at once.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WabError } from '../../engine/mapping/errors.js';
import { loadMapping, mappingDirs, type LoadResult } from '../../engine/mapping/loader.js';

const HEADER = '# yaml-language-server: $schema=../../schemas/mapping.schema.json\n';
const EXAMPLE = fileURLToPath(new URL('./example-bsp', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'wab-loader-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let seq = 0;

const VALID = `${HEADER}name: m
title: T
settings:
  key: { type: string }
send:
  request:
    method: POST
    url: '"https://x.test"'
  response:
    success: "true"
    error: '{"code": 2004}'
`;

function folder(name = 'm'): string {
  const dir = join(root, String(seq++), name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function load(text: string, name = 'm', extra?: (dir: string) => void): LoadResult {
  const dir = folder(name);
  writeFileSync(join(dir, 'mapping.yaml'), text);
  extra?.(dir);
  return loadMapping(dir);
}

function errorsOf(r: LoadResult): WabError[] {
  if (r.ok) throw new Error('expected the mapping not to load');
  return r.errors;
}

/** "line:col" (1-based) of the first occurrence of `needle` in `text`. */
function posOf(text: string, needle: string): string {
  const at = text.indexOf(needle);
  if (at < 0) throw new Error(`${JSON.stringify(needle)} not found`);
  const before = text.slice(0, at);
  return `${before.split('\n').length}:${at - (before.lastIndexOf('\n') + 1) + 1}`;
}

function lineCol(e: WabError | undefined): string | undefined {
  return /mapping\.yaml:(\d+:\d+)$/.exec(e?.where ?? '')?.[1];
}

/** The dotted path a schema message starts with ("send.request: missing ..."). */
function pathOf(e: WabError | undefined): string | undefined {
  const rest = e?.where ? e.message.slice(e.where.length + 2) : e?.message;
  return rest?.split(': ')[0];
}

t.test('the valid base mapping loads', async (t) => {
  const r = load(VALID);
  t.ok(r.ok, r.ok ? 'loads' : r.errors.map((e) => e.message).join('\n'));
});

t.test('schema errors name the dotted path and point at the offending key or value', async (t) => {
  t.test('unknown top-level key', async (t) => {
    const text = VALID.replace('title: T\n', 'title: T\ncolour: red\n');
    const [e, ...rest] = errorsOf(load(text));
    t.same(rest, []);
    t.equal(e?.code, 'WAB_MAPPING_SCHEMA');
    t.match(e?.message, /colour/, 'names the unknown key');
    t.equal(lineCol(e), posOf(text, 'colour'), 'points at the unknown key, not at the top of the document');
  });

  t.test('unknown nested key', async (t) => {
    const text = VALID.replace("    url: '\"https://x.test\"'\n", "    url: '\"https://x.test\"'\n    bodyy: '{}'\n");
    const [e] = errorsOf(load(text));
    t.equal(e?.code, 'WAB_MAPPING_SCHEMA');
    t.match(e?.message, /send\.request\b.*bodyy/, 'names the object and the unknown key');
    t.equal(lineCol(e), posOf(text, 'bodyy'), 'points at the unknown key, not at the first key of send.request');
  });

  t.test('missing send.request.url', async (t) => {
    const text = VALID.replace("    url: '\"https://x.test\"'\n", '');
    const [e, ...rest] = errorsOf(load(text));
    t.same(rest, []);
    t.equal(e?.code, 'WAB_MAPPING_SCHEMA');
    t.equal(pathOf(e), 'send.request');
    t.match(e?.message, /'url'/);
    t.equal(lineCol(e), posOf(text, 'method: POST'), 'the send.request object that lacks it');
  });

  t.test('bad method', async (t) => {
    const text = VALID.replace('method: POST', 'method: FETCH');
    const [e, ...rest] = errorsOf(load(text));
    t.same(rest, []);
    t.equal(e?.code, 'WAB_MAPPING_SCHEMA');
    t.equal(pathOf(e), 'send.request.method');
    t.match(e?.message, /"POST"/, 'lists the allowed methods');
    t.equal(lineCol(e), posOf(text, 'FETCH'), 'the value');
  });

  t.test('setting with a bad type', async (t) => {
    const text = VALID.replace('{ type: string }', '{ type: text }');
    const [e] = errorsOf(load(text));
    t.equal(e?.code, 'WAB_MAPPING_SCHEMA');
    t.equal(pathOf(e), 'settings.key.type');
    t.equal(lineCol(e), posOf(text, 'text }'));
  });

  t.test('setting flag of the wrong type', async (t) => {
    const text = VALID.replace('{ type: string }', '{ type: string, secret: "yes" }');
    const [e] = errorsOf(load(text));
    t.equal(e?.code, 'WAB_MAPPING_SCHEMA');
    t.equal(pathOf(e), 'settings.key.secret');
    t.equal(lineCol(e), posOf(text, '"yes"'));
  });

  t.test('a function may not be called reject (it would shadow $reject)', async (t) => {
    const text = VALID.replace('send:\n', 'functions:\n  reject: "function($x) { $x }"\nsend:\n');
    const errors = errorsOf(load(text));
    t.ok(errors.length > 0);
    t.ok(errors.every((e) => e.code === 'WAB_MAPPING_SCHEMA'));
  });

  t.test('an empty expression', async (t) => {
    const text = VALID.replace('success: "true"', 'success: ""');
    const [e] = errorsOf(load(text));
    t.equal(e?.code, 'WAB_MAPPING_SCHEMA');
    t.equal(pathOf(e), 'send.response.success');
    t.equal(lineCol(e), posOf(text, '""'));
  });
});

t.test('every problem in a file is reported at once', async (t) => {
  t.test('several schema errors', async (t) => {
    const text = VALID.replace('title: T', 'title: 42').replace('method: POST', 'method: FETCH').replace('{ type: string }', '{ type: text }');
    const errors = errorsOf(load(text));
    t.ok(errors.every((e) => e.code === 'WAB_MAPPING_SCHEMA'));
    t.same(errors.map(pathOf).sort(), ['send.request.method', 'settings.key.type', 'title'], 'one error per problem');
    t.same(errors.map(lineCol).sort(), [posOf(text, 'FETCH'), posOf(text, 'text }'), posOf(text, '42')].sort(), 'each at its own place');
  });

  t.test('several compile errors, in functions and expressions', async (t) => {
    const text = VALID.replace('send:\n', 'functions:\n  f: "function($x) { $x + }"\n  g: "function($x) { $x }"\nsend:\n')
      .replace("url: '\"https://x.test\"'", 'url: $g(1) oops')
      .replace('success: "true"', 'success: "status = )"');
    const errors = errorsOf(load(text));
    t.same(errors.map((e) => e.code), ['WAB_MAPPING_COMPILE', 'WAB_MAPPING_COMPILE', 'WAB_MAPPING_COMPILE']);
    t.same(errors.map(lineCol), [posOf(text, '}"\n  g'), posOf(text, 'oops'), posOf(text, ')"')]);
  });

  t.test('cross-checks together: name, signature secret, contracts', async (t) => {
    const text =
      VALID.replace('title: T\n', 'title: T\ncontracts:\n  requestBody: request.schema.json\n') +
      'webhook:\n  signature:\n    header: X-Sig\n    algorithm: hmac-sha256\n    encoding: hex\n    secret: appSecret\n  events: "[]"\n';
    const errors = errorsOf(load(text, 'other-name'));
    t.same(errors.map((e) => e.code), ['WAB_MAPPING_SCHEMA', 'WAB_MAPPING_SCHEMA', 'WAB_MAPPING_SCHEMA']);
    t.same(errors.map(pathOf).sort(), ['contracts.requestBody', 'name', 'webhook.signature.secret']);
  });
});

t.test('cross-checks', async (t) => {
  t.test('name must equal the folder name', async (t) => {
    const [e, ...rest] = errorsOf(load(VALID, 'not-m'));
    t.same(rest, []);
    t.equal(e?.code, 'WAB_MAPPING_SCHEMA');
    t.equal(pathOf(e), 'name');
    t.match(e?.message, /not-m/, 'names the folder');
    t.equal(lineCol(e), posOf(VALID, 'm\ntitle'), 'the name value');
  });

  t.test('signature.secret must be a declared setting', async (t) => {
    const webhook = (secret: string) => `webhook:\n  signature:\n    header: X-Sig\n    algorithm: hmac-sha256\n    encoding: hex\n    secret: ${secret}\n  events: "[]"\n`;
    const text = VALID + webhook('appSecret');
    const [e] = errorsOf(load(text));
    t.equal(e?.code, 'WAB_MAPPING_SCHEMA');
    t.equal(pathOf(e), 'webhook.signature.secret');
    t.match(e?.message, /appSecret/);
    t.equal(lineCol(e), posOf(text, 'appSecret'));
    t.ok(load(VALID + webhook('key')).ok, 'a declared setting is accepted');
  });

  t.test('contracts files must exist beside the mapping', async (t) => {
    const text = VALID.replace('title: T\n', 'title: T\ncontracts:\n  webhookBody: hook.schema.json\n');
    const [e] = errorsOf(load(text));
    t.equal(e?.code, 'WAB_MAPPING_SCHEMA');
    t.equal(pathOf(e), 'contracts.webhookBody');
    t.match(e?.message, /hook\.schema\.json/);
    t.equal(lineCol(e), posOf(text, 'hook.schema.json'));
    const present = load(text, 'm', (dir) => writeFileSync(join(dir, 'hook.schema.json'), '{"type": "object"}'));
    t.ok(present.ok, 'loads once the file is there');
  });

  t.test('a setting pattern must be a valid regular expression', async (t) => {
    const text = VALID.replace('{ type: string }', '{ type: string, pattern: "([a-z" }');
    const errors = errorsOf(load(text));
    t.ok(errors.length > 0);
    t.ok(errors.every((e) => e.code === 'WAB_MAPPING_SCHEMA'));
    t.ok(errors.some((e) => /settings\.key\.pattern/.test(e.message)), 'names settings.key.pattern');
  });

  t.test('the schema comment on the first line is required', async (t) => {
    const text = VALID.slice(HEADER.length);
    const [e] = errorsOf(load(text));
    t.equal(e?.code, 'WAB_MAPPING_SCHEMA');
    t.equal(lineCol(e), '1:1');
  });
});

t.test('invalid YAML is WAB_MAPPING_YAML with a position', async (t) => {
  t.test('duplicate key', async (t) => {
    const text = VALID.replace('title: T\n', 'title: T\ntitle: U\n');
    const [e, ...rest] = errorsOf(load(text));
    t.same(rest, []);
    t.equal(e?.code, 'WAB_MAPPING_YAML');
    t.equal(lineCol(e), posOf(text, 'title: U'), 'the second "title"');
  });

  t.test('bad indentation', async (t) => {
    const text = VALID.replace('  request:\n', ' request:\n');
    const [e] = errorsOf(load(text));
    t.equal(e?.code, 'WAB_MAPPING_YAML');
    t.equal(lineCol(e)?.split(':')[0], posOf(text, '  response:').split(':')[0], 'the line whose indentation disagrees with " request:"');
  });

  t.test('unclosed flow sequence', async (t) => {
    const text = VALID.replace('title: T', 'title: [T');
    const [e] = errorsOf(load(text));
    t.equal(e?.code, 'WAB_MAPPING_YAML');
    t.match(lineCol(e), /^\d+:\d+$/);
  });

  t.test('no mapping.yaml at all', async (t) => {
    const r = loadMapping(folder());
    t.equal(errorsOf(r)[0]?.code, 'WAB_MAPPING_NOT_FOUND');
  });
});

t.test('mappingDirs', async (t) => {
  const mappings = join(root, 'mappings-root');
  for (const name of ['b', 'a']) {
    mkdirSync(join(mappings, name), { recursive: true });
    writeFileSync(join(mappings, name, 'mapping.yaml'), VALID.replace('name: m', `name: ${name}`));
  }
  mkdirSync(join(mappings, 'not-a-mapping'));
  writeFileSync(join(mappings, 'README.md'), 'not a folder');
  t.same(mappingDirs(mappings), [join(mappings, 'a'), join(mappings, 'b')], 'a folder of mappings: every mapping folder, sorted, nothing else');
  t.same(mappingDirs(join(mappings, 'b')), [join(mappings, 'b')], 'one mapping folder: itself');
  t.same(mappingDirs(join(mappings, 'not-a-mapping')), [], 'a folder without mappings');
  t.same(mappingDirs(join(mappings, 'missing')), [], 'a folder that does not exist');
  t.same(mappingDirs(join(mappings, 'README.md')), [], 'a file');
  t.ok(mappingDirs(fileURLToPath(new URL('.', import.meta.url))).includes(EXAMPLE), 'test/mapping holds example-bsp');
});

t.test('the version hash follows the file text', async (t) => {
  const dir = folder();
  const file = join(dir, 'mapping.yaml');
  const version = () => {
    const r = loadMapping(dir);
    if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
    return r.mapping.version;
  };
  writeFileSync(file, VALID);
  const v1 = version();
  t.match(v1, /^[0-9a-f]{12}$/);
  t.equal(version(), v1, 'same text, same version');
  writeFileSync(file, `${VALID}# a comment changes the text\n`);
  const v2 = version();
  t.not(v2, v1, 'changed text, new version');
  writeFileSync(file, VALID);
  t.equal(version(), v1, 'back to the old text, back to the old version');
});

t.test('the example mapping loads with every slot compiled', async (t) => {
  const r = loadMapping(EXAMPLE);
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
  const m = r.mapping;
  t.equal(m.name, 'example-bsp');
  t.equal(m.send.request.method, 'POST');
  t.equal(m.send.request.encoding, 'json', 'encoding defaults to json');
  t.same(m.send.request.headers.map(([name]) => name), ['Authorization', 'X-Trace']);
  t.equal(m.webhook?.signature?.secret, 'webhookSecret');
  t.ok(m.webhook?.handshake, 'handshake compiled');
  t.same(m.expressions.map((e) => e.name).sort(), [
    'send.reject',
    'send.request.body',
    'send.request.headers.Authorization',
    'send.request.headers.X-Trace',
    'send.request.url',
    'send.response.error',
    'send.response.providerMessageId',
    'send.response.success',
    'webhook.events',
    'webhook.handshake.accept',
    'webhook.handshake.match',
    'webhook.handshake.respond',
  ]);
});
