// The ops console in a real browser (Debian's chromium driven by playwright-core) against the real
// server with the simulated BSP and the CleverTap sink: two campaigns sent, then each screen opened and
// held against what the sink received; a webhook the mapping cannot map quarantined, exported as a
// fixture, and replayed after the fixed mapping was hot-reloaded; a dead letter replayed. Each screen
// is photographed into docs/console/.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { ROOT, eventually, startStack, type Stack } from '../support/stack.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'e2e-admin-token-0123456789';
const SHOTS = join(ROOT, 'docs', 'console');

/** Chromium, installed when missing and this process may (root with apt-get, as CI runs); else undefined. */
function chromium(): string | undefined {
  if (existsSync(CHROMIUM)) return CHROMIUM;
  if (process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0) {
    spawnSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: 'ignore', timeout: 600_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  return existsSync(CHROMIUM) ? CHROMIUM : undefined;
}

const executablePath = chromium();
if (!executablePath) {
  t.plan(0, `Chromium is not installed at ${CHROMIUM} and cannot be installed here (apt-get install -y chromium as root)`);
} else {
  t.test('the console in Chromium', { timeout: 120_000 }, (t) => run(t, executablePath));
}

const example = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8')) as Record<string, unknown>;
const campaignOf = (msgId: string) => msgId.split('|')[1];
const MARKER = 'CONSOLE-E2E-UNMAPPABLE';

async function run(t: Test, executablePath: string) {
  const { chromium: pw } = await import('playwright-core');
  const s: Stack = await startStack({ copyMappings: true });
  t.teardown(() => s.close());
  const profile = mkdtempSync(join(tmpdir(), 'wabridge-chromium-'));
  t.teardown(() => rmSync(profile, { recursive: true, force: true }));
  const context = await pw.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 860 },
  });
  t.teardown(() => context.close());
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  mkdirSync(SHOTS, { recursive: true });
  const shot = async (name: string, fullPage = false) => {
    // From the top, so the sticky header is where it belongs in a full-page picture.
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage });
  };
  const base = `${s.host.url}/console/`;

  // Two campaigns: campA 3 messages (one refused by the BSP), campB 2.
  const tenant = s.host.config.tenants.get('demo')!;
  const msgIds = ['1|campA|b1|1|0', '2|campA|b1|1|0', '3|campA|b2|1|0', '1|campB|b1|1|0', '2|campB|b1|1|0'];
  for (const msgId of msgIds) t.match((await s.send({ ...example, msgId })).body, { status: 'success' }, msgId);
  s.sim.setScenario({ scenario: 'template', times: 1 });
  t.match((await s.send({ ...example, msgId: '4|campA|b2|1|0' })).body, { status: 'failure', error: { code: 2001 } }, 'one the BSP refuses');
  await eventually(() => s.sink.statuses('demo').filter((x) => ['campA', 'campB'].includes(campaignOf(x.msgId)!)).length === msgIds.length * 3, 'every status at the sink');

  // The token is asked once and kept for the tab; no cookie is ever set.
  await page.goto(base);
  await page.getByLabel('Token').fill(TOKEN);
  await page.getByRole('button', { name: 'Open the console' }).click();
  await page.locator('article.tenant[data-tenant="demo"]').waitFor();
  t.same(await context.cookies(), [], 'no cookies');
  t.equal(await page.evaluate(() => sessionStorage.getItem('wabridge.adminToken')), TOKEN, 'the token in sessionStorage');

  // Overview: live totals (the rates need a second poll).
  await page.waitForFunction(() => document.querySelector('article.tenant[data-tenant="demo"] [data-rate="success"]')?.textContent !== '…');
  t.equal(await page.textContent('article.tenant[data-tenant="demo"] [data-total="success"]'), '5', 'five answered success');
  t.equal(await page.textContent('article.tenant[data-tenant="demo"] [data-total="2001"]'), '1', 'one 2001');
  t.match(await page.textContent('article.tenant[data-tenant="demo"] dl.facts'), new RegExp(`mapping${tenant.provider}@${s.host.registry.get(tenant.provider)!.version}`), 'the mapping version it serves');
  t.match(await page.textContent('article.tenant[data-tenant="demo"] dl.facts'), /BSP p50 \/ p99\d+ ms \/ \d+ ms/, 'BSP latency');
  // Live: while messages (of no campaign) flow, the rates and the latency of the last interval show.
  let flowing = true;
  const flow = (async () => {
    for (let i = 0; flowing; i++) {
      await s.send({ ...example, msgId: `live-${i}` });
      await new Promise((r) => setTimeout(r, 40));
    }
  })();
  await page.waitForFunction(() => Number(document.querySelector('article.tenant[data-tenant="demo"] [data-rate="success"]')?.textContent) > 1, undefined, { timeout: 15_000 });
  await page.waitForTimeout(4500);
  t.notMatch(await page.textContent('article.tenant[data-tenant="demo"] dl.facts'), /since start/, 'the latency of the last interval');
  await shot('overview');
  flowing = false;
  await flow;

  // Campaigns: the reconciliation equals what the sink received; a count drills down to its messages.
  await page.goto(`${base}#/campaigns`);
  await page.locator('table.campaigns').waitFor();
  t.same((await page.locator('table.campaigns tbody tr td:first-child').allTextContents()).sort(), ['campA', 'campB']);
  for (const c of ['campA', 'campB']) {
    await page.goto(`${base}#/campaigns?id=${c}`);
    await page.locator('table.reconciliation').waitFor();
    const cells = Object.fromEntries(await page.$$eval('table.reconciliation tbody tr', (rows) => rows.map((r) => [r.children[0]!.textContent, r.children[1]!.textContent])));
    const sink = s.sink.statuses('demo').filter((x) => campaignOf(x.msgId) === c);
    const ours = msgIds.filter((m) => campaignOf(m) === c).length;
    for (const st of ['sent', 'delivered', 'read']) t.equal(cells[`status ${st}`], String(sink.filter((x) => x.status === st).length), `${c}: ${st} as the sink received`);
    t.equal(cells['answers success'], String(ours), `${c}: successes`);
    t.equal(cells.messages, String(c === 'campA' ? ours + 1 : ours), `${c}: messages`);
    t.equal(cells['answers 2001'], c === 'campA' ? '1' : '0');
  }
  await page.goto(`${base}#/campaigns?id=campA`);
  await page.locator('a[data-count="demo:statuses.read"]').click();
  await page.locator('.drill table.messages').waitFor();
  t.same((await page.locator('.drill table.messages tbody tr td:first-child').allTextContents()).sort(), ['1|campA|b1|1|0', '2|campA|b1|1|0', '3|campA|b2|1|0'], 'the messages behind "read"');
  await shot('campaigns', true);

  // Trace: one message's timeline, from the drill-down's link.
  await page.locator('.drill table.messages a', { hasText: '2|campA|b1|1|0' }).click();
  await page.locator('ol.timeline').waitFor();
  await page.waitForFunction(() => document.querySelectorAll('ol.timeline li[data-type="callback"]').length >= 3);
  const types = await page.locator('ol.timeline li').evaluateAll((li) => li.map((x) => x.getAttribute('data-type')));
  t.equal(types[0], 'send', 'it starts with CleverTap\'s request');
  t.same(types.filter((x) => x === 'status').length, 3, 'three statuses from the BSP');
  t.ok(types.filter((x) => x === 'callback').length >= 3, 'and their callbacks to CleverTap');
  t.match(await page.textContent('ol.timeline li[data-type="send"]'), /answered success/);
  await page.locator('ol.timeline li[data-type="send"] details summary').click();
  t.match(await page.textContent('ol.timeline li[data-type="send"] details pre'), /"providerMessageId"/, 'the recorded data expands');
  await shot('trace', true);
  // A campaign id in the same search box lists its messages.
  await page.getByLabel('id', { exact: true }).fill('campB');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.locator('table.messages').waitFor();
  t.same((await page.locator('table.messages tbody tr td:first-child').allTextContents()).sort(), ['1|campB|b1|1|0', '2|campB|b1|1|0'], 'campaign → its messages');

  // A dead letter: CleverTap refuses (4xx: dead at once) one message's statuses, then takes them again.
  s.sink.setDown({ status: 400 });
  t.match((await s.send({ ...example, msgId: '9|campD|b1|1|0' })).body, { status: 'success' });
  await eventually(async () => (await s.host.store.stats()).outboxDead === 3, 'three dead callbacks');
  s.sink.setDown(false);

  // Quarantine: the mapping now refuses inbound webhooks that carry a marker, as a real bug would on
  // some inputs only (its fixtures still pass, so the hot reload takes it).
  const file = join(s.dir, 'mappings', tenant.provider, 'mapping.yaml');
  const original = readFileSync(file, 'utf8');
  const doc = parseDocument(original);
  const events = String(doc.getIn(['webhook', 'events']));
  doc.setIn(['webhook', 'events'], `$contains($string(body), "${MARKER}") ? $error("button payloads like this are not supported yet") : (\n${events})`);
  const good = s.host.registry.get(tenant.provider)!.version;
  let t0 = Date.now();
  writeFileSync(file, doc.toString());
  await eventually(() => s.host.registry.get(tenant.provider)!.version !== good, 'the broken mapping hot-reloaded', 30_000);
  t.comment(`hot reload of the broken mapping: ${Date.now() - t0} ms`);
  const from = '919876543210';
  // A quick-reply tap answers a message: Meta's webhook contract wants the context a real one has.
  const replyTo = s.sim.sent().find((x) => x.msgId === '1|campA|b1|1|0' && x.providerMessageId)!.providerMessageId!;
  await s.sim.sendInbound({ from, button: { payload: MARKER, text: 'Yes please' }, replyTo });
  await eventually(async () => (await s.host.store.quarantineSize()) === 1, 'the webhook quarantined');

  await page.goto(`${base}#/queues`);
  await page.locator('table.quarantine').waitFor();
  t.equal(await page.locator('table.quarantine tbody tr').count(), 1, 'one quarantined webhook');
  t.equal(await page.locator('table.dead tbody tr').count(), 3, 'three dead letters');
  await page.getByRole('button', { name: 'Inspect' }).click();
  const body = page.locator('#detail details pre').first();
  await body.waitFor();
  t.notOk((await body.textContent())!.includes(from), 'the sender\'s number is masked');
  t.ok((await body.textContent())!.includes('9198******10'), 'as the logs mask it');
  t.ok((await body.textContent())!.includes(MARKER), 'the rest of the body as received');
  t.match(await page.textContent('#detail'), /WAB_MAPPING_EVAL at \S*mapping\.yaml:\d+:\d+: webhook\.events: button payloads like this are not supported yet/, 'the error with file:line:col');
  await page.getByRole('button', { name: 'To fixture…' }).click();
  await page.getByLabel('fixture case name').fill('webhook-button-marker');
  await page.getByRole('button', { name: 'Export' }).click();
  await page.locator('pre[data-file="input.json"]').waitFor();
  const input = (await page.textContent('pre[data-file="input.json"]'))!;
  t.notOk(input.includes(from) || input.includes('Yes please'), 'the fixture holds no real number or text');
  t.ok(input.includes(MARKER), 'and keeps what made it fail');
  t.match(await page.textContent('#detail .files'), /Red: the loaded \S+ still fails on it/, 'red until the mapping is fixed');
  t.notOk(existsSync(join(s.dir, 'mappings', tenant.provider, 'fixtures', 'webhook-button-marker')), 'the console wrote no fixture');
  await shot('queues', true);
  // Numbers shown on request.
  await page.getByLabel('show phone numbers').check();
  await page.getByRole('button', { name: 'Inspect' }).click();
  await page.locator('#detail details pre').first().waitFor();
  t.ok((await page.locator('#detail details pre').first().textContent())!.includes(from), 'unmasked when asked');
  await page.getByLabel('show phone numbers').uncheck();

  // The fix, hot-reloaded, then Replay in the console: the event reaches CleverTap.
  const broken = s.host.registry.get(tenant.provider)!.version;
  t0 = Date.now();
  writeFileSync(file, original);
  await eventually(() => s.host.registry.get(tenant.provider)!.version !== broken, 'the fixed mapping hot-reloaded', 30_000);
  t.comment(`hot reload of the fixed mapping: ${Date.now() - t0} ms`);
  await page.locator('#quarantine').getByRole('button', { name: 'Replay all' }).click();
  await page.locator('.notice', { hasText: 'Replayed 1, still failing 0' }).waitFor();
  await page.locator('#quarantine', { hasText: 'Nothing quarantined' }).waitFor();
  await eventually(() => s.sink.received().some((c) => c.kind === 'incoming' && c.accepted && JSON.stringify(c.body).includes(MARKER)), 'the replayed event at the sink');
  await page.locator('#dlq').getByRole('button', { name: 'Replay all' }).click();
  await page.locator('.notice', { hasText: '3 callback(s) back in the outbox' }).waitFor();
  await eventually(() => s.sink.statuses('demo').filter((x) => x.msgId === '9|campD|b1|1|0').length === 3, 'the dead letters delivered');
  await page.goto(`${base}#/overview`);
  await page.locator('a.tile[data-tile="dead letters"] .value', { hasText: /^0$/ }).waitFor();

  const audits = s.logs.filter((l) => l.includes('"audit"')).map((l) => (JSON.parse(l) as { audit: { action: string } }).audit.action);
  t.same(audits, ['quarantine to-fixture export', 'quarantine replay', 'dlq replay'], 'every action left an audit line');

  // The playground is another module; without it the shell says so.
  await page.goto(`${base}#/playground`);
  if (existsSync(join(ROOT, 'engine', 'host', 'console', 'screens', 'playground.js'))) {
    // The demo's mapping on one of its send fixtures: the BSP request it maps to, and each slot explained.
    await page.locator(`select[aria-label="mapping"] option[value="${tenant.provider}"]`).waitFor({ state: 'attached' });
    await page.selectOption('select[aria-label="mapping"]', tenant.provider);
    await page.selectOption('select[aria-label="stage"]', 'send');
    const fixture = await page.locator('select[aria-label="fixture"] option').evaluateAll((os) => (os as HTMLOptionElement[]).map((o) => o.value).find((v) => v.includes('template')) ?? '');
    t.ok(fixture, `a template send fixture to pick (${fixture})`);
    await page.selectOption('select[aria-label="fixture"]', fixture);
    await eventually(async () => (await page.inputValue('textarea[aria-label="input"]')).includes('msgId'), "the fixture's CleverTap payload in the input");
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.locator('pre.pg-out', { hasText: '"request"' }).waitFor();
    t.match(await page.textContent('pre.pg-out'), /"method": "POST"/, 'the mapped BSP request is shown');
    t.ok((await page.locator('table.pg-explain').first().locator('tbody tr').count()) > 3, 'each evaluated slot has an explain row');
    t.match(await page.locator('table.pg-explain').first().textContent(), /fast/, 'slots on the compiled fast path say so');
    await shot('playground', true);
  } else {
    await page.getByText('playground not available').waitFor();
  }
  // A refused token sends the user back to the token form.
  await page.evaluate(() => sessionStorage.setItem('wabridge.adminToken', 'wrong-token-0123456789'));
  await page.goto(`${base}#/overview`);
  await page.getByText('The server refused the token').waitFor();
  t.same(problems, [], 'no script error in the page');
}
