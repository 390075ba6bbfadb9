// Overview, live: per tenant, answers per second by code and the BSP's latency (both over the last
// poll interval, from the deltas of /v1/admin/overview's totals), callback backlog, dead letters,
// quarantine, and the mapping each tenant runs with its last reload error.
import { ago, errorBox, h, poll, table } from './ui.js';

const CODES = ['success', '2000', '2001', '2002', '2003', '2004', '429'];
const EVERY_MS = 2000;
const HISTORY = 60;

/** The q-quantile of cumulative buckets [[le, count]] (le null = +Inf), linear within a bucket. */
function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  let lastFinite;
  for (const [le, count] of buckets) {
    if (le === null) break;
    lastFinite = le;
    if (count >= rank) return count === below ? le : lower + ((le - lower) * (rank - below)) / (count - below);
    lower = le;
    below = count;
  }
  return lastFinite;
}

const delta = (now, before) => now.map(([le, c], i) => [le, c - (before?.[i]?.[1] ?? 0)]);
const ms = (s) => (s === undefined ? '–' : `${Math.round(s * 1000)} ms`);
const rate = (n) => (n >= 10 ? n.toFixed(0) : n >= 1 ? n.toFixed(1) : n > 0 ? n.toFixed(2) : '0');

function sparkline(values) {
  if (values.length < 2 || values.every((v) => v === 0)) return h('span', { class: 'spark' });
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${HISTORY} 20`);
  svg.setAttribute('class', 'spark');
  svg.setAttribute('preserveAspectRatio', 'none');
  const max = Math.max(1, ...values);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', values.map((v, i) => `${HISTORY - values.length + i},${(20 - (v / max) * 18 - 1).toFixed(2)}`).join(' '));
  svg.append(line);
  return svg;
}

export function mount(el, ctx) {
  let last;
  const history = new Map();
  const status = h('p', { class: 'muted status' }, 'Loading…');
  const body = h('div');
  el.append(h('div', { class: 'heading' }, h('h1', {}, 'Overview'), status), body);

  const render = (o, rates) => {
    const s = o.store;
    const totals = h(
      'div',
      { class: 'tiles' },
      tile('callback backlog', s.outboxPending, s.outboxPending > 0 ? 'warn' : ''),
      tile('dead letters', s.outboxDead, s.outboxDead > 0 ? 'bad' : '', '#/queues'),
      tile('quarantine', s.quarantine, s.quarantine > 0 ? 'bad' : '', '#/queues'),
      tile('unmatched statuses', s.unmatched, s.unmatched > 0 ? 'warn' : ''),
      tile('waiting for a look-up', s.pendingLookups, ''),
      tile('store', s.kind, ''),
    );
    const cards = o.tenants.map((t) => {
      const r = rates?.get(t.id);
      const spark = history.get(t.id) ?? [];
      const m = t.mapping ?? {};
      return h(
        'article',
        { class: 'card tenant', 'data-tenant': t.id },
        h('header', {}, h('h2', {}, t.id), h('span', { class: 'muted' }, `${t.provider}`), sparkline(spark)),
        table(
          ['', ...CODES],
          [
            ['answers/s', ...CODES.map((c) => h('span', { class: c === 'success' ? 'ok' : r && r.answers[c] > 0 ? 'bad' : '', 'data-rate': c }, r ? rate(r.answers[c]) : '…'))],
            ['total', ...CODES.map((c) => h('span', { 'data-total': c }, String(t.answers[c] ?? 0)))],
          ],
          { class: 'answers' },
        ),
        h(
          'dl',
          { class: 'facts' },
          fact('BSP p50 / p99', r?.p50 !== undefined ? `${ms(r.p50)} / ${ms(r.p99)}` : `${ms(t.bsp.p50)} / ${ms(t.bsp.p99)} (since start)`),
          fact('dead letters', t.dead > 1000 ? 'over 1000' : t.dead),
          fact('quarantined now', t.quarantined > 1000 ? 'over 1000' : t.quarantined),
          fact('mapping', m.version ? `${m.name}@${m.version}` : `${m.name} (not loaded)`),
          fact('loaded', m.loadedAt ? `${ago(Date.parse(m.loadedAt))}${m.fixtures ? `, ${m.fixtures} fixtures passed` : ''}` : '–'),
        ),
        m.lastError ? h('p', { class: 'error reload-error' }, h('strong', {}, 'last reload rejected: '), m.lastError, m.lastErrorAt ? ` (${ago(Date.parse(m.lastErrorAt))}; the previous version keeps serving)` : '') : h('p', { class: 'muted' }, 'no reload error'),
      );
    });
    body.replaceChildren(totals, h('div', { class: 'tenants' }, cards));
  };

  const stop = poll(async () => {
    let o;
    try {
      o = await ctx.api('/v1/admin/overview');
    } catch (e) {
      status.replaceChildren(errorBox(e));
      throw e;
    }
    let rates;
    if (last) {
      const dt = (o.at - last.at) / 1000;
      rates = new Map();
      for (const t of o.tenants) {
        const before = last.tenants.find((x) => x.id === t.id);
        if (!before || dt <= 0) continue;
        const answers = Object.fromEntries(CODES.map((c) => [c, Math.max(0, ((t.answers[c] ?? 0) - (before.answers[c] ?? 0)) / dt)]));
        const window = delta(t.bsp.buckets, before.bsp.buckets);
        rates.set(t.id, { answers, p50: quantile(window, 0.5), p99: quantile(window, 0.99) });
        const series = history.get(t.id) ?? [];
        series.push(answers.success + CODES.slice(1).reduce((n, c) => n + answers[c], 0));
        history.set(t.id, series.slice(-HISTORY));
      }
    }
    last = o;
    render(o, rates);
    status.textContent = `live, every ${EVERY_MS / 1000} s · updated ${new Date(o.at).toLocaleTimeString()}`;
  }, EVERY_MS);
  return stop;
}

function tile(label, value, tone, href) {
  const inner = [h('span', { class: 'value' }, String(value)), h('span', { class: 'label' }, label)];
  return href ? h('a', { class: `tile ${tone}`, href, 'data-tile': label }, inner) : h('div', { class: `tile ${tone}`, 'data-tile': label }, inner);
}

const fact = (k, v) => [h('dt', {}, k), h('dd', {}, String(v))];
