// Campaigns: recent campaigns, one campaign's reconciliation per tenant (the numbers CleverTap's
// campaign report should show), and behind each count the messages it counts.
import { ago, errorBox, h, table } from './ui.js';

const STATUSES = ['sent', 'delivered', 'read', 'failed', 'clicked'];
const ANSWERS = ['success', '2000', '2001', '2002', '2003', '2004', '429'];

export function mount(el, ctx) {
  const id = ctx.params.get('id');
  const out = h('div');
  el.append(out);
  const fail = (e) => out.replaceChildren(errorBox(e));
  if (!id) list(ctx, out).catch(fail);
  else report(ctx, out, id).catch(fail);
}

async function list(ctx, out) {
  const r = await ctx.api('/v1/admin/campaigns?limit=200');
  out.replaceChildren(
    h('div', { class: 'heading' }, h('h1', {}, 'Campaigns'), h('p', { class: 'muted' }, 'by latest activity; counted from the message traces')),
    r.campaigns.length === 0
      ? h('p', { class: 'muted' }, 'No campaign in the traces yet.')
      : table(
          ['campaign', 'tenant', 'last activity'],
          r.campaigns.map((c) => [h('a', { href: `#/campaigns?id=${encodeURIComponent(c.campaignId)}`, class: 'mono' }, c.campaignId), c.tenant, `${c.lastActivity.replace('T', ' ').replace('Z', '')} (${ago(Date.parse(c.lastActivity))})`]),
          { class: 'campaigns' },
        ),
  );
}

async function report(ctx, out, id) {
  const batch = ctx.params.get('batch') ?? '';
  const q = batch ? `?batch=${encodeURIComponent(batch)}` : '';
  const r = await ctx.api(`/v1/admin/campaigns/${encodeURIComponent(id)}${q}`);
  const link = (tenant, count, n) => {
    if (!n) return h('span', { class: 'zero' }, '0');
    const p = new URLSearchParams({ id, tenant, count });
    if (batch) p.set('batch', batch);
    return h('a', { href: `#/campaigns?${p}`, 'data-count': `${tenant}:${count}`, title: 'the messages behind this count' }, String(n));
  };
  const batchInput = h('input', { name: 'batch', value: batch, placeholder: 'all batches', size: 14, 'aria-label': 'batch' });
  const tenants = Object.entries(r.tenants);
  const rows = [
    ['messages', (t, c) => link(t, 'messages', c.messages)],
    ...ANSWERS.map((a) => [`answers ${a}`, (t, c) => link(t, `answers.${a}`, c.answers[a] ?? 0)]),
    ...STATUSES.map((s) => [`status ${s}`, (t, c) => link(t, `statuses.${s}`, c.statuses[s] ?? 0)]),
    ...[...new Set(tenants.flatMap(([, c]) => Object.keys(c.failures)))].sort().map((code) => [`failure ${code}`, (t, c) => link(t, `failures.${code}`, c.failures[code] ?? 0)]),
    ['replies', (t, c) => link(t, 'replies', c.replies)],
    ['callbacks pending', (t, c) => link(t, 'callbacksPending', c.callbacksPending)],
    ['callbacks dead', (t, c) => link(t, 'callbacksDead', c.callbacksDead)],
    ['last activity', (_t, c) => c.lastActivity.replace('T', ' ').replace('Z', '')],
  ];
  const drill = h('div', { class: 'drill' });
  out.replaceChildren(
    h('p', { class: 'crumbs' }, h('a', { href: '#/campaigns' }, 'Campaigns'), ' / ', h('span', { class: 'mono' }, id)),
    h('div', { class: 'heading' }, h('h1', {}, `Campaign ${id}`), h('p', { class: 'muted' }, 'what wabridge told CleverTap: hold it against CleverTap\'s campaign report')),
    h(
      'form',
      {
        class: 'search',
        onsubmit: (e) => {
          e.preventDefault();
          const p = new URLSearchParams({ id });
          if (batchInput.value.trim()) p.set('batch', batchInput.value.trim());
          ctx.navigate(`#/campaigns?${p}`);
        },
      },
      h('label', {}, 'batch ', batchInput),
      h('button', { type: 'submit' }, 'Show'),
      h('a', { href: `#/trace?campaign=${encodeURIComponent(id)}`, class: 'aside' }, 'its messages in Trace →'),
    ),
    h('div', { class: 'campaign-body' }, table(['', ...tenants.map(([t]) => t)], rows.map(([label, cell]) => [label, ...tenants.map(([t, c]) => cell(t, c))]), { class: 'reconciliation' }), drill),
  );
  const count = ctx.params.get('count');
  if (count) await messages(ctx, drill, id, ctx.params.get('tenant') ?? undefined, count, batch);
}

async function messages(ctx, el, id, tenant, count, batch, cursor, shown = []) {
  const p = new URLSearchParams({ count, limit: '100' });
  if (tenant) p.set('tenant', tenant);
  if (batch) p.set('batch', batch);
  if (cursor) p.set('cursor', cursor);
  const r = await ctx.api(`/v1/admin/campaigns/${encodeURIComponent(id)}/messages?${p}`);
  const all = [...shown, ...r.messages];
  const more = r.next ? h('button', { type: 'button', class: 'quiet', onclick: () => messages(ctx, el, id, tenant, count, batch, r.next, all).catch((e) => el.append(errorBox(e))) }, 'more') : '';
  el.replaceChildren(
    h('h2', {}, `${count.replace('.', ' ')}${tenant ? ` · ${tenant}` : ''}: ${all.length}${r.next ? '+' : ''} message(s)`),
    table(
      ['msgId', 'answer', 'statuses at CleverTap', 'failure', 'replies', 'callbacks pending / dead', 'last activity'],
      all.map((m) => [
        h('a', { href: `#/trace?id=${encodeURIComponent(m.msgId)}`, class: 'mono' }, m.msgId),
        h('span', { class: m.answer === 'success' ? 'ok' : 'bad' }, m.answer ?? '–'),
        STATUSES.filter((s) => m.counts.statuses[s] > 0).join(', ') || '–',
        Object.keys(m.counts.failures).join(', ') || '–',
        String(m.counts.replies),
        `${m.counts.callbacksPending} / ${m.counts.callbacksDead}`,
        m.lastActivity.replace('T', ' ').replace('Z', ''),
      ]),
      { class: 'messages' },
    ),
    more,
  );
}
