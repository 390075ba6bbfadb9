// The admin routes the console reads (overview, the messages behind a campaign count, a quarantined
// webhook exported as fixture files), the audit lines of admin actions, and the console's static files:
// against the real server with the stand-ins.
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { randomBytes } from 'node:crypto';
import { parseDocument } from 'yaml';
import { REDIS_URL, deleteKeys, probeRedis } from '../support/fleet.js';
import { ROOT, eventually, startStack, type Stack } from '../support/stack.js';

const TOKEN = 'e2e-admin-token-0123456789';
const example = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8')) as Record<string, unknown>;

async function call(s: Stack, method: 'GET' | 'POST', path: string, body?: string, token: string | null = TOKEN) {
  const res = await request(`${s.host.url}${path}`, { method, headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body }) });
  const text = await res.body.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.statusCode, headers: res.headers, text, body: json as Record<string, unknown> };
}

const MARKER = 'console-api-unmappable';

/**
 * A webhook the demo's mapping cannot map: the mapping is edited (in the stack's own copy) to fail on
 * inbound webhooks carrying a marker, as a real bug would on some inputs only, so the hot reload
 * takes it; then the simulator posts a user's text with the marker in it.
 */
async function unmappable(s: Stack): Promise<{ quarantined: string[] }> {
  const provider = s.host.config.tenants.get('demo')!.provider;
  const file = join(s.dir, 'mappings', provider, 'mapping.yaml');
  const doc = parseDocument(readFileSync(file, 'utf8'));
  doc.setIn(['webhook', 'events'], `$contains($string(body), "${MARKER}") ? $error("texts like this are not supported yet") : (\n${String(doc.getIn(['webhook', 'events']))})`);
  const good = s.host.registry.get(provider)!.version;
  writeFileSync(file, doc.toString());
  await eventually(() => s.host.registry.get(provider)!.version !== good, 'the broken mapping hot-reloaded', 30_000);
  const before = new Set((await s.host.store.listQuarantined(1000)).map((q) => q.id));
  await s.sim.sendInbound({ from: '919812345678', text: `my real words ${MARKER}` });
  let ids: string[] = [];
  await eventually(async () => (ids = (await s.host.store.listQuarantined(1000)).map((q) => q.id).filter((id) => !before.has(id))).length === 1, 'the webhook quarantined');
  return { quarantined: ids };
}

// The console reads the same routes on either store: everything below runs on SQLite and on Redis.
const redis = await probeRedis(REDIS_URL);
const stores: ('sqlite' | 'redis')[] = redis ? ['sqlite', 'redis'] : ['sqlite'];
if (!redis) t.comment(`console API on Redis skipped: no Redis answered at ${REDIS_URL} (set REDIS_URL)`);
t.teardown(() => redis?.disconnect());

for (const store of stores) t.test(`console API, audit lines and static files (${store} store)`, async (t) => {
  const prefix = `wabtest:console:${randomBytes(6).toString('hex')}:`;
  const s = await startStack({ copyMappings: true, ...(store === 'redis' ? { redis: { url: REDIS_URL, prefix } } : {}) });
  const provider = s.host.config.tenants.get('demo')!.provider;
  t.teardown(async () => {
    await s.close();
    if (redis) await deleteKeys(redis, prefix);
  });

  t.test('every new admin route wants the token', async (t) => {
    for (const [method, path] of [
      ['GET', '/v1/admin/overview'],
      ['GET', '/v1/admin/campaigns/x/messages'],
      ['POST', '/v1/admin/quarantine/1/fixture'],
      ['POST', '/v1/admin/dlq/replay'],
    ] as const) {
      t.equal((await call(s, method, path, undefined, null)).status, 401, `${method} ${path} without a token`);
      t.equal((await call(s, method, path, undefined, 'wrong-token-0123456789')).status, 401, `${method} ${path} with a wrong one`);
    }
  });

  t.test('bad input is a 400 with a message', async (t) => {
    for (const [path, body, why] of [
      ['/v1/admin/dlq/replay', '{not json', /not valid JSON/],
      ['/v1/admin/dlq/replay', '{"ids": "all"}', /ids must be an array/],
      ['/v1/admin/dlq/replay', 'null', /JSON object/],
      ['/v1/admin/quarantine/replay', '[1]', /JSON object/],
      ['/v1/admin/quarantine/1/fixture', '{"case": "../../etc"}', /fixture folder name/],
      ['/v1/admin/quarantine/1/fixture', '{oops', /not valid JSON/],
    ] as const) {
      const r = await call(s, 'POST', path, body);
      t.equal(r.status, 400, `${path} ${body}`);
      t.match(r.body, { code: 'WAB_INPUT_INVALID', message: why });
    }
    for (const q of ['count=statuses.bogus', 'count=__proto__', 'limit=0', 'limit=x']) t.equal((await call(s, 'GET', `/v1/admin/campaigns/c/messages?${q}`)).status, 400, q);
    t.equal((await call(s, 'POST', '/v1/admin/quarantine/424242/fixture', '{}')).status, 404);
    t.same((await call(s, 'POST', '/v1/admin/dlq/replay', '{"ids": []}')).body, { replayed: 0 }, 'an empty list replays nothing');
  });

  t.test('overview and the messages behind each count', async (t) => {
    for (let i = 1; i <= 3; i++) t.match((await s.send({ ...example, msgId: `${i}|campC|b1|1|0` })).body, { status: 'success' });
    s.sim.setScenario({ scenario: 'template', times: 1 });
    t.match((await s.send({ ...example, msgId: '4|campC|b2|1|0' })).body, { status: 'failure' });
    await eventually(() => s.sink.statuses('demo').filter((x) => x.msgId.includes('|campC|')).length === 9, 'the statuses at the sink');
    const report = (await call(s, 'GET', '/v1/admin/campaigns/campC')).body as { tenants: { demo: Record<string, unknown> } };
    await eventually(async () => {
      const r = (await call(s, 'GET', '/v1/admin/campaigns/campC')).body as { tenants: { demo: { statuses: { read: number } } } };
      return r.tenants.demo.statuses.read === 3;
    }, 'the report to catch up');
    const demo = ((await call(s, 'GET', '/v1/admin/campaigns/campC')).body as { tenants: { demo: { messages: number; answers: Record<string, number>; statuses: Record<string, number> } } }).tenants.demo;
    t.ok(report);
    const all = (await call(s, 'GET', '/v1/admin/campaigns/campC/messages')).body as { messages: { msgId: string; tenant: string; answer: string; counts: { statuses: Record<string, number> } }[]; scanned: number };
    t.same(all.messages.map((m) => `${m.tenant} ${m.msgId} ${m.answer}`), ['demo 1|campC|b1|1|0 success', 'demo 2|campC|b1|1|0 success', 'demo 3|campC|b1|1|0 success', 'demo 4|campC|b2|1|0 2001']);
    t.equal(all.scanned, 4);
    for (const path of ['messages', 'answers.success', 'answers.2001', 'statuses.sent', 'statuses.delivered', 'statuses.read']) {
      const rows = (await call(s, 'GET', `/v1/admin/campaigns/campC/messages?count=${path}&tenant=demo`)).body as { messages: unknown[] };
      const [head, key] = path.split('.') as [string, string | undefined];
      const counted = key === undefined ? (demo as unknown as Record<string, number>)[head] : (demo as unknown as Record<string, Record<string, number>>)[head]![key];
      t.equal(rows.messages.length, counted, `the rows behind ${path} are as many as the report counts (${counted})`);
    }
    const paged = (await call(s, 'GET', '/v1/admin/campaigns/campC/messages?limit=2')).body as { messages: { msgId: string }[]; next: string };
    t.same([paged.messages.length, paged.next], [2, '2|campC|b1|1|0']);
    const rest = (await call(s, 'GET', `/v1/admin/campaigns/campC/messages?limit=2&cursor=${encodeURIComponent(paged.next)}`)).body as { messages: { msgId: string }[] };
    t.same(rest.messages.map((m) => m.msgId), ['3|campC|b1|1|0', '4|campC|b2|1|0']);
    t.same(((await call(s, 'GET', '/v1/admin/campaigns/campC/messages?batch=b2')).body as { messages: { msgId: string }[] }).messages.map((m) => m.msgId), ['4|campC|b2|1|0']);

    const o = (await call(s, 'GET', '/v1/admin/overview')).body as { at: number; store: Record<string, unknown>; tenants: { id: string; answers: Record<string, number>; bsp: { count: number; p50: number; buckets: [number | null, number][] }; mapping: { name: string; version: string }; dead: number; quarantined: number }[] };
    t.match(o.store, { kind: store, outboxDead: 0, quarantine: 0 });
    t.same(o.tenants.map((x) => x.id), ['demo', 'keyed']);
    const d = o.tenants[0]!;
    t.ok(d.answers.success! >= 3 && d.answers['2001']! >= 1, JSON.stringify(d.answers));
    t.ok(d.bsp.count >= 4 && d.bsp.p50 > 0, 'BSP latency from the histogram');
    t.equal(d.bsp.buckets.at(-1)![0], null, '+Inf travels as null');
    t.same(d.mapping.version, s.host.registry.get(provider)!.version, 'the mapping version it serves');
    t.same([d.dead, d.quarantined], [0, 0]);
  });

  t.test('a quarantined webhook as fixture files: shown, nothing written, audited', async (t) => {
    const before = s.logs.length;
    const [id] = (await unmappable(s)).quarantined;
    t.ok(id, 'quarantined');
    const r = await call(s, 'POST', `/v1/admin/quarantine/${id}/fixture`, '{"case": "webhook-console-export"}');
    t.equal(r.status, 200);
    const x = r.body as { path: string; files: Record<string, string>; red: boolean; error: { code: string } };
    t.equal(x.path, `mappings/${provider}/fixtures/webhook-console-export/`);
    t.same(Object.keys(x.files).sort(), ['fixture.yaml', 'input.json']);
    t.match(x.files['fixture.yaml'], /kind: webhook/);
    t.notOk(/919812345678|my real words/.test(x.files['input.json']!), 'no real number or text');
    // (Whether it is red depends on the golden runner, which checks no events schema: the browser test's
    // case is one the runner fails too.)
    t.type(x.red, 'boolean', 'whether the loaded mapping still fails on it');
    t.notOk(existsSync(join(ROOT, 'mappings', provider, 'fixtures', 'webhook-console-export')) || existsSync(join(s.dir, 'mappings', provider, 'fixtures', 'webhook-console-export')), 'nothing written under mappings/');
    t.equal(((await call(s, 'POST', `/v1/admin/quarantine/${id}/fixture`, '')).body as { path: string }).path, `mappings/${provider}/fixtures/webhook-quarantined-${id}/`, 'a default case name');

    const r2 = await call(s, 'POST', '/v1/admin/quarantine/replay', JSON.stringify({ ids: [id] }));
    t.match(r2.body, { failed: 1 });
    await call(s, 'POST', '/v1/admin/dlq/replay', '{}');
    const reload = await call(s, 'POST', '/v1/admin/reload');
    t.equal(reload.status, 200);
    // (Only the demo's mapping matters here: in the stack's copy of mappings/, fixtures that point at
    // the repo's examples/ do not resolve.)
    t.match((reload.body as { results: { name: string; ok: boolean }[] }).results.find((r) => r.name === provider), { ok: true }, "the demo's mapping reloads");
    await eventually(() => s.logs.some((l) => l.includes('"action":"reload"')), 'the audit lines');
    const audits = s.logs.slice(before).filter((l) => l.includes('"audit"')).map((l) => (JSON.parse(l) as { audit: { who: string; action: string; ids: unknown; result: Record<string, unknown> } }).audit);
    t.match(audits, [
      { who: /^sha256:[0-9a-f]{12}$/, action: 'quarantine to-fixture export', ids: [id], result: { case: `${provider}/webhook-console-export`, red: x.red } },
      { action: 'quarantine to-fixture export' },
      { action: 'quarantine replay', ids: [id], result: { replayed: 0, failed: 1 } },
      { action: 'dlq replay', ids: 'all', result: { replayed: 0 } },
      { action: 'reload', ids: 'all' },
    ]);
    t.notOk(s.logs.some((l) => l.includes(TOKEN)), 'the token itself is never logged');
  });

  t.test('the console: static files without a token, GET only, no path outside its folder', async (t) => {
    const root = await request(`${s.host.url}/console`);
    await root.body.dump();
    t.same([root.statusCode, root.headers.location], [302, '/console/']);
    const page = await call(s, 'GET', '/console/', undefined, null);
    t.equal(page.status, 200);
    t.match(page.headers['content-type'], /^text\/html/);
    t.match(page.headers['content-security-policy'], /script-src 'self'/);
    t.equal(page.headers['cache-control'], 'no-cache');
    t.equal(page.text, readFileSync(join(ROOT, 'engine', 'host', 'console', 'index.html'), 'utf8'));
    const again = await request(`${s.host.url}/console/`, { headers: { 'if-none-match': String(page.headers.etag) } });
    await again.body.dump();
    t.equal(again.statusCode, 304, 'unchanged: revalidated without a body');
    for (const [file, type] of [['console.js', /^text\/javascript/], ['console.css', /^text\/css/], ['screens/overview.js', /^text\/javascript/]] as const) {
      const r = await call(s, 'GET', `/console/${file}`, undefined, null);
      t.equal(r.status, 200, file);
      t.match(r.headers['content-type'], type);
    }
    for (const path of ['/console/../package.json', '/console/%2e%2e/package.json', '/console/..%2fpackage.json', '/console/screens/..%2F..%2Fserver.ts', '/console/nope.js', '/console/%00']) {
      t.equal((await call(s, 'GET', path, undefined, null)).status, 404, path);
    }
    t.equal((await call(s, 'POST', '/console/', '{}', null)).status, 404, 'GET only');
  });
});
