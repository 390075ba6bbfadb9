// What the console's overview shows per tenant, read from the metrics text /metrics serves: one
// process's registry, or under `serve --workers` every worker's summed by the primary. Reading the
// text rather than the registry keeps one path for both. Counters and histogram buckets are totals
// since start; the browser turns two of them into rates and windowed quantiles.

const ANSWERS = ['success', '2000', '2001', '2002', '2003', '2004', '429'] as const;

export interface TenantOverview {
  id: string;
  provider: string;
  /** wabridge_messages_total by answer code since start. */
  answers: Record<string, number>;
  /** wabridge_bsp_request_seconds: cumulative bucket counts [le seconds, count], the count and the sum. */
  bsp: { buckets: [number, number][]; count: number; sum: number; p50?: number; p99?: number };
  quarantinedTotal: number;
  webhooks: Record<string, number>;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

/** The samples of the named metrics in a Prometheus text exposition. */
export function samples(text: string, names: ReadonlySet<string>): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.lastIndexOf(' ');
    const name = brace >= 0 && brace < space ? line.slice(0, brace) : line.slice(0, space);
    if (!names.has(name)) continue;
    const labels: Record<string, string> = {};
    if (brace >= 0 && brace < space) for (const m of line.slice(brace, space).matchAll(LABEL)) labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    out.push({ name, labels, value: Number(line.slice(space + 1)) });
  }
  return out;
}

/**
 * The q-quantile (0..1) of a cumulative histogram, linear within its bucket (as Prometheus's
 * histogram_quantile does); undefined without observations. Past the last finite bucket: its bound.
 */
export function quantile(buckets: readonly [number, number][], q: number): number | undefined {
  const finite = buckets.filter(([le]) => Number.isFinite(le));
  const total = buckets.length > 0 ? buckets[buckets.length - 1]![1] : 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, count] of finite) {
    if (count >= rank) return count === below ? le : lower + ((le - lower) * (rank - below)) / (count - below);
    lower = le;
    below = count;
  }
  return finite.length > 0 ? finite[finite.length - 1]![0] : undefined;
}

const WANTED = new Set(['wabridge_messages_total', 'wabridge_bsp_request_seconds_bucket', 'wabridge_bsp_request_seconds_count', 'wabridge_bsp_request_seconds_sum', 'wabridge_quarantined_total', 'wabridge_webhooks_total']);

export function tenantOverview(text: string, tenants: readonly { id: string; provider: string }[]): TenantOverview[] {
  const byId = new Map<string, TenantOverview>();
  for (const t of tenants) {
    byId.set(t.id, { id: t.id, provider: t.provider, answers: Object.fromEntries(ANSWERS.map((a) => [a, 0])), bsp: { buckets: [], count: 0, sum: 0 }, quarantinedTotal: 0, webhooks: {} });
  }
  const buckets = new Map<string, Map<number, number>>();
  for (const s of samples(text, WANTED)) {
    const t = byId.get(s.labels.tenant ?? '');
    if (!t) continue;
    switch (s.name) {
      case 'wabridge_messages_total':
        t.answers[s.labels.answer ?? '?'] = (t.answers[s.labels.answer ?? '?'] ?? 0) + s.value;
        break;
      case 'wabridge_bsp_request_seconds_bucket': {
        // One series per provider label: a tenant's buckets are summed across them.
        const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
        let b = buckets.get(t.id);
        if (!b) buckets.set(t.id, (b = new Map()));
        b.set(le, (b.get(le) ?? 0) + s.value);
        break;
      }
      case 'wabridge_bsp_request_seconds_count':
        t.bsp.count += s.value;
        break;
      case 'wabridge_bsp_request_seconds_sum':
        t.bsp.sum += s.value;
        break;
      case 'wabridge_quarantined_total':
        t.quarantinedTotal += s.value;
        break;
      case 'wabridge_webhooks_total':
        t.webhooks[s.labels.outcome ?? '?'] = (t.webhooks[s.labels.outcome ?? '?'] ?? 0) + s.value;
        break;
    }
  }
  for (const [id, b] of buckets) {
    const t = byId.get(id)!;
    t.bsp.buckets = [...b].sort(([a], [c]) => a - c);
    const p50 = quantile(t.bsp.buckets, 0.5);
    const p99 = quantile(t.bsp.buckets, 0.99);
    if (p50 !== undefined) t.bsp.p50 = p50;
    if (p99 !== undefined) t.bsp.p99 = p99;
  }
  return [...byId.values()];
}
