// The BSP's share of CleverTap's second (engine/host/send-flow.ts): the tenant's deadline, less twice
// the event loop's lag and the recent correlation commit time, counted from the request's arrival. A
// BSP that never answers gets the request a 2004 at that budget, so the answer is written in time even
// while the loop runs late or the store is slow.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createLogger, logDestination } from '../../engine/host/logger.js';
import { createMetrics } from '../../engine/host/metrics.js';
import { RecentMax } from '../../engine/host/recent-max.js';
import { bspBudgetMs, handleSend, type SendDeps } from '../../engine/host/send-flow.js';
import { checkSettings } from '../../engine/mapping/settings.js';
import { TokenCache } from '../../engine/mapping/token-cache.js';
import type { TenantConfig } from '../../engine/host/config.js';
import type { BspClient } from '../../engine/host/bsp-client.js';
import type { Store } from '../../engine/stores/store.js';
import { demoMapping, loadDemoMapping } from '../support/demo.js';

const mapping = loadDemoMapping();
const settings = checkSettings(mapping.settings, { ...demoMapping().settings, baseUrl: 'http://127.0.0.1:9' }, 'test');
const tenant = { id: 'demo', provider: demoMapping().provider, settings, deadlineMs: 600, concurrency: 10, auth: {} } as unknown as TenantConfig;
const body = readFileSync(fileURLToPath(new URL('../../examples/clevertap/template-body-footer.json', import.meta.url)), 'utf8');

function deps(lagMs: number | undefined, more: Partial<SendDeps> = {}): SendDeps {
  return {
    store: { saveCorrelation: () => Promise.resolve() } as unknown as Store,
    // A BSP that never answers.
    client: { send: () => new Promise(() => undefined) } as unknown as BspClient,
    tokens: new TokenCache(() => Promise.reject(new Error('no token endpoint'))),
    metrics: createMetrics(),
    logger: createLogger('error', logDestination('/dev/null')),
    correlationTtlMs: 60_000,
    lateWindowMs: 0,
    ...(lagMs === undefined ? {} : { lagMs: () => lagMs }),
    ...more,
  };
}

t.test('with the loop on time the BSP has the whole deadline', async (t) => {
  const started = performance.now();
  const out = await handleSend(deps(undefined), tenant, mapping, body, started);
  const took = performance.now() - started;
  t.match(out.answer, { status: 'failure', error: { code: 2004, message: 'BSP did not answer within 600 ms' } });
  t.ok(took >= 595, `answered after ${took.toFixed(0)} ms`);
});

t.test('with the loop 100 ms late the BSP has the deadline less 200 ms, counted from arrival', async (t) => {
  const arrived = performance.now() - 50;
  const out = await handleSend(deps(100), tenant, mapping, body, arrived);
  const took = performance.now() - arrived;
  t.match(out.answer, { status: 'failure', error: { code: 2004, message: 'BSP did not answer within 400 ms' } });
  t.ok(took >= 395 && took < 595, `answered ${took.toFixed(0)} ms after arrival`);
});

t.test('however late the loop, the BSP keeps half the deadline', async (t) => {
  const arrived = performance.now();
  const out = await handleSend(deps(10_000), tenant, mapping, body, arrived);
  t.match(out.answer, { status: 'failure', error: { code: 2004, message: 'BSP did not answer within 300 ms' } });
  t.ok(performance.now() - arrived >= 295);
});

t.test('bspBudgetMs: the deadline less twice the lag and the commit time, never under half of it', async (t) => {
  t.equal(bspBudgetMs(900, 100, 150), 550);
  t.equal(bspBudgetMs(900, 0, 200), 700);
  t.equal(bspBudgetMs(900, 100, 400), 450);
});

t.test('a slow commit lately shortens the BSP budget by its duration', async (t) => {
  const commits = new RecentMax();
  commits.note(250);
  const arrived = performance.now();
  const out = await handleSend(deps(0, { commits }), tenant, mapping, body, arrived);
  const took = performance.now() - arrived;
  t.match(out.answer, { status: 'failure', error: { code: 2004, message: 'BSP did not answer within 350 ms' } });
  t.ok(took >= 345 && took < 595, `answered ${took.toFixed(0)} ms after arrival`);
});

t.test('the correlation commit of a success is timed for the next budgets', async (t) => {
  const commits = new RecentMax();
  const answer = { status: 200, headers: { 'content-type': 'application/json' }, text: JSON.stringify({ messaging_product: 'whatsapp', contacts: [{ input: '919999999999', wa_id: '919999999999' }], messages: [{ id: 'wamid.budget-1' }] }) };
  const saved: string[] = [];
  const out = await handleSend(
    deps(0, {
      commits,
      client: { send: () => Promise.resolve(answer) } as unknown as BspClient,
      store: { saveCorrelation: (_t: string, id: string) => new Promise<void>((r) => setTimeout(() => (saved.push(id), r()), 60)) } as unknown as Store,
    }),
    tenant,
    mapping,
    body,
  );
  t.same(out.answer, { status: 'success' });
  t.same(saved, ['wamid.budget-1']);
  t.ok(commits.value() >= 55, `noted ${commits.value().toFixed(0)} ms`);
});
