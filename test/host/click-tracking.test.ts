// Click tracking's parts (engine/host/click-tracking.ts): tokens, the button rewrite, the per-address
// rate limit, and /c/'s handling of expired, unknown and forged tokens, on a real SQLite store.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { ClickRateLimiter, clickCallback, handleClick, newClickToken, trackButtons, trackLinks, type ClickDeps } from '../../engine/host/click-tracking.js';
import type { ClickTracking, TenantConfig } from '../../engine/host/config.js';
import { createLogger } from '../../engine/host/logger.js';
import { createMetrics } from '../../engine/host/metrics.js';
import { normalize } from '../../engine/clevertap/normalize.js';
import type { CanonicalMessage } from '../../engine/clevertap/model.js';
import { openSqliteStore } from '../../engine/stores/sqlite.js';
import type { Store } from '../../engine/stores/store.js';
import { ROOT } from '../support/stack.js';

const DAY = 24 * 60 * 60 * 1000;
const T0 = 1_700_000_000_000;
const logs: string[] = [];
const out = new PassThrough();
out.on('data', (c: Buffer) => logs.push(c.toString('utf8')));
const logger = createLogger('info', out);

function canonical(overrides: Record<string, unknown> = {}): CanonicalMessage {
  const raw = { ...JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-image-dynamic-url.json'), 'utf8')), ...overrides };
  const n = normalize(raw);
  if (!n.ok) throw new Error(JSON.stringify(n.issues));
  return n.message;
}

/** The sample with a second dynamic-URL button at index 1. */
const twoButtons = () => {
  const raw = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-image-dynamic-url.json'), 'utf8')) as { components: unknown[] };
  raw.components.push({ type: 'button', index: 1, subType: 'dynamicUrl', buttonText: 'Track order', parameters: [{ type: 'text', text: 'order 7?x=1' }] });
  return canonical({ components: raw.components });
};

const tracking = (templates: ClickTracking['templates'], linkTtlMs = 7 * DAY): ClickTracking => ({ linkTtlMs, templates });

t.test('tokens: 22 base64url characters from 128 random bits, never repeated', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 10_000; i++) seen.add(newClickToken());
  t.equal(seen.size, 10_000);
  const tok = [...seen][0]!;
  t.match(tok, /^[A-Za-z0-9_-]{22}$/);
  t.equal(Buffer.from(tok, 'base64url').length, 16, '16 bytes (128 bits) decoded');
});

t.test('trackButtons: the listed template\'s dynamic-URL buttons get tokens; nothing else changes', async (t) => {
  const m = twoButtons();
  const before = JSON.stringify(m);
  let n = 0;
  const r = trackButtons(m, 'acme', tracking(new Map([['Sample_Template', 'https://shop.example.com/p/']])), T0, () => `tok${n++}`);
  if ('answer' in r) throw new Error('unexpected answer');
  t.equal(JSON.stringify(m), before, 'the input message is not modified');
  t.same(r.links, [
    { token: 'tok0', tenant: 'acme', msgId: m.msgId, url: 'https://shop.example.com/p/cart', expiresAt: T0 + 7 * DAY },
    { token: 'tok1', tenant: 'acme', msgId: m.msgId, url: 'https://shop.example.com/p/order%207?x=1', expiresAt: T0 + 7 * DAY },
  ], 'base + suffix as WhatsApp would open it (a space encoded)');
  t.same(r.message.template!.buttons.map((b) => b.urlSuffix ?? b.phoneNumber), ['tok0', '+91994876856', 'tok1'], 'the phone button is untouched');
  t.same({ ...r.message, template: undefined }, { ...m, template: undefined }, 'only the buttons differ');

  const per = trackButtons(m, 'acme', tracking(new Map([['Sample_Template', new Map([[1, 'https://track.example/o/']])]])), T0, () => 'only');
  if ('answer' in per) throw new Error('unexpected answer');
  t.same(per.links.map((l) => l.url), ['https://track.example/o/order%207?x=1'], 'per index: only button 1');
  t.same(per.message.template!.buttons.map((b) => b.urlSuffix), ['cart', undefined, 'only']);

  const other = trackButtons(m, 'acme', tracking(new Map([['Other', 'https://x.example/']])), T0);
  t.same(other, { message: m, links: [] }, 'another template: unchanged, the same object');
  const validation = canonical({ msgId: '0|0|0|0' });
  const v = { ...validation, isValidation: true };
  t.same(trackButtons(v, 'acme', tracking(new Map([['Sample_Template', 'https://x.example/']])), T0), { message: v, links: [] }, 'CleverTap\'s validation payload is never tracked');
  const bad = trackButtons(m, 'acme', tracking(new Map([['Sample_Template', 'https://shop.example.com:']])), T0);
  t.match(bad, { answer: { status: 'failure', error: { code: 2001, message: /button 0 \(dynamicUrl\).*not a URL/ } } }, 'a URL that cannot be built is 2001 naming the button');
});

t.test('trackLinks: links are stored before the message is released; a store that fails answers 2004', async (t) => {
  const store = openSqliteStore(':memory:');
  t.teardown(() => store.close());
  const tenant = { id: 'acme', clickTracking: tracking(new Map([['Sample_Template', 'https://shop.example.com/p/']])) } as TenantConfig;
  const r = await trackLinks(store, tenant, canonical(), logger);
  if ('answer' in r) throw new Error('unexpected answer');
  const token = r.message.template!.buttons[0]!.urlSuffix!;
  t.match(await store.findClickLink(token, Date.now()), { tenant: 'acme', url: 'https://shop.example.com/p/cart' });

  const failing = { ...store, saveClickLinks: () => Promise.reject(new Error('disk full')) } as Store;
  t.match(await trackLinks(failing, tenant, canonical(), logger), { answer: { status: 'failure', error: { code: 2004, message: /tracked links: disk full/ } } });
  const untracked = canonical();
  t.equal((await trackLinks(failing, { id: 'acme' } as TenantConfig, untracked, logger) as { message: unknown }).message, untracked, 'without clickTracking the store is not touched');
});

t.test('ClickRateLimiter: perMinute per address, refilled continuously, bounded memory', async (t) => {
  const l = new ClickRateLimiter(60, 3);
  for (let i = 0; i < 60; i++) t.equal(l.take('1.1.1.1', T0), 0);
  t.equal(l.take('1.1.1.1', T0), 1, 'the 61st waits a second');
  t.equal(l.take('2.2.2.2', T0), 0, 'another address has its own bucket');
  t.equal(l.take('1.1.1.1', T0 + 999), 1);
  t.equal(l.take('1.1.1.1', T0 + 1000), 0, 'one more after a second');
  t.equal(l.take('1.1.1.1', T0 + 1000), 1);
  const slow = new ClickRateLimiter(2);
  slow.take('a', T0);
  slow.take('a', T0);
  t.equal(slow.take('a', T0), 30, '2 a minute: 30 s to the next');
  l.take('3.3.3.3', T0);
  l.take('4.4.4.4', T0 + 1000);
  t.equal(l.size, 2, 'at maxAddresses, the addresses whose buckets are full again go first');
  t.equal(l.take('1.1.1.1', T0 + 1000), 1, 'the address being limited is kept, still limited');
  const full = new ClickRateLimiter(60, 2);
  full.take('a', T0);
  full.take('b', T0);
  full.take('c', T0);
  t.equal(full.size, 2, 'none full: the oldest goes');
  let fresh = 0;
  while (full.take('a', T0) === 0) fresh++;
  t.equal(fresh, 60, 'an evicted address starts full again');
  const flood = new ClickRateLimiter(60, 1000);
  for (let i = 0; i < 20_000; i++) flood.take(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, T0);
  t.ok(flood.size <= 1000, `a flood of 20,000 addresses keeps at most 1,000 (${flood.size})`);
});

t.test('handleClick on a real store', async (t) => {
  const store = openSqliteStore(':memory:');
  t.teardown(() => store.close());
  const metrics = createMetrics();
  const deps: ClickDeps = { store, publicUrl: () => 'https://wab.example', limiter: new ClickRateLimiter(1000), metrics, logger };
  const req = (ua = 'UA/1') => ({ address: '10.0.0.1', userAgent: ua, head: false });
  const now = Date.now();
  const live = { token: newClickToken(), tenant: 'acme', msgId: 'm1', url: 'https://shop.example.com/p/cart', expiresAt: now + DAY };
  const expired = { token: newClickToken(), tenant: 'acme', msgId: 'm2', url: 'https://shop.example.com/p/old', expiresAt: now - 1 };
  await store.saveClickLinks([live, expired], now - DAY);

  t.same(await handleClick(deps, live.token, { ...req(), head: true }), { kind: 'redirect', url: live.url }, 'HEAD redirects');
  t.match(await store.stats(), { outboxPending: 0 }, 'and counts nothing');
  t.same(await handleClick(deps, live.token, req('Mozilla/5.0 first')), { kind: 'redirect', url: live.url });
  t.same(await handleClick(deps, live.token, req('second')), { kind: 'redirect', url: live.url });
  const queued = await store.claimDue(Date.now() + 1, 10, 1000);
  t.equal(queued.length, 1, 'one callback for two clicks');
  t.same(queued[0]!.payload, { msgId: 'm1', status: 'Clicked', timestamp: (queued[0]!.payload as { timestamp: string }).timestamp, url: live.url, shortUrl: `https://wab.example/c/${live.token}`, userAgent: 'Mozilla/5.0 first' });
  t.match((queued[0]!.payload as { timestamp: string }).timestamp, /^[0-9]{10}$/);

  t.same(await handleClick(deps, expired.token, req()), { kind: 'unknown' }, 'expired: no redirect');
  t.same(await handleClick(deps, newClickToken(), req()), { kind: 'unknown' }, 'well-formed but never issued');
  t.same(await handleClick(deps, `${live.token}x`, req()), { kind: 'unknown' }, 'a live token with one character more');
  t.same(await handleClick(deps, 'https:%2F%2Fevil.example', req()), { kind: 'unknown' });
  t.match(await metrics.registry.getSingleMetricAsString('wabridge_clicks_total'), /outcome="first"\} 1[\s\S]*outcome="repeat"\} 1[\s\S]*outcome="unknown"\} 4/);

  const long = await handleClick({ ...deps, store: { ...store, findClickLink: store.findClickLink.bind(store), recordClick: (tok, n, cb) => {
    t.equal((cb.payload as { userAgent: string }).userAgent.length, 1024, 'the User-Agent is kept to 1 KB');
    return Promise.reject(new Error('store gone'));
  } } as Store }, live.token, req('x'.repeat(20_000)));
  t.same(long, { kind: 'redirect', url: live.url }, 'a click the store cannot record still redirects');
  t.match(logs.join(''), /click not recorded/);
  t.match(await handleClick({ ...deps, store: { findClickLink: () => Promise.reject(new Error('down')) } as unknown as Store }, live.token, req()), { kind: 'unavailable', reason: 'down' });

  const limited = { ...deps, limiter: new ClickRateLimiter(1) };
  t.same((await handleClick(limited, newClickToken(), req())).kind, 'unknown');
  t.match(await handleClick(limited, live.token, req()), { kind: 'limited', retryAfterS: 60 }, 'rate limited before the store is asked');
});

t.test('clickCallback: CleverTap\'s Clicked entry, one dedupe key per link', async (t) => {
  const link = { token: 'T'.repeat(22), tenant: 'acme', msgId: 'a|b|c|d', url: 'https://shop.example.com/x', expiresAt: T0 + DAY };
  const cb = clickCallback(link, 'https://wab.example/c/' + link.token, 'UA', T0);
  t.same(cb, {
    tenant: 'acme',
    kind: 'status',
    msgId: 'a|b|c|d',
    rank: 0,
    payload: { msgId: 'a|b|c|d', status: 'Clicked', timestamp: '1700000000', url: link.url, shortUrl: `https://wab.example/c/${link.token}`, userAgent: 'UA' },
    dedupeKey: `acme|click|${link.token}`,
  });
});
