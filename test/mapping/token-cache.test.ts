// auth.token: tokens fetched once per tenant, shared by concurrent requests, refreshed before expiry
// and after a 401. Uses a made-up BSP (test/fixtures/mappings/acme-oauth) whose OAuth2 mode declares a
// token; each real BSP's token request is proven by its own `kind: token` fixtures.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { loadMapping } from '../../engine/mapping/loader.js';
import { TokenCache } from '../../engine/mapping/token-cache.js';
import type { HttpRequest } from '../../engine/mapping/send.js';

const loaded = loadMapping(fileURLToPath(new URL('../fixtures/mappings/acme-oauth', import.meta.url)));
if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.message).join('\n'));
const mapping = loaded.mapping;
const settings = { clientId: 'cid', clientSecret: 'csec', oauth: true, authUrl: 'https://auth.test', baseUrl: 'https://x.test' };

function endpoint(expiresIn = 3600) {
  const calls: HttpRequest[] = [];
  let n = 0;
  const fetch = async (req: HttpRequest) => {
    calls.push(req);
    await new Promise((r) => setTimeout(r, 5));
    return { status: 200, headers: { 'content-type': 'application/json' }, text: JSON.stringify({ access_token: `tok-${++n}`, expires_in: expiresIn }) };
  };
  return { calls, fetch };
}

t.test('one fetch for many concurrent requests, then cached', async (t) => {
  const e = endpoint();
  const cache = new TokenCache(e.fetch);
  const tokens = await Promise.all(Array.from({ length: 20 }, () => cache.get(mapping, 'acme', settings)));
  t.same(new Set(tokens), new Set(['tok-1']));
  t.equal(e.calls.length, 1, 'single flight');
  t.equal(e.calls[0]!.url, 'https://auth.test/token');
  t.equal(e.calls[0]!.body, 'grant_type=client_credentials');
  t.equal(await cache.get(mapping, 'acme', settings), 'tok-1', 'cached');
  t.equal(await cache.get(mapping, 'other', settings), 'tok-2', 'per tenant');
  t.equal(e.calls.length, 2);
});

t.test('refreshed a minute before expiry, and after invalidate', async (t) => {
  let now = 1_000_000;
  const e = endpoint(120);
  const cache = new TokenCache(e.fetch, () => now);
  t.equal(await cache.get(mapping, 'acme', settings), 'tok-1');
  now += 50_000;
  t.equal(await cache.get(mapping, 'acme', settings), 'tok-1', 'still valid 70 s before expiry');
  now += 20_000;
  t.equal(await cache.get(mapping, 'acme', settings), 'tok-2', 'refreshed inside the last minute');
  cache.invalidate(mapping, 'acme');
  t.equal(await cache.get(mapping, 'acme', settings), 'tok-3', 'fetched again after a 401');
});

t.test('no token when the mapping does not ask for one', async (t) => {
  const e = endpoint();
  const cache = new TokenCache(e.fetch);
  t.equal(await cache.get(mapping, 'acme', { ...settings, oauth: false }), undefined, 'when: false');
  t.equal(e.calls.length, 0);
});

t.test('a refused token request is an error naming the status, and is not cached', async (t) => {
  let status = 401;
  const cache = new TokenCache(async () => ({ status, headers: { 'content-type': 'application/json' }, text: '{"error":"invalid_client"}' }));
  const e = await cache.get(mapping, 'acme', settings).then(() => undefined, (err: { code: string; message: string }) => err);
  t.equal(e?.code, 'WAB_TOKEN');
  t.match(e?.message, /HTTP 401.*invalid_client/);
  status = 200;
  await t.rejects(cache.get(mapping, 'acme', settings), { code: 'WAB_MAPPING_OUTPUT' }, 'an answer without access_token is a mapping error');
});
