// Trace: one message's timeline by CleverTap msgId or BSP message id, or a campaign's messages to pick
// one from. Each step's recorded data expands to its JSON; phone numbers stay masked unless the
// header's switch is on.
import { errorBox, h, rawDetails, table, time } from './ui.js';

function summary(e, mask) {
  const d = e.data ?? {};
  switch (e.type) {
    case 'send': {
      const parts = [`from CleverTap: to ${d.to ?? '?'}, ${d.messageType ?? '?'}${d.template ? ` ${d.template}` : ''}; mapping ${d.mapping}@${d.mappingVersion}`];
      if (d.bsp) {
        const b = d.bsp;
        const res = b.status !== undefined ? `HTTP ${b.status}` : b.error ? `no answer (${b.error})` : 'no answer before the deadline';
        parts.push(`BSP ${b.method} ${b.url} → ${res}${b.providerMessageId ? `, id ${b.providerMessageId}` : ''}${b.ms !== undefined ? ` in ${b.ms} ms` : ''}`);
      }
      const a = d.answer;
      parts.push(`answered ${a?.status === 'success' ? 'success' : `${a?.error?.code} ${a?.error?.message ?? ''}`} after ${d.ms} ms`);
      return parts.map((p) => mask(p));
    }
    case 'status':
      return [`status ${d.status}${d.error ? ` (${d.error.code} ${d.error.title ?? ''})` : ''} ${d.held ? 'held: BSP id not correlated yet' : `→ CleverTap ${d.status}`}${d.implies?.length ? `; implies ${d.implies.join(', ')}` : ''}`];
    case 'incoming':
      return [mask(`incoming ${d.messageType} from ${d.from}${e.msgId ? ` replying to ${e.msgId}` : ''}`)];
    case 'late':
      return [`the BSP accepted after the deadline (HTTP ${d.status}); correlated anyway, CleverTap was told 2004`];
    case 'resolved':
      return [`held ${d.status} of BSP id ${e.providerMessageId} → msgId ${e.msgId}${d.implies?.length ? `; implies ${d.implies.join(', ')}` : ''}`];
    case 'callback':
      return [`${d.kind === 'incoming' ? 'incoming' : d.status}${d.implied ? ' (implied)' : ''} attempt ${d.attempt} → ${d.httpStatus !== undefined ? `HTTP ${d.httpStatus}` : d.error} in ${d.ms} ms: ${d.outcome}`];
    case 'dead':
      return [`${d.kind === 'incoming' ? 'incoming' : d.status}${d.implied ? ' (implied)' : ''} callback ${d.callbackId} to the dead-letter list: ${d.reason}`];
    default:
      return [e.type];
  }
}

const tone = (e) => {
  const d = e.data ?? {};
  if (e.type === 'dead' || (e.type === 'send' && d.answer && d.answer.status !== 'success') || (e.type === 'callback' && d.outcome !== 'delivered') || d.status === 'failed') return 'bad';
  if (e.type === 'late' || d.held || d.implied) return 'warn';
  return '';
};

export function mount(el, ctx) {
  const input = h('input', { type: 'search', name: 'id', placeholder: 'msgId, BSP message id or campaign id', value: ctx.params.get('id') ?? ctx.params.get('campaign') ?? '', size: 48, 'aria-label': 'id' });
  const kind = h('select', { name: 'kind', 'aria-label': 'what the id is' }, h('option', { value: 'auto' }, 'any id'), h('option', { value: 'message' }, 'message'), h('option', { value: 'campaign' }, 'campaign'));
  if (ctx.params.has('campaign')) kind.value = 'campaign';
  const form = h(
    'form',
    {
      class: 'search',
      onsubmit: (e) => {
        e.preventDefault();
        const id = input.value.trim();
        if (!id) return;
        ctx.navigate(kind.value === 'campaign' ? `#/trace?campaign=${encodeURIComponent(id)}` : `#/trace?id=${encodeURIComponent(id)}${kind.value === 'message' ? '&kind=message' : ''}`);
      },
    },
    input,
    kind,
    h('button', { type: 'submit' }, 'Search'),
  );
  const out = h('div', { class: 'results' });
  el.append(h('div', { class: 'heading' }, h('h1', {}, 'Trace')), form, out);

  const showCampaign = async (campaign) => {
    const r = await ctx.api(`/v1/admin/campaigns/${encodeURIComponent(campaign)}/messages?limit=200`);
    if (r.messages.length === 0) return out.replaceChildren(h('p', { class: 'muted' }, `No messages of campaign ${campaign} in the traces.`));
    out.replaceChildren(
      h('h2', {}, `Campaign ${campaign}: ${r.messages.length}${r.next ? '+' : ''} message(s)`),
      h('p', {}, h('a', { href: `#/campaigns?id=${encodeURIComponent(campaign)}` }, 'its reconciliation →')),
      table(
        ['msgId', 'tenant', 'answer', 'statuses at CleverTap', 'last activity'],
        r.messages.map((m) => [
          h('a', { href: `#/trace?id=${encodeURIComponent(m.msgId)}`, class: 'mono' }, m.msgId),
          m.tenant,
          h('span', { class: m.answer === 'success' ? 'ok' : 'bad' }, m.answer ?? '–'),
          Object.entries(m.counts.statuses).filter(([, n]) => n > 0).map(([s]) => s).join(', ') || '–',
          m.lastActivity.replace('T', ' ').replace('Z', ''),
        ]),
        { class: 'messages' },
      ),
    );
  };

  const showTrace = async (id, onlyMessage) => {
    let r;
    try {
      r = await ctx.api(`/v1/admin/trace/${encodeURIComponent(id)}`);
    } catch (e) {
      // Not a message: perhaps a campaign id.
      if (!onlyMessage && /no trace/.test(e.message) && !id.includes('|')) {
        try {
          return await showCampaign(id);
        } catch {
          throw e;
        }
      }
      throw e;
    }
    const first = r.events[0]?.at ?? 0;
    const ids = new Set(r.events.map((e) => e.msgId).filter(Boolean));
    out.replaceChildren(
      h('h2', {}, 'Timeline of ', h('span', { class: 'mono' }, [...ids].join(', ') || id)),
      h(
        'ol',
        { class: 'timeline' },
        r.events.map((e) =>
          h(
            'li',
            { class: `event ${e.type} ${tone(e)}`, 'data-type': e.type },
            h('div', { class: 'when' }, h('span', { class: 'mono' }, time(e.at)), h('span', { class: 'muted' }, `+${e.at - first} ms`)),
            h('div', { class: 'what' }, h('span', { class: `badge ${e.type}` }, e.type), h('span', { class: 'muted' }, ` ${e.tenant}`), summary(e, ctx.mask).map((line) => h('div', { class: 'line' }, line)), rawDetails('recorded data', e, ctx.mask)),
          ),
        ),
      ),
    );
  };

  const id = ctx.params.get('id');
  const campaign = ctx.params.get('campaign');
  if (id || campaign) {
    out.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    (campaign ? showCampaign(campaign) : showTrace(id, ctx.params.get('kind') === 'message')).catch((e) => out.replaceChildren(errorBox(e)));
  } else {
    out.replaceChildren(h('p', { class: 'muted' }, 'A CleverTap msgId (i|campaign|batch|j|variant), the BSP\'s message id, or a campaign id.'));
  }
}
