// The console playground's admin routes against the running host: the token, the mapping and fixture
// lists, a fixture's run equal to its golden file, an edit run without saving, errors with the line
// to highlight, size limits, and the explain rows. The mapping is the demo tenant's, whichever it is.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { parse as parseYaml, parseDocument } from 'yaml';
import { MAX_INPUT_BYTES, MAX_YAML_BYTES, oneAtATime } from '../../engine/host/playground.js';
import type { ExplainEntry } from '../../engine/host/playground-explain.js';
import { position, type FixtureSummary, type RunResult } from '../../engine/host/playground-run.js';
import { startStack } from '../support/stack.js';

const ADMIN = 'Bearer e2e-admin-token-0123456789';

const s = await startStack();
t.teardown(() => s.close());

async function call(path: string, opts: { method?: string; body?: unknown; auth?: string | null } = {}) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const auth = opts.auth === undefined ? ADMIN : opts.auth;
  if (auth !== null) headers.authorization = auth;
  const res = await request(`${s.host.url}${path}`, { method: (opts.method ?? 'GET') as 'GET', headers, body: opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body) });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}
const run = async (body: Record<string, unknown>) => call('/v1/admin/playground/run', { method: 'POST', body });

const status = await call('/v1/admin/status');
const name = (status.body.tenants as { id: string; provider: string }[]).find((x) => x.id === 'demo')!.provider;
const mappingDir = join(s.host.registry.get(name)!.dir);
const expected = (c: string) => JSON.parse(readFileSync(join(mappingDir, 'fixtures', c, 'expected.json'), 'utf8')) as unknown;
const onDisk = readFileSync(join(mappingDir, 'mapping.yaml'), 'utf8');

t.test('every playground route refuses a missing or wrong token', async (t) => {
  const routes: [string, string][] = [
    ['GET', '/v1/admin/playground/mappings'],
    ['GET', `/v1/admin/playground/mappings/${name}`],
    ['GET', `/v1/admin/playground/mappings/${name}/fixtures/x`],
    ['POST', '/v1/admin/playground/run'],
  ];
  for (const [method, path] of routes) {
    for (const auth of [null, 'Bearer wrong-token', ADMIN.slice(7)]) {
      const r = await call(path, { method, auth, body: method === 'POST' ? { mapping: name, kind: 'send', input: '{}' } : undefined });
      t.equal(r.status, 401, `${method} ${path} with ${auth === null ? 'no token' : auth}`);
      t.equal(r.body.code, 'WAB_UNAUTHORIZED');
    }
  }
  const get = await call('/v1/admin/playground/run');
  t.equal(get.status, 404, 'no GET runs anything');
});

const list = await call('/v1/admin/playground/mappings');
const mine = (list.body.mappings as { name: string; version: string; fixtures: FixtureSummary[] }[]).find((m) => m.name === name)!;
const firstOf = (kind: string) => mine.fixtures.find((f) => f.kind === kind)!.name;

t.test('lists the loaded mappings with their fixture cases, and a mapping\'s YAML', async (t) => {
  t.equal(list.status, 200);
  t.same((list.body.mappings as { name: string }[]).map((m) => m.name), s.host.registry.names());
  t.equal(mine.version, s.host.registry.get(name)!.version);
  for (const kind of ['send', 'response', 'webhook']) t.ok(mine.fixtures.some((f) => f.kind === kind), `a ${kind} case`);
  t.ok(mine.fixtures.every((f) => ['send', 'response', 'webhook'].includes(f.kind)), 'only the stages the playground runs');
  const one = await call(`/v1/admin/playground/mappings/${name}`);
  t.equal(one.body.yaml, onDisk);
  t.ok((one.body.expressions as { path: string }[]).length > 0);
  const fx = await call(`/v1/admin/playground/mappings/${name}/fixtures/${firstOf('webhook')}`);
  t.equal(fx.body.kind, 'webhook');
  t.equal(fx.body.input, readFileSync(join(mappingDir, 'fixtures', firstOf('webhook'), 'input.json'), 'utf8'));
  t.equal((await call(`/v1/admin/playground/mappings/${name}/fixtures/..`)).status, 404, 'no path out of fixtures/');
  t.equal((await call(`/v1/admin/playground/mappings/${name}/fixtures/no-such-case`)).status, 404);
  t.equal((await call('/v1/admin/playground/mappings/no-such-mapping')).status, 404);
});

t.test('a fixture runs to its golden output; a pasted copy of its input runs the same', async (t) => {
  for (const kind of ['webhook', 'response']) {
    const c = firstOf(kind);
    const r = await run({ mapping: name, kind, fixture: c });
    t.equal(r.status, 200, `${kind} ${c}`);
    t.same((r.body as unknown as RunResult).output, expected(c), `${kind} ${c} equals expected.json`);
  }
  // The page sends the case with its (possibly edited) body: an edited body is signed anew, as the BSP would.
  const w = mine.fixtures.find((f) => f.kind === 'webhook' && ((expected(f.name) as { events?: unknown[] }).events?.length ?? 0) > 0)!.name;
  const body = (await call(`/v1/admin/playground/mappings/${name}/fixtures/${w}`)).body.input as string;
  const reformatted = await run({ mapping: name, kind: 'webhook', fixture: w, input: JSON.stringify(JSON.parse(body)) });
  t.not(JSON.stringify(JSON.parse(body)), body, 'a different text');
  t.same(reformatted.body.output, expected(w), 'the same events');

  const c = firstOf('send');
  const fixture = await run({ mapping: name, kind: 'send', fixture: c });
  const input = (await call(`/v1/admin/playground/mappings/${name}/fixtures/${c}`)).body.input as string;
  const pasted = await run({ mapping: name, kind: 'send', input });
  t.same(pasted.body.output, fixture.body.output, 'pasted input, same output');
  const want = expected(c) as { request: { method: string; url: string; headers: Record<string, string>; body: unknown } };
  const got = (fixture.body as unknown as RunResult).output as typeof want;
  t.same([got.request.method, got.request.url, got.request.body, Object.keys(got.request.headers)], [want.request.method, want.request.url, want.request.body, Object.keys(want.request.headers)], 'the send request equals expected.json but for secrets');
  // No secret value of the fixtures' settings reaches the page, wherever the mapping put it.
  const rows = (fixture.body as unknown as RunResult).explain;
  t.ok(rows.some((e) => e.slot === 'send.request.url'), 'the send slots are explained');
  const fns = rows.flatMap((e) => e.functions);
  t.ok(fns.every((f) => /mapping\.yaml:\d+:\d+$/.test(f.where)), 'the functions compiled into a slot, each with where it is declared');
  const calls = (fixture.body as unknown as RunResult).functions;
  if (parseDocument(onDisk).has('functions')) {
    t.ok(fns.length > 0 && calls.length > 0, 'the functions called are listed');
    t.notOk((fixture.body as unknown as RunResult).functionsNote, 'the traced run agreed with the real one');
    for (const f of calls) {
      t.ok(f.calls > 0 && f.us >= 0 && f.values.length > 0 && f.values.length <= f.calls, `$${f.name}: calls, µs and values`);
      t.ok(f.slots.every((slot) => rows.some((e) => e.slot === slot)), `$${f.name}: called from evaluated slots`);
      t.match(f.where, /mapping\.yaml:\d+:\d+$/);
    }
  }
  const secrets = (await call(`/v1/admin/playground/mappings/${name}`)).body.settings as { name: string; secret: boolean }[];
  const values = parseYaml(readFileSync(join(mappingDir, 'fixtures', 'settings.yaml'), 'utf8')) as Record<string, unknown>;
  const secretValues = secrets.filter((x) => x.secret && typeof values[x.name] === 'string').map((x) => values[x.name] as string);
  t.ok(secretValues.length > 0, 'the mapping declares a secret setting');
  const text = JSON.stringify(fixture.body);
  for (const v of secretValues) t.notOk(text.includes(v), 'secret value absent from output and explain');
  t.match(text, /«secret:|\[redacted\]/, 'shown as redacted');
});

t.test('explain: every slot evaluated, its value and time, fast path or jsonata', async (t) => {
  const c = firstOf('response');
  const fast = (await run({ mapping: name, kind: 'response', fixture: c })).body as unknown as RunResult;
  t.ok(fast.explain.length > 0);
  t.ok(fast.explain.every((e) => e.path === 'fast' && typeof e.us === 'number' && e.us >= 0 && e.value !== undefined && /mapping\.yaml:\d+:\d+$/.test(e.where ?? '')), 'the shipped mapping runs on the fast path');
  t.ok(fast.explain.some((e) => e.slot === 'send.response.success'));
  // order-by is one construct the compiler leaves to jsonata: the same test behind a sort that is always true.
  const doc = parseDocument(onDisk);
  doc.setIn(['send', 'response', 'success'], `([1]^($))[0] = 1 and (${String(doc.getIn(['send', 'response', 'success']))})`);
  const mixed = await run({ mapping: name, kind: 'response', fixture: c, yaml: doc.toString() });
  t.equal(mixed.status, 200);
  const rows = (mixed.body as unknown as RunResult).explain;
  const success = rows.find((e: ExplainEntry) => e.slot === 'send.response.success')!;
  t.equal(success.path, 'jsonata');
  t.match(success.declined, /order-by/);
  t.ok(rows.some((e) => e.path === 'fast'), 'the other slots stay on the fast path');
  t.same((mixed.body as unknown as RunResult).output, expected(c), 'same answer either way');

  // A function added in the page: its one call, its value, where it is declared.
  const probe = parseDocument(onDisk);
  probe.setIn(['functions', 'pgProbe'], 'function($n) { $n * 2 }');
  probe.setIn(['send', 'response', 'success'], `$pgProbe(21) = 42 and (${String(probe.getIn(['send', 'response', 'success']))})`);
  const probed = (await run({ mapping: name, kind: 'response', fixture: c, yaml: probe.toString() })).body as unknown as RunResult;
  t.same(probed.output, expected(c));
  const f = probed.functions.find((x) => x.name === 'pgProbe');
  t.same([f?.calls, f?.values, f?.slots], [1, ['42'], ['send.response.success']], 'the call, its value, its slot');
  t.equal(position(f?.where)?.line, probe.toString().split('\n').findIndex((l) => l.includes('pgProbe:')) + 1, 'declared on its line');
  t.ok(probed.explain.find((e) => e.slot === 'send.response.success')!.functions.some((x) => x.name === 'pgProbe'));
});

t.test('an edit runs without saving; its errors carry the line to highlight', async (t) => {
  const c = firstOf('response');
  const lines = (text: string, needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;

  const edited = parseDocument(onDisk);
  edited.setIn(['send', 'response', 'success'], 'false');
  edited.setIn(['send', 'response', 'error'], '{"code": 2003, "message": "edited in the playground"}');
  const r = await run({ mapping: name, kind: 'response', fixture: c, yaml: edited.toString() });
  t.equal(r.status, 200);
  t.same(r.body.output, { answer: { status: 'failure', error: { code: 2003, message: 'edited in the playground' } } });
  t.equal((r.body as unknown as RunResult).mapping.edited, true);
  t.not((r.body as unknown as RunResult).mapping.version, mine.version);
  t.equal(readFileSync(join(mappingDir, 'mapping.yaml'), 'utf8'), onDisk, 'nothing written');
  t.equal(s.host.registry.get(name)!.version, mine.version, 'the loaded mapping is unchanged');

  const broken = parseDocument(onDisk);
  broken.setIn(['send', 'response', 'success'], 'status = = 200 /*broken-expression*/');
  const bad = broken.toString();
  const compile = await run({ mapping: name, kind: 'response', fixture: c, yaml: bad });
  t.equal(compile.status, 422);
  t.equal(compile.body.code, 'WAB_MAPPING_COMPILE');
  t.equal(compile.body.line, lines(bad, 'broken-expression'), 'the line of the broken expression');
  t.match(compile.body.message, /send\.response\.success/);

  const yamlBad = `${onDisk}\nbogus: [unclosed\n`;
  const y = await run({ mapping: name, kind: 'response', fixture: c, yaml: yamlBad });
  t.equal(y.status, 422);
  t.equal(y.body.code, 'WAB_MAPPING_YAML');
  t.ok((y.body.line as number) >= lines(yamlBad, 'bogus'), 'at or after the broken line');

  const schemaBad = `${onDisk}\nnotAKey: 1\nalsoNotAKey: 2\n`;
  const sc = await run({ mapping: name, kind: 'response', fixture: c, yaml: schemaBad });
  t.equal(sc.status, 422);
  t.equal(sc.body.code, 'WAB_MAPPING_SCHEMA');
  t.equal(sc.body.line, lines(schemaBad, 'notAKey'), 'the first problem\'s line');
  t.same((sc.body.errors as { line: number }[]).map((e) => e.line), [lines(schemaBad, 'notAKey'), lines(schemaBad, 'alsoNotAKey')], 'every problem, each with its line');
  t.match(sc.body.message, /notAKey[^]*\n[^]*alsoNotAKey/, 'all of them in the message');

  const failing = parseDocument(onDisk);
  failing.setIn(['send', 'response', 'success'], '$error("boom from the playground")');
  const text = failing.toString();
  const ev = await run({ mapping: name, kind: 'response', fixture: c, yaml: text });
  t.equal(ev.status, 200, 'a mapping that fails on this input is a run result');
  const err = (ev.body as unknown as RunResult).error!;
  t.equal(err.code, 'WAB_MAPPING_EVAL');
  t.equal(err.line, lines(text, 'boom from the playground'));
  t.match(err.message, /boom from the playground/);

  const loop = parseDocument(onDisk);
  loop.setIn(['send', 'response', 'success'], '($f := function($n) { $f($n + 1) }; $f(0))');
  const l = await run({ mapping: name, kind: 'response', fixture: c, yaml: loop.toString() });
  t.equal(l.status, 200);
  t.match((l.body as unknown as RunResult).error?.code, /WAB_MAPPING_(DEPTH|TIMEOUT)/, 'a runaway edit ends on its limits');
});

t.test('runs take turns: many at once each answer the golden output (or 429 past the queue)', async (t) => {
  const c = firstOf('webhook');
  // Distinct edits: each one is compiled afresh, and none takes another's copy.
  const all = await Promise.all(Array.from({ length: 12 }, (_, i) => run({ mapping: name, kind: 'webhook', fixture: c, yaml: `${onDisk}\n# edit ${i}\n` })));
  const statuses = all.map((r) => r.status);
  t.ok(statuses.every((x) => x === 200 || x === 429), `only 200 and 429 (${statuses.join(' ')})`);
  t.ok(statuses.filter((x) => x === 200).length >= 5, 'the first ones and those queued behind them are run');
  t.ok(all.every((r) => r.status !== 200 || (r.body as unknown as RunResult).mapping.edited), 'each on its edit');
  for (const r of all) if (r.status === 200) t.same(r.body.output, expected(c));
  for (const r of all) if (r.status === 429) t.equal(r.body.code, 'WAB_PLAYGROUND_BUSY');
});

t.test('oneAtATime: in order, one at a time, none past the queue', async (t) => {
  const take = oneAtATime(2);
  const order: string[] = [];
  let release!: () => void;
  const a = take(() => new Promise<string>((r) => (release = () => r('a'))).then((v) => (order.push(v), v)));
  const b = take(async () => (order.push('b'), 'b'));
  t.equal(take(async () => 'c'), undefined, 'a third waiting one is refused');
  await new Promise((r) => setTimeout(r, 20));
  t.same(order, [], 'b waits for a');
  release();
  t.same(await Promise.all([a, b]), ['a', 'b']);
  t.same(order, ['a', 'b']);
  const failing = take(async () => Promise.reject(new Error('x')));
  await t.rejects(failing!, /x/);
  t.equal(await take(async () => 'd'), 'd', 'a failed run frees its place');
});

t.test('the screen module loads as an ES module with mount()', async (t) => {
  // (a browser module without type declarations: imported by a path the compiler does not follow)
  const path = '../../engine/host/console/screens/playground.js';
  const screen = (await import(path)) as { mount?: unknown };
  t.type(screen.mount, 'function');
});

t.test('bad requests: 413 above the limits, 400 on a malformed body, 422 on bad settings', async (t) => {
  const big = await run({ mapping: name, kind: 'send', input: `"${'x'.repeat(MAX_INPUT_BYTES)}"` });
  t.equal(big.status, 413);
  t.equal(big.body.code, 'WAB_PLAYGROUND_TOO_LARGE');
  const bigYaml = await run({ mapping: name, kind: 'send', input: '{}', yaml: `# ${'y'.repeat(MAX_YAML_BYTES)}` });
  t.equal(bigYaml.status, 413);
  t.equal((await call('/v1/admin/playground/run', { method: 'POST', body: '{not json' })).status, 400);
  t.equal((await run({ mapping: name, kind: 'media', input: '{}' })).status, 400);
  t.equal((await run({ mapping: name, kind: 'send' })).status, 400, 'input or fixture');
  t.equal((await run({ mapping: 'no-such-mapping', kind: 'send', input: '{}' })).status, 404);
  t.equal((await run({ mapping: name, kind: 'send', fixture: '../x' })).status, 400);
  t.equal((await run({ mapping: name, kind: 'webhook', fixture: firstOf('send') })).status, 400, 'a case of another stage');
  const settings = await run({ mapping: name, kind: 'send', fixture: firstOf('send'), settings: { notASetting: 1 } });
  t.equal(settings.status, 422);
  t.equal(settings.body.code, 'WAB_SETTINGS_INVALID');
  const notJson = await run({ mapping: name, kind: 'webhook', input: '{broken' });
  t.equal(notJson.status, 400, 'a webhook body that is not JSON');
  t.equal(notJson.body.code, 'WAB_INPUT_INVALID');
});
