// The console's shell: the admin token (typed once, kept in this tab's sessionStorage, sent as a
// bearer header: no cookies), the hash router and the nav. Each screen is an ES module under screens/
// exporting mount(el, ctx) and optionally returning unmount(); ctx is the only way it reaches the server.
const TOKEN_KEY = 'wabridge.adminToken';

const SCREENS = [
  { name: 'overview', title: 'Overview' },
  { name: 'trace', title: 'Trace' },
  { name: 'campaigns', title: 'Campaigns' },
  { name: 'queues', title: 'Quarantine & DLQ' },
  { name: 'playground', title: 'Playground' },
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const unmask = document.getElementById('unmask');
const signout = document.getElementById('signout');
let current; // { unmount?: () => void }
let generation = 0;

const token = () => sessionStorage.getItem(TOKEN_KEY);

// Phone numbers: runs of 8 to 15 digits (with an optional +) standing alone, as in a body or a header.
// Digits inside ids (wamid.…, msgId parts around |) and values under time keys are not numbers.
const PHONE = /(?<![\w.|+-])\+?\d{8,15}(?![\w|])/g;
const KEY_BEFORE = /"([^"]{1,60})"\s*:\s*"?$/;
const isTimeKey = (k) => k === 'at' || k === 'ts' || /_at$|[a-z]At$/.test(k) || /time|date|expir/i.test(k);

/** The first 4 and last 2 digits, as the logs write them. */
export function maskNumber(n) {
  const digits = n.replace(/\D/g, '');
  return `${digits.slice(0, 4)}${'*'.repeat(Math.max(0, digits.length - 6))}${digits.slice(-2)}`;
}

export function mask(text) {
  const s = String(text ?? '');
  if (unmask.checked) return s;
  return s.replace(PHONE, (m, offset) => {
    const key = KEY_BEFORE.exec(s.slice(Math.max(0, offset - 70), offset))?.[1];
    return key !== undefined && isTimeKey(key) ? m : maskNumber(m);
  });
}

class Unauthorized extends Error {}

async function api(path, opts = {}) {
  const t = token();
  if (!t) {
    showLogin();
    throw new Unauthorized('admin token required');
  }
  const headers = { authorization: `Bearer ${t}` };
  let body;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  }
  const res = await fetch(path, { method: opts.method ?? (body === undefined ? 'GET' : 'POST'), headers, body, cache: 'no-store', credentials: 'omit' });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = { message: text };
  }
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin('The server refused the token: enter it again.');
    throw new Unauthorized(json.message ?? 'admin token required');
  }
  if (!res.ok) throw new Error(json.message ?? `HTTP ${res.status}`);
  return json;
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function renderNav(active) {
  nav.replaceChildren(
    ...SCREENS.map((s) => {
      const a = document.createElement('a');
      a.href = `#/${s.name}`;
      a.textContent = s.title;
      if (s.name === active) a.setAttribute('aria-current', 'page');
      return a;
    }),
  );
}

function stop() {
  generation++;
  try {
    current?.unmount?.();
  } catch (e) {
    console.error(e);
  }
  current = undefined;
}

function showLogin(message) {
  stop();
  renderNav(undefined);
  signout.hidden = true;
  const form = document.createElement('form');
  form.className = 'login card';
  form.innerHTML = `<h1>Admin token</h1>
    <p class="muted">The console reads everything through wabridge's admin API with <code>server.adminToken</code>.
    The token stays in this browser tab (sessionStorage) and goes only in the <code>Authorization</code> header.</p>
    <label>Token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
    <p class="error" role="alert"></p>
    <button type="submit">Open the console</button>`;
  form.querySelector('.error').textContent = message ?? '';
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = form.elements.token.value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    try {
      await api('/v1/admin/overview');
    } catch (err) {
      if (!(err instanceof Unauthorized)) form.querySelector('.error').textContent = err.message;
      return;
    }
    route();
  });
  main.replaceChildren(form);
  form.elements.token.focus();
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const name = (q < 0 ? raw : raw.slice(0, q)) || 'overview';
  return { name, params: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) };
}

async function route() {
  if (!token()) return showLogin();
  stop();
  const mine = generation;
  const { name, params } = parseHash();
  const screen = SCREENS.find((s) => s.name === name);
  renderNav(screen?.name);
  signout.hidden = false;
  const el = document.createElement('section');
  el.className = `screen screen-${name}`;
  main.replaceChildren(el);
  if (!screen) {
    el.innerHTML = '<p class="error">No such screen.</p>';
    return;
  }
  document.title = `${screen.title} · wabridge console`;
  let mod;
  try {
    mod = await import(`./screens/${name}.js`);
  } catch (e) {
    if (mine !== generation) return;
    el.innerHTML = `<p class="muted"></p>`;
    el.firstChild.textContent = name === 'playground' ? 'playground not available' : `screen ${name} could not be loaded: ${e.message}`;
    return;
  }
  if (mine !== generation) return;
  const ctx = { api, mask, navigate, params };
  try {
    const unmount = mod.mount(el, ctx);
    current = { unmount: typeof unmount === 'function' ? unmount : undefined };
  } catch (e) {
    el.textContent = `screen ${name} failed: ${e.message}`;
  }
}

window.addEventListener('hashchange', route);
unmask.addEventListener('change', route);
signout.addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin('Token forgotten.');
});
// A screen's unhandled refusal already sent the user to the token form.
window.addEventListener('unhandledrejection', (e) => {
  if (e.reason instanceof Unauthorized) e.preventDefault();
});
route();
