// wabridge's own click tracking end to end (docs/click-tracking.md): a template with a dynamic-URL
// button, sent with tracking on, reaches the simulated BSP with a token as its suffix; the token's
// link redirects to the original URL and CleverTap's sink receives one `Clicked` status.
import t from 'tap';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { ROOT, eventually, startStack } from '../support/stack.js';

const example = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-image-dynamic-url.json'), 'utf8')) as Record<string, unknown>;
// A recipient the simulated BSP delivers to (it fails the sample's short number), so sent, delivered and read follow.
const payload = (msgId: string) => ({ ...example, msgId, to: '919999999999' });
const UA = 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36';

/** A body as text, form-decoded when it is a form (some BSPs carry their parameters as JSON inside form fields). */
const decoded = (raw: string): string => {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw; // not form-encoded
  }
};

// A token in a body: 22 base64url characters standing alone, once the body is decoded.
const candidates = (raw: string) => [...new Set([...decoded(raw).matchAll(/(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{22}(?![A-Za-z0-9_-])/g)].map((m) => m[0]))];

type WithSim = { sim: { sent(): { rawBody: string }[] } };
/** The last send the demo's BSP received, decoded, in whatever format that BSP speaks. */
const lastAtBsp = (s: WithSim): string => decoded(s.sim.sent().at(-1)?.rawBody ?? '');
/** The click token in the last send at the BSP: its one 22-character base64url word. */
const tokenAtBsp = (s: WithSim): string | undefined => {
  const found = candidates(s.sim.sent().at(-1)?.rawBody ?? '');
  return found.length === 1 ? found[0] : undefined;
};

const get = (url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') => request(url, { method, headers });

t.test('a tracked dynamic-URL button: token at the BSP, 302 to the original URL, one Clicked at CleverTap', async (t) => {
  const s = await startStack({ clickTracking: { templates: { Sample_Template: 'https://shop.example.com/offers/' } } });
  t.teardown(() => s.close());

  const msgId = 'e2e|click|1|1';
  t.same((await s.send(payload(msgId))).body, { status: 'success' });
  const token = tokenAtBsp(s);
  t.match(token, /^[A-Za-z0-9_-]{22}$/, 'the BSP received a 22-character token, not "cart"');

  const first = await get(`${s.host.url}/c/${token}`, { 'user-agent': UA });
  await first.body.dump();
  t.equal(first.statusCode, 302);
  t.equal(first.headers.location, 'https://shop.example.com/offers/cart', 'the base the template had + the suffix CleverTap sent');
  t.equal(first.headers['cache-control'], 'no-store');
  t.equal(first.headers['referrer-policy'], 'no-referrer');

  await eventually(() => s.sink.statuses('demo').some((x) => x.msgId === msgId && x.status === 'Clicked'), 'the Clicked status at the sink');
  const clicked = s.sink.statuses('demo').find((x) => x.msgId === msgId && x.status === 'Clicked')!;
  t.match(clicked.entry, { msgId, status: 'Clicked', url: 'https://shop.example.com/offers/cart', shortUrl: `${s.host.url}/c/${token}`, userAgent: UA, timestamp: /^[0-9]{10}$/ });
  t.ok(s.sink.received().filter((c) => c.kind === 'status').every((c) => c.accepted), 'every status callback passed the sink schema');

  // A second click (and a HEAD from a link checker) still redirects, and is not a second Clicked.
  const head = await get(`${s.host.url}/c/${token}`, { 'user-agent': 'LinkChecker/1.0' }, 'HEAD');
  t.equal(head.statusCode, 302);
  await head.body.dump();
  const second = await get(`${s.host.url}/c/${token}`, { 'user-agent': 'other' });
  await second.body.dump();
  t.equal(second.statusCode, 302);
  t.equal(second.headers.location, 'https://shop.example.com/offers/cart');
  // sent, delivered and read follow anyway: once they are there, the outbox has had its chance to send a second click.
  await eventually(() => ['sent', 'delivered', 'read'].every((st) => s.sink.statuses('demo').some((x) => x.msgId === msgId && x.status === st)), 'the other statuses');
  const clicks = s.sink.received().flatMap((c) => (c.kind === 'status' ? ((c.body as { statuses: { msgId: string; status: string }[] }).statuses ?? []) : [])).filter((x) => x.msgId === msgId && x.status === 'Clicked');
  t.equal(clicks.length, 1, 'one Clicked for the link, however often it is clicked');

  const metrics = await (await get(`${s.host.url}/metrics`)).body.text();
  t.match(metrics, /wabridge_clicks_total\{outcome="first"\} 1\b/);
  t.match(metrics, /wabridge_clicks_total\{outcome="repeat"\} 1\b/);
});

t.test('untracked templates and tenants are sent unchanged; unknown tokens never redirect', async (t) => {
  const s = await startStack({ clickTracking: { templates: { Another_Template: 'https://shop.example.com/', Broken: 'https://shop.example.com:' } } });
  t.teardown(() => s.close());
  const refused = await s.send({ ...payload('e2e|click|2|0'), template: { namespace: 'Broken', languageCode: 'en' } });
  t.match(refused, { status: 200, body: { status: 'failure', error: { code: 2001, message: /button 0 \(dynamicUrl\).*not a URL/ } } }, 'a base + suffix that is no URL: 2001');
  t.equal(s.sim.sent().length, 0, 'and nothing reaches the BSP');
  t.same((await s.send(payload('e2e|click|2|1'))).body, { status: 'success' });
  t.ok(lastAtBsp(s).includes('cart') && tokenAtBsp(s) === undefined, 'a template not listed keeps its suffix');
  t.same((await s.send(payload('e2e|click|2|2'), { tenant: 'keyed', headers: { 'x-api-key': 'k3y-0123456789' } })).body, { status: 'success' });
  t.ok(lastAtBsp(s).includes('cart') && tokenAtBsp(s) === undefined, 'a tenant without clickTracking keeps it');

  for (const bad of ['cart', 'A'.repeat(22), '..%2F..%2Fadmin', 'https%3A%2F%2Fevil.example']) {
    const r = await get(`${s.host.url}/c/${bad}`);
    t.equal(r.statusCode, 404, `${bad}: 404`);
    t.equal(r.headers.location, undefined, `${bad}: no redirect`);
    t.match(await r.body.json(), { code: 'WAB_CLICK_LINK_UNKNOWN', message: /unknown or has expired/ });
  }
  const page = await get(`${s.host.url}/c/${'B'.repeat(22)}`, { accept: 'text/html,application/xhtml+xml' });
  t.equal(page.statusCode, 404);
  t.match(page.headers['content-type'], /text\/html/);
  t.match(await page.body.text(), /unknown or has expired/);
  t.equal(s.sink.statuses('demo').filter((x) => x.status === 'Clicked').length, 0);
});

t.test('/c/ has its own rate limit per client address, answered 429 JSON', async (t) => {
  const s = await startStack({ clickRate: 3, clickTracking: { templates: { Sample_Template: 'https://shop.example.com/offers/' } } });
  t.teardown(() => s.close());
  t.same((await s.send(payload('e2e|click|3|1'))).body, { status: 'success' });
  const token = tokenAtBsp(s);
  const codes: number[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await get(`${s.host.url}/c/${token}`);
    codes.push(r.statusCode);
    if (r.statusCode === 429) {
      t.match(await r.body.json(), { code: 'WAB_RATE_LIMITED', message: /too many clicks/ });
      t.match(r.headers['retry-after'], /^[0-9]+$/);
    } else await r.body.dump();
  }
  t.same(codes, [302, 302, 302, 429], 'three a minute, the fourth refused');
  const messaging = await s.send(payload('e2e|click|3|2'));
  t.same(messaging.body, { status: 'success' }, 'the messaging endpoint is not affected');
});

t.test('behind a trusted proxy, each forwarded client address has its own bucket', async (t) => {
  const s = await startStack({ clickRate: 1, trustProxy: '127.0.0.1', clickTracking: { templates: { Sample_Template: 'https://shop.example.com/offers/' } } });
  t.teardown(() => s.close());
  t.same((await s.send(payload('e2e|click|4|1'))).body, { status: 'success' });
  const token = tokenAtBsp(s);
  const click = async (forwardedFor: string) => {
    const r = await get(`${s.host.url}/c/${token}`, { 'x-forwarded-for': forwardedFor });
    await r.body.dump();
    return r.statusCode;
  };
  t.same([await click('198.51.100.7'), await click('203.0.113.9'), await click('198.51.100.7')], [302, 302, 429]);
});

// The rewrite happens before the mapping runs: every BSP sends the token as it would the suffix.
const mappingsDir = join(ROOT, 'mappings');
const providers = readdirSync(mappingsDir).filter((d) => existsSync(join(mappingsDir, d, 'simulator.yaml')) && existsSync(join(mappingsDir, d, 'fixtures', 'settings.yaml')));
// The sample every mapping's fixture settings know (some BSPs need a template id for it).
const withButton = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8')) as { components: unknown[] };
withButton.components = [...withButton.components, { type: 'button', index: 0, subType: 'dynamicUrl', buttonText: 'Shop', parameters: [{ type: 'text', text: 'SUFFIX-7f3q' }] }];
for (const provider of providers) {
  t.test(`${provider}: the BSP receives the token and it leads to the original URL`, async (t) => {
    const settings = parseYaml(readFileSync(join(mappingsDir, provider, 'fixtures', 'settings.yaml'), 'utf8')) as Record<string, unknown>;
    const s = await startStack({ provider, settings, clickTracking: { templates: { 'Namespace:sample': 'https://shop.example.com/s/' } } });
    t.teardown(() => s.close());
    const msgId = `e2e|click-${provider}|1|1`;
    t.same(await s.send({ ...withButton, msgId }), { status: 200, body: { status: 'success' } });
    // (not found by msgId: a BSP without a client reference does not carry it)
    t.equal(s.sim.sent().length, 1, 'one send at the BSP');
    const raw = s.sim.sent()[0]?.rawBody ?? '';
    t.notOk(raw.includes('SUFFIX-7f3q'), 'the suffix CleverTap sent does not reach the BSP');
    const targets: string[] = [];
    for (const c of candidates(raw)) {
      const r = await get(`${s.host.url}/c/${c}`, {}, 'HEAD');
      if (r.statusCode === 302) targets.push(String(r.headers.location));
      await r.body.dump();
    }
    t.same(targets, ['https://shop.example.com/s/SUFFIX-7f3q'], 'exactly one token in the BSP request, redirecting to base + suffix');
  });
}
