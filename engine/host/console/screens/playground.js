// The console's Playground: pick a mapping and a fixture case (or paste a payload), run one stage,
// see the output or the error with its YAML line marked, and what each expression did. The YAML can
// be edited here and run again; it is never saved (saving stays in git and the editor).

const STAGES = [
  ['send', 'send: CleverTap payload → BSP request'],
  ['response', 'response: BSP response → CleverTap answer'],
  ['webhook', 'webhook: BSP webhook → events'],
];
const LINE_PX = 18;

/**
 * What the page held when it was left (for another screen, or remounted by the shell's phone-number
 * toggle): restored on the next mount, so an edit in progress is not lost. Kept in memory only.
 */
let kept;

const STYLE = `
.pg { display: grid; gap: 12px; }
.pg-bar { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; }
.pg-bar label { display: inline-flex; gap: 6px; align-items: center; }
.pg-cols { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 12px; }
@media (max-width: 1000px) { .pg-cols { grid-template-columns: minmax(0, 1fr); } }
.pg-editor { position: relative; display: flex; border: 1px solid #bbb; height: 560px; overflow: hidden; background: #fff; }
.pg-gutter { flex: none; width: 3.5em; overflow: hidden; background: #f3f3f3; color: #888; text-align: right; }
.pg-gutter div, .pg-yaml { font: 12px/${LINE_PX}px ui-monospace, Menlo, Consolas, monospace; }
.pg-gutter div { padding-right: 6px; height: ${LINE_PX}px; }
.pg-gutter .pg-hl-n { background: #f5c2c2; color: #700; font-weight: bold; }
.pg-area { position: relative; flex: 1; min-width: 0; }
.pg-band { position: absolute; left: 0; right: 0; height: ${LINE_PX}px; background: rgba(220, 50, 50, 0.18); pointer-events: none; display: none; }
.pg-band.pg-info { background: rgba(50, 110, 220, 0.15); }
.pg-yaml { position: absolute; inset: 0; width: 100%; height: 100%; box-sizing: border-box; margin: 0; padding: 0 6px; border: 0; resize: none; background: transparent; white-space: pre; overflow: auto; tab-size: 2; outline: none; }
.pg textarea.pg-input { width: 100%; box-sizing: border-box; min-height: 160px; font: 12px/1.4 ui-monospace, Menlo, Consolas, monospace; }
.pg textarea.pg-small { min-height: 70px; }
.pg input.pg-status { width: 6em; }
/* (colours from the console's pre) */
.pg pre.pg-out { max-height: 420px; overflow: auto; margin: 6px 0 0; white-space: pre-wrap; word-break: break-word; }
.pg-err { border-left: 4px solid #c33; background: #fdf0f0; padding: 6px 10px; white-space: pre-wrap; }
.pg-warn { border-left: 4px solid #d90; background: #fdf8e8; padding: 6px 10px; white-space: pre-wrap; }
.pg-explain { width: 100%; border-collapse: collapse; font-size: 12px; }
.pg-explain th, .pg-explain td { border-bottom: 1px solid #e3e3e3; padding: 3px 6px; text-align: left; vertical-align: top; }
.pg-explain td.pg-num { text-align: right; white-space: nowrap; }
.pg-explain td.pg-val { font-family: ui-monospace, Menlo, Consolas, monospace; word-break: break-all; max-width: 38em; }
.pg-explain tr.pg-failed td { background: #fdf0f0; }
.pg-path-fast { color: #176b2c; }
.pg-path-jsonata { color: #8a4b00; font-weight: bold; }
.pg-link { cursor: pointer; text-decoration: underline dotted; }
.pg-muted { color: #777; }
`;

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'value') e.value = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

/**
 * The screen's styles, until it is unmounted. A constructed stylesheet: the console's Content-Security-
 * Policy (style-src 'self') refuses a <style> element's text and style attributes, not these.
 */
function addStyle(css) {
  const { CSSStyleSheet } = globalThis;
  if (CSSStyleSheet && 'adoptedStyleSheets' in document) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    return () => {
      document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
    };
  }
  const style = document.createElement('style');
  style.textContent = css;
  document.head.append(style);
  return () => style.remove();
}

/** "file:line:col" → {file, line, col}. */
function parseWhere(where) {
  const m = /^(.*):(\d+):(\d+)$/.exec(where || '');
  return m ? { file: m[1], line: Number(m[2]), col: Number(m[3]) } : undefined;
}

export function mount(el, ctx) {
  let alive = true;
  const state = { mappings: [], current: undefined, original: '', fixture: '', running: false, last: undefined, lastError: undefined };

  const mappingSel = h('select', { 'aria-label': 'mapping', onchange: () => selectMapping(mappingSel.value) });
  const stageSel = h('select', { 'aria-label': 'stage', onchange: () => { fillFixtures(); onStage(); } }, STAGES.map(([v, label]) => h('option', { value: v }, label)));
  const fixtureSel = h('select', { 'aria-label': 'fixture', onchange: () => selectFixture(fixtureSel.value) });
  const runBtn = h('button', { type: 'button', onclick: () => run() }, 'Run');
  const resetBtn = h('button', { class: 'quiet', type: 'button', onclick: () => resetYaml(), title: 'Discard the edits and show the mapping file again' }, 'Reset YAML');
  const dirtyNote = h('span', { class: 'pg-muted' });

  const gutter = h('div', { class: 'pg-gutter', 'aria-hidden': 'true' });
  const gutterInner = h('div');
  gutter.append(gutterInner);
  const band = h('div', { class: 'pg-band' });
  const yaml = h('textarea', { class: 'pg-yaml', spellcheck: 'false', wrap: 'off', 'aria-label': 'mapping YAML (edits are not saved)' });
  const editor = h('div', { class: 'pg-editor' }, gutter, h('div', { class: 'pg-area' }, band, yaml));

  const input = h('textarea', { class: 'pg-input', spellcheck: 'false', 'aria-label': 'input', placeholder: 'Paste the CleverTap payload, BSP response or BSP webhook body (JSON), or pick a fixture case.' });
  const statusIn = h('input', { type: 'number', min: '100', max: '599', placeholder: '200', class: 'pg-status', 'aria-label': 'BSP HTTP status' });
  const message = h('textarea', { class: 'pg-input pg-small', spellcheck: 'false', 'aria-label': 'CleverTap payload that was sent', placeholder: '(optional) the CleverTap payload that was sent; default a freeform text' });
  const responseExtras = h('div', {}, h('label', {}, 'BSP HTTP status ', statusIn), h('details', {}, h('summary', {}, 'CleverTap payload that was sent'), message));
  const settings = h('textarea', { class: 'pg-input pg-small', spellcheck: 'false', 'aria-label': 'settings', placeholder: '{"phoneNumberId": "..."} — fake values only; the fixtures\' settings.yaml is used otherwise' });

  const status = h('div', { class: 'pg-muted', role: 'status' });
  const errorBox = h('div', { class: 'pg-err', hidden: true });
  const problemBox = h('div', { class: 'pg-warn', hidden: true });
  const outputPre = h('pre', { class: 'pg-out', hidden: true });
  const explainBody = h('tbody');
  const functionsBody = h('tbody');
  const functionsNote = h('p', { class: 'pg-muted' });

  const root = h(
    'div',
    { class: 'pg' },
    h('div', { class: 'pg-bar card' }, h('label', {}, 'Mapping', mappingSel), h('label', {}, 'Stage', stageSel), h('label', {}, 'Fixture', fixtureSel), runBtn, resetBtn, status),
    h(
      'div',
      { class: 'pg-cols' },
      h('section', { class: 'card' }, h('h3', {}, 'mapping.yaml ', dirtyNote), editor, h('p', { class: 'pg-muted' }, 'Edit and run again: the edit is compiled for the run only, never written. Ctrl+Enter runs.')),
      h(
        'section',
        { class: 'card' },
        h('h3', {}, 'Input'),
        input,
        responseExtras,
        h('details', {}, h('summary', {}, 'Settings (optional JSON)'), settings),
        h('h3', {}, 'Output'),
        errorBox,
        problemBox,
        outputPre,
      ),
    ),
    h(
      'section',
      { class: 'card' },
      h('h3', {}, 'Explain'),
      h('p', { class: 'pg-muted' }, 'Each expression evaluated, in order: its value, its time, and whether it ran as compiled JavaScript (fast) or on jsonata. Click a line number to show it in the YAML.'),
      h('table', { class: 'pg-explain table' }, h('thead', {}, h('tr', {}, h('th', {}, 'slot'), h('th', {}, 'line'), h('th', {}, 'path'), h('th', {}, 'µs'), h('th', {}, 'value'))), explainBody),
      h('h4', {}, 'Functions'),
      functionsNote,
      h('table', { class: 'pg-explain table' }, h('thead', {}, h('tr', {}, h('th', {}, 'function'), h('th', {}, 'line'), h('th', {}, 'called from'), h('th', {}, 'calls'), h('th', {}, 'µs'), h('th', {}, 'first values'))), functionsBody),
    ),
  );
  el.replaceChildren(root);
  const unstyle = addStyle(STYLE);

  // Phone numbers masked unless the console's own toggle shows them.
  const show = (text) => ctx.mask(text);

  // --- the editor: line numbers and the marked line follow the textarea's scroll
  function renumber() {
    const n = yaml.value.split('\n').length;
    if (gutterInner.childElementCount !== n) {
      const rows = [];
      for (let i = 1; i <= n; i++) rows.push(h('div', {}, String(i)));
      gutterInner.replaceChildren(...rows);
    }
    syncScroll();
  }
  let marked;
  function syncScroll() {
    gutterInner.style.transform = `translateY(${-yaml.scrollTop}px)`;
    if (marked) band.style.top = `${(marked.line - 1) * LINE_PX - yaml.scrollTop}px`;
  }
  function mark(line, kind = 'error') {
    for (const e of gutterInner.querySelectorAll('.pg-hl-n')) e.classList.remove('pg-hl-n');
    marked = line ? { line } : undefined;
    band.style.display = marked ? 'block' : 'none';
    band.classList.toggle('pg-info', kind !== 'error');
    if (!marked) return;
    gutterInner.children[line - 1]?.classList.add('pg-hl-n');
    // Bring the line into view, a third down from the top.
    const top = (line - 1) * LINE_PX;
    if (top < yaml.scrollTop || top > yaml.scrollTop + yaml.clientHeight - LINE_PX) yaml.scrollTop = Math.max(0, top - yaml.clientHeight / 3);
    syncScroll();
  }
  /** Marks `where` when it is in the mapping's own file (an inherited expression lives in its parent's). */
  function markWhere(where, kind) {
    const p = parseWhere(where);
    if (!p || !state.current || p.file !== state.current.file) return false;
    mark(p.line, kind);
    return true;
  }
  yaml.addEventListener('scroll', syncScroll);
  yaml.addEventListener('input', () => {
    renumber();
    const dirty = yaml.value !== state.original;
    dirtyNote.textContent = dirty ? '— edited, not saved' : '';
  });
  const onKey = (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') {
      e.preventDefault();
      run();
    }
  };
  root.addEventListener('keydown', onKey);

  function setStatus(text) {
    status.textContent = text;
  }
  function fail(e) {
    if (!alive) return;
    setStatus('');
    errorBox.hidden = false;
    errorBox.textContent = show(e instanceof Error ? e.message : String(e));
  }

  // --- choosing what to run
  function fillFixtures() {
    const kind = stageSel.value;
    const cases = (state.current?.fixtures || []).filter((f) => f.kind === kind);
    fixtureSel.replaceChildren(h('option', { value: '' }, '(paste an input)'), ...cases.map((f) => h('option', { value: f.name, title: f.description }, f.name)));
    const wanted = cases.some((f) => f.name === state.fixture) ? state.fixture : '';
    fixtureSel.value = wanted;
    if (wanted !== state.fixture) selectFixture(wanted);
  }
  function onStage() {
    responseExtras.hidden = stageSel.value !== 'response';
  }

  /** Loads a mapping's YAML; `edit`, when given, is put back in the editor (an edit kept from before). */
  async function selectMapping(name, edit) {
    const summary = state.mappings.find((m) => m.name === name);
    if (!summary) return false;
    setStatus(`loading ${name}…`);
    try {
      const full = await ctx.api(`/v1/admin/playground/mappings/${encodeURIComponent(name)}`);
      if (!alive) return false;
      state.current = { ...summary, ...full };
      state.original = full.yaml;
      state.last = undefined;
      state.lastError = undefined;
      yaml.value = edit ?? full.yaml;
      yaml.scrollTop = 0;
      dirtyNote.textContent = yaml.value !== state.original ? '— edited, not saved' : '';
      renumber();
      mark(undefined);
      fillFixtures();
      setStatus(`${name} version ${full.version}`);
      return true;
    } catch (e) {
      fail(e);
      return false;
    }
  }

  async function selectFixture(name) {
    state.fixture = name;
    if (!name) return;
    try {
      const f = await ctx.api(`/v1/admin/playground/mappings/${encodeURIComponent(state.current.name)}/fixtures/${encodeURIComponent(name)}`);
      if (!alive || state.fixture !== name) return;
      input.value = f.input ?? '';
      statusIn.value = f.status === undefined ? '' : String(f.status);
      message.value = f.message ?? '';
      setStatus(f.description);
    } catch (e) {
      fail(e);
    }
  }

  function resetYaml() {
    yaml.value = state.original;
    dirtyNote.textContent = '';
    renumber();
    mark(undefined);
  }

  // --- running
  async function run() {
    if (state.running || !state.current) return;
    errorBox.hidden = true;
    problemBox.hidden = true;
    const body = { mapping: state.current.name, kind: stageSel.value };
    if (state.fixture) body.fixture = state.fixture;
    if (input.value.trim() !== '' || !state.fixture) body.input = input.value;
    if (stageSel.value === 'response') {
      if (statusIn.value !== '') body.status = Number(statusIn.value);
      if (message.value.trim() !== '') body.message = message.value;
    }
    if (settings.value.trim() !== '') {
      try {
        body.settings = JSON.parse(settings.value);
      } catch (e) {
        fail(new Error(`settings are not JSON: ${e.message}`));
        return;
      }
    }
    if (yaml.value !== state.original) body.yaml = yaml.value;
    // A pasted webhook that is not JSON is taken for a form post, as some BSPs send them.
    if (!state.fixture && stageSel.value === 'webhook' && !/^\s*[[{]/.test(input.value)) body.contentType = 'application/x-www-form-urlencoded';
    state.running = true;
    runBtn.disabled = true;
    setStatus('running…');
    try {
      const result = await ctx.api('/v1/admin/playground/run', { method: 'POST', body });
      if (!alive) return;
      state.last = result;
      state.lastError = undefined;
      setStatus(`${result.mapping.name} ${result.mapping.edited ? '(edited, not saved)' : result.mapping.version} · ${result.ms} ms${result.placeholders.length ? ` · placeholder settings: ${result.placeholders.join(', ')}` : ''}`);
    } catch (e) {
      if (!alive) return;
      state.last = undefined;
      state.lastError = e;
      setStatus('');
    } finally {
      state.running = false;
      runBtn.disabled = false;
    }
    render();
  }

  function render() {
    errorBox.hidden = true;
    problemBox.hidden = true;
    explainBody.replaceChildren();
    functionsBody.replaceChildren();
    functionsNote.textContent = '';
    const e = state.lastError;
    if (e) {
      // A mapping that does not load: the server's message starts with file:line:col.
      const where = e.body?.where ?? e.data?.where ?? /^(\S+:\d+:\d+):/.exec(e.message)?.[1];
      const marked = markWhere(where, 'error');
      errorBox.hidden = false;
      errorBox.textContent = show(e.message) + (where && !marked ? `\n(in ${where}, a mapping this one extends)` : '');
      outputPre.textContent = '';
      outputPre.hidden = true;
      if (!marked) mark(undefined);
      return;
    }
    const r = state.last;
    if (!r) return;
    outputPre.textContent = show(JSON.stringify(r.output, null, 2) ?? '');
    outputPre.hidden = outputPre.textContent === '';
    if (r.error) {
      errorBox.hidden = false;
      errorBox.textContent = show(`${r.error.code}: ${r.error.message}${r.error.where ? `\nat ${r.error.where}` : ''}`);
      if (!markWhere(r.error.where, 'error')) mark(undefined);
    } else mark(undefined);
    if (r.problem) {
      problemBox.hidden = false;
      problemBox.textContent = show(r.problem);
    }
    const lineCell = (where) => {
      const p = parseWhere(where);
      if (!p) return h('td', { class: 'pg-muted' }, '—');
      const own = state.current && p.file === state.current.file;
      return h('td', { class: 'pg-num' }, own ? h('span', { class: 'pg-link', title: where, onclick: () => mark(p.line, 'info') }, String(p.line)) : h('span', { title: where }, `${p.file.split('/').slice(-2, -1)[0] ?? ''}:${p.line}`));
    };
    const pathOf = new Map(r.explain.map((x) => [x.slot, x.path]));
    for (const x of r.explain) {
      const value = x.error ? `✗ ${x.error.code ? `${x.error.code}: ` : ''}${x.error.message}` : x.value ?? '';
      explainBody.append(
        h(
          'tr',
          { class: x.error ? 'pg-failed' : '' },
          h('td', {}, x.slot),
          lineCell(x.where),
          h('td', { class: `pg-path-${x.path}`, title: x.declined ?? '' }, x.path, x.declined ? h('div', { class: 'pg-muted' }, x.declined) : ''),
          h('td', { class: 'pg-num' }, x.us.toFixed(1)),
          h('td', { class: 'pg-val' }, show(value)),
        ),
      );
    }
    if (r.explain.length === 0) explainBody.append(h('tr', {}, h('td', { colspan: '5', class: 'pg-muted' }, 'no expression was evaluated (e.g. a validation payload is answered before the mapping runs)')));
    // Functions are compiled into the slots that call them: they run on those slots' path.
    functionsNote.textContent = `Each mapping function called, from a second run of the same input whose functions report their calls; a function runs on the path of the slot that calls it.${r.functionsNote ? ` ${r.functionsNote}.` : ''}`;
    for (const f of r.functions ?? []) {
      functionsBody.append(
        h(
          'tr',
          {},
          h('td', {}, `$${f.name}`),
          lineCell(f.where),
          h('td', {}, f.slots.map((slot) => `${slot} (${pathOf.get(slot) ?? '?'})`).join(', ')),
          h('td', { class: 'pg-num' }, String(f.calls)),
          h('td', { class: 'pg-num' }, f.us.toFixed(1)),
          h('td', { class: 'pg-val' }, show(f.values.join('\n'))),
        ),
      );
    }
    if ((r.functions ?? []).length === 0) functionsBody.append(h('tr', {}, h('td', { colspan: '6', class: 'pg-muted' }, 'no mapping function was called')));
  }

  // --- start: what the URL names, else what the page held when it was left, else the first mapping
  onStage();
  (async () => {
    try {
      const { mappings } = await ctx.api('/v1/admin/playground/mappings');
      if (!alive) return;
      state.mappings = mappings;
      mappingSel.replaceChildren(...mappings.map((m) => h('option', { value: m.name }, `${m.name} (${m.version})`)));
      if (mappings.length === 0) {
        setStatus('no mapping is loaded');
        return;
      }
      const p = ctx.params ?? new URLSearchParams();
      const back = kept && (!p.get('mapping') || p.get('mapping') === kept.mapping) && (!p.get('fixture') || p.get('fixture') === kept.fixture) && mappings.some((m) => m.name === kept.mapping) ? kept : undefined;
      const kind = back?.stage ?? p.get('stage');
      if (kind && STAGES.some(([v]) => v === kind)) stageSel.value = kind;
      onStage();
      state.fixture = back?.fixture ?? p.get('fixture') ?? '';
      const name = back?.mapping ?? (mappings.find((m) => m.name === p.get('mapping')) ?? mappings[0]).name;
      mappingSel.value = name;
      if (!back) {
        if ((await selectMapping(name)) && state.fixture) await selectFixture(state.fixture);
        return;
      }
      if (!(await selectMapping(name, back.yaml))) return;
      input.value = back.input;
      statusIn.value = back.status;
      message.value = back.message;
      settings.value = back.settings;
      state.last = back.last;
      state.lastError = back.lastError;
      render();
      yaml.scrollTop = back.scrollTop;
      syncScroll();
    } catch (e) {
      fail(e);
    }
  })();

  return function unmount() {
    alive = false;
    if (state.current) {
      kept = {
        mapping: state.current.name,
        stage: stageSel.value,
        fixture: state.fixture,
        yaml: yaml.value,
        input: input.value,
        status: statusIn.value,
        message: message.value,
        settings: settings.value,
        last: state.last,
        lastError: state.lastError,
        scrollTop: yaml.scrollTop,
      };
    }
    root.removeEventListener('keydown', onKey);
    unstyle();
    el.replaceChildren();
  };
}
