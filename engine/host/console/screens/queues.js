// Quarantine and dead letters: what waits for an operator. Quarantined webhooks can be inspected,
// replayed (mapped again with the mapping loaded now) or exported as a redacted golden fixture to
// commit (shown and downloadable here; the console writes no mapping file). Dead callbacks can be put
// back in the outbox. The server logs an audit line for every action.
import { errorBox, h, prettyIfJson, rawDetails, table, time } from './ui.js';

export function mount(el, ctx) {
  const notice = h('div', { class: 'notice', role: 'status' });
  const quarantine = h('section', { class: 'card', id: 'quarantine' });
  const dlq = h('section', { class: 'card', id: 'dlq' });
  const detail = h('section', { class: 'card detail', id: 'detail', hidden: true });
  el.append(h('div', { class: 'heading' }, h('h1', {}, 'Quarantine & dead letters')), notice, quarantine, detail, dlq);

  const say = (text, tone = 'ok') => notice.replaceChildren(h('p', { class: tone }, text));
  const act = async (what, fn) => {
    try {
      await fn();
    } catch (e) {
      notice.replaceChildren(errorBox(new Error(`${what}: ${e.message}`)));
    }
    await Promise.all([loadQuarantine(), loadDead()]);
  };

  const replay = (ids) =>
    act('replay', async () => {
      const r = await ctx.api('/v1/admin/quarantine/replay', { method: 'POST', body: ids ? { ids } : {} });
      const failed = r.results.filter((x) => x.outcome === 'failed').map((x) => `${x.id}: ${x.error?.code} ${x.error?.message ?? ''}`);
      say(`Replayed ${r.replayed}, still failing ${r.failed}${r.missing ? `, missing ${r.missing}` : ''}${r.skipped ? `, skipped ${r.skipped}` : ''}; ${r.size} left in quarantine.${failed.length ? ` ${failed.join('; ')}` : ''}`, r.failed ? 'bad' : 'ok');
      if (!detail.hidden && ids?.includes(detail.dataset.id)) detail.hidden = true;
    });

  const inspect = async (id) => {
    try {
      const q = await ctx.api(`/v1/admin/quarantine/${encodeURIComponent(id)}`);
      detail.dataset.id = id;
      detail.hidden = false;
      detail.replaceChildren(
        h('header', {}, h('h2', {}, `Quarantined webhook ${q.id}`), h('button', { type: 'button', class: 'quiet', onclick: () => (detail.hidden = true) }, 'close')),
        h('dl', { class: 'facts' }, [
          [h('dt', {}, 'received'), h('dd', {}, time(q.receivedAt))],
          [h('dt', {}, 'tenant'), h('dd', {}, q.tenant)],
          [h('dt', {}, 'mapping'), h('dd', {}, `${q.mapping}@${q.mappingVersion ?? '?'}`)],
          q.part ? [h('dt', {}, 'part'), h('dd', {}, `item ${q.part.index + 1} of ${q.part.of} of a batch`)] : [],
          [h('dt', {}, 'attempts'), h('dd', {}, String(q.attempts))],
          [h('dt', {}, 'error'), h('dd', { class: 'error' }, `${q.error.code}${q.error.where ? ` at ${q.error.where}` : ''}: ${q.error.message}`)],
        ]),
        rawDetails('body', q.request.rawBody, ctx.mask, true),
        rawDetails('headers (credentials redacted when kept)', q.request.headers, ctx.mask),
        rawDetails('url and query', { url: q.request.url, query: q.request.query }, ctx.mask),
        h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => replay([q.id]) }, 'Replay'), h('button', { type: 'button', class: 'quiet', onclick: () => toFixture(q) }, 'To fixture…')),
        h('div', { class: 'fixture' }),
      );
      detail.scrollIntoView({ block: 'nearest' });
    } catch (e) {
      notice.replaceChildren(errorBox(e));
    }
  };

  const toFixture = async (q) => {
    const box = detail.querySelector('.fixture');
    const name = h('input', { name: 'case', value: `webhook-quarantined-${q.id}`, size: 36, 'aria-label': 'fixture case name' });
    const files = h('div', { class: 'files' });
    const run = async () => {
      try {
        const r = await ctx.api(`/v1/admin/quarantine/${encodeURIComponent(q.id)}/fixture`, { method: 'POST', body: { case: name.value.trim() } });
        files.replaceChildren(
          h('p', { class: r.red ? 'bad' : r.red === false ? 'warn' : 'muted' }, r.red ? `Red: the loaded ${q.mapping} still fails on it (${r.error.code}: ${r.error.message}). Commit it, fix the mapping, then \`wabridge test --update --filter ${q.mapping}/${name.value.trim()}\`.` : r.red === false ? 'The loaded mapping maps it already (fixed, or the redaction removed the cause: compare with the body above).' : r.note ?? ''),
          h('p', { class: 'muted' }, 'Save these files as ', h('code', {}, r.path), ' (phone numbers, names, texts, ids and secrets replaced; review them before committing). The console writes nothing under mappings/; ', h('code', {}, `wabridge quarantine to-fixture ${q.id} ${q.mapping}/${name.value.trim()}`), ' writes them for you.'),
          ...Object.entries(r.files).map(([file, text]) =>
            h(
              'figure',
              { class: 'file' },
              h('figcaption', {}, h('span', { class: 'mono' }, file), download(file, text)),
              h('pre', { 'data-file': file }, file.endsWith('.json') ? prettyIfJson(text) : text),
            ),
          ),
        );
      } catch (e) {
        files.replaceChildren(errorBox(e));
      }
    };
    box.replaceChildren(h('h3', {}, 'As a golden fixture'), h('form', { class: 'search', onsubmit: (e) => (e.preventDefault(), run()) }, h('label', {}, `${q.mapping}/fixtures/ `, name), h('button', { type: 'submit' }, 'Export')), files);
  };

  const loadQuarantine = async () => {
    try {
      const r = await ctx.api('/v1/admin/quarantine?limit=200');
      quarantine.replaceChildren(
        h('header', {}, h('h2', {}, `Quarantine (${r.size})`), r.size > 0 ? h('button', { type: 'button', onclick: () => replay(undefined) }, 'Replay all') : ''),
        r.quarantined.length === 0
          ? h('p', { class: 'muted' }, 'Nothing quarantined: every webhook mapped.')
          : table(
              ['id', 'received', 'tenant', 'mapping', 'attempts', 'error', ''],
              r.quarantined.map((q) => [
                h('span', { class: 'mono' }, q.id),
                time(q.receivedAt),
                q.tenant,
                `${q.mapping}@${q.mappingVersion ?? '?'}${q.part ? ` (item ${q.part.index + 1}/${q.part.of})` : ''}`,
                String(q.attempts),
                h('span', { class: 'error-text' }, `${q.error.code}${q.error.where ? ` ${q.error.where.split('/').slice(-2).join('/')}` : ''}: ${ctx.mask(q.error.message)}`),
                h('span', { class: 'row-actions' }, h('button', { type: 'button', class: 'quiet', onclick: () => inspect(q.id) }, 'Inspect'), h('button', { type: 'button', onclick: () => replay([q.id]) }, 'Replay')),
              ]),
              { class: 'quarantine' },
            ),
      );
    } catch (e) {
      quarantine.replaceChildren(errorBox(e));
    }
  };

  const loadDead = async () => {
    try {
      const r = await ctx.api('/v1/admin/dlq?limit=200');
      dlq.replaceChildren(
        h('header', {}, h('h2', {}, `Dead letters (${r.dead.length}${r.dead.length === 200 ? '+' : ''})`), r.dead.length > 0 ? h('button', { type: 'button', onclick: () => replayDead(undefined) }, 'Replay all') : ''),
        r.dead.length === 0
          ? h('p', { class: 'muted' }, 'No dead callbacks: CleverTap took everything.')
          : table(
              ['id', 'created', 'tenant', 'kind', 'msgId', 'status', 'attempts', 'last error', ''],
              r.dead.map((d) => [
                h('span', { class: 'mono' }, d.id),
                time(d.createdAt),
                d.tenant,
                d.kind,
                d.msgId ? h('a', { href: `#/trace?id=${encodeURIComponent(d.msgId)}`, class: 'mono' }, d.msgId) : '–',
                `${d.payload?.status ?? d.payload?.type ?? ''}${d.implied ? ' (implied)' : ''}`,
                String(d.attempts),
                h('span', { class: 'error-text' }, ctx.mask(d.lastError ?? '')),
                h('span', { class: 'row-actions' }, rawDetails('payload', d.payload, ctx.mask), h('button', { type: 'button', onclick: () => replayDead([d.id]) }, 'Replay')),
              ]),
              { class: 'dead' },
            ),
      );
    } catch (e) {
      dlq.replaceChildren(errorBox(e));
    }
  };

  const replayDead = (ids) =>
    act('dead-letter replay', async () => {
      const r = await ctx.api('/v1/admin/dlq/replay', { method: 'POST', body: ids ? { ids } : {} });
      say(`${r.replayed} callback(s) back in the outbox; the delivery worker sends them now.`);
    });

  void Promise.all([loadQuarantine(), loadDead()]);
  const focus = ctx.params.get('id');
  if (focus) void inspect(focus);
}

function download(name, text) {
  return h(
    'button',
    {
      type: 'button',
      class: 'quiet',
      onclick: () => {
        const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
        const a = h('a', { href: url, download: name });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 1000);
      },
    },
    'download',
  );
}
