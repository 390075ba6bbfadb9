// The overview's reading of the metrics text: per-tenant totals and quantiles from the histogram, the
// same whether the text is one process's or the primary's sum of its workers'.
import t from 'tap';
import { createMetrics } from '../../engine/host/metrics.js';
import { quantile, samples, tenantOverview } from '../../engine/host/overview.js';

t.test('samples: names, labels (escaped), values', async (t) => {
  const text = '# HELP x y\nwabridge_messages_total{tenant="a\\"b",answer="2004"} 3\nother 1\nwabridge_messages_total 7\n';
  t.same(samples(text, new Set(['wabridge_messages_total'])), [
    { name: 'wabridge_messages_total', labels: { tenant: 'a"b', answer: '2004' }, value: 3 },
    { name: 'wabridge_messages_total', labels: {}, value: 7 },
  ]);
});

t.test('quantile: linear within the bucket, undefined when empty, capped at the last finite bound', async (t) => {
  t.equal(quantile([], 0.5), undefined);
  t.equal(quantile([[0.1, 0], [Infinity, 0]], 0.5), undefined);
  t.equal(quantile([[0.1, 10], [0.2, 20], [Infinity, 20]], 0.5), 0.1);
  t.ok(Math.abs(quantile([[0.1, 10], [0.2, 20], [Infinity, 20]], 0.75)! - 0.15) < 1e-9, "three quarters: halfway through the second bucket");
  t.equal(quantile([[0.1, 0], [0.2, 0], [Infinity, 4]], 0.99), 0.2);
});

t.test('tenantOverview from a registry: answers by code, BSP latency per tenant (every provider label summed)', async (t) => {
  const m = createMetrics();
  for (let i = 0; i < 8; i++) m.requests.inc({ tenant: 'acme', answer: 'success' });
  m.requests.inc({ tenant: 'acme', answer: '2004' });
  m.requests.inc({ tenant: 'other', answer: '429' });
  m.requests.inc({ tenant: 'gone', answer: 'success' });
  for (const s of [0.02, 0.03, 0.04, 0.15]) m.bspLatency.observe({ tenant: 'acme', provider: 'p1' }, s);
  m.bspLatency.observe({ tenant: 'acme', provider: 'p2' }, 0.6);
  m.quarantined.inc({ tenant: 'acme' });
  const o = tenantOverview(await m.registry.metrics(), [
    { id: 'acme', provider: 'p1' },
    { id: 'other', provider: 'p1' },
  ]);
  t.same(o.map((x) => x.id), ['acme', 'other'], 'configured tenants only');
  t.same(o[0]!.answers, { success: 8, 2000: 0, 2001: 0, 2002: 0, 2003: 0, 2004: 1, 429: 0 });
  t.same(o[1]!.answers['429'], 1);
  t.equal(o[0]!.bsp.count, 5);
  t.equal(o[0]!.bsp.buckets.at(-1)![1], 5, 'the +Inf bucket counts both providers');
  t.ok(o[0]!.bsp.p50! > 0.025 && o[0]!.bsp.p50! <= 0.05, `p50 ${o[0]!.bsp.p50}`);
  t.ok(o[0]!.bsp.p99! > 0.5 && o[0]!.bsp.p99! <= 0.75, `p99 ${o[0]!.bsp.p99}`);
  t.equal(o[0]!.quarantinedTotal, 1);
  t.same(o[1]!.bsp, { buckets: [], count: 0, sum: 0 }, 'no BSP call yet: no quantiles');
});
