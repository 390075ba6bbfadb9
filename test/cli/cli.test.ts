// The `wabridge` command line, run as a user runs it: `node bin/wabridge.js ...`.
// Independent runs start together up front; each test awaits the ones it checks.
import t from 'tap';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { providerSuite } from '../providers/provider-suite.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const example = join(repo, 'test', 'mapping', 'example-bsp');
const sendInput = join(example, 'fixtures', 'template-text', 'input.json');
const version = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;
const testMappings = readdirSync(join(repo, 'test', 'mapping'))
  .map((d) => join(repo, 'test', 'mapping', d))
  .filter((d) => existsSync(join(d, 'mapping.yaml')));
const casesOf = (dir: string) => (existsSync(join(dir, 'fixtures')) ? readdirSync(join(dir, 'fixtures')).filter((d) => statSync(join(dir, 'fixtures', d)).isDirectory()).length : 0);
const fixtureCount = testMappings.reduce((n, d) => n + casesOf(d), 0);
const exampleCases = casesOf(example);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

// The CLI runs as a user runs it: without the test runner's loaders (tap puts them in NODE_OPTIONS).
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS_')));

// A few at a time: every run starts a Node process that compiles the engine with tsx.
let running = 0;
const waiting: (() => void)[] = [];
async function slot<T>(work: () => Promise<T>): Promise<T> {
  if (running >= 4) await new Promise<void>((go) => waiting.push(go));
  running++;
  try {
    return await work();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

function run(args: string[], input?: string): Promise<Run> {
  return slot(() => spawnCli(args, input));
}

function spawnCli(args: string[], input?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repo, 'bin', 'wabridge.js'), ...args], { cwd: repo, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'wab-cli-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of example-bsp under `<tmp>/<name>/example-bsp`, edited by `edit`. */
function copyExample(name: string, edit: (dir: string) => void): string {
  const root = join(tmp, name);
  const dir = join(root, 'example-bsp');
  cpSync(example, dir, { recursive: true });
  edit(dir);
  return root;
}

// A broken copy: one expression that does not compile.
const brokenRoot = copyExample('broken', (dir) => {
  const file = join(dir, 'mapping.yaml');
  writeFileSync(file, readFileSync(file, 'utf8').replace('respond: query.challenge', 'respond: query.challenge oops'));
});
const brokenText = readFileSync(join(brokenRoot, 'example-bsp', 'mapping.yaml'), 'utf8');

// A copy whose error-401 expected.json no longer matches what the mapping produces.
const staleRoot = copyExample('stale', (dir) => {
  const file = join(dir, 'fixtures', 'error-401', 'expected.json');
  writeFileSync(file, readFileSync(file, 'utf8').replace('"bad key"', '"bad keys"'));
});
const staleExpected = join(staleRoot, 'example-bsp', 'fixtures', 'error-401', 'expected.json');

const runs = {
  // First: the only chain of runs that must go one after the other.
  stale: (async () => {
    const before = await run(['test', staleRoot]);
    const update = await run(['test', staleRoot, '--update', '--json']);
    return { before, update, expected: readFileSync(staleExpected, 'utf8') };
  })(),
  lint: run(['lint', 'test/mapping']),
  lintBroken: run(['lint', brokenRoot]),
  lintJson: run(['lint', brokenRoot, '--json']),
  test: run(['test', 'test/mapping']),
  testJson: run(['test', 'test/mapping', '--json']),
  mapSend: run(['map', 'example-bsp', 'send', 'test/mapping/example-bsp/fixtures/template-text/input.json', '--mappings', 'test/mapping']),
  mapSendSecrets: run(['map', 'example-bsp', 'send', sendInput, '--mappings', 'test/mapping', '--show-secrets']),
  mapStdin: run(['map', 'example-bsp', 'send', '-', '--mappings', 'test/mapping'], readFileSync(sendInput, 'utf8')),
  mapUnknownKind: run(['map', 'example-bsp', 'bogus', sendInput, '--mappings', 'test/mapping']),
  mapNoArgs: run(['map']),
  mapMissingFile: run(['map', 'example-bsp', 'send', join(tmp, 'no-such.json'), '--mappings', 'test/mapping']),
  unknownCommand: run(['frobnicate']),
  // wabridge new, then lint and test what it wrote, then the refusals.
  scaffold: (async () => {
    const made = await run(['new', 'acme-wa', '--mappings', join(tmp, 'new')]);
    const [lint, test, again, badName, noName] = await Promise.all([
      run(['lint', join(tmp, 'new')]),
      run(['test', join(tmp, 'new')]),
      run(['new', 'acme-wa', '--mappings', join(tmp, 'new')]),
      run(['new', 'Acme_WA', '--mappings', join(tmp, 'new')]),
      run(['new', '--mappings', join(tmp, 'new')]),
    ]);
    return { made, lint, test, again, badName, noName };
  })(),
  version: run(['--version']),
};

/** "line:col" (1-based) of the first occurrence of `needle` in `text`. */
function posOf(text: string, needle: string): string {
  const at = text.indexOf(needle);
  if (at < 0) throw new Error(`${JSON.stringify(needle)} not found`);
  const before = text.slice(0, at);
  return `${before.split('\n').length}:${at - (before.lastIndexOf('\n') + 1) + 1}`;
}

t.test('lint', async (t) => {
  const ok = await runs.lint;
  t.equal(ok.code, 0, 'test/mapping lints clean');
  t.match(ok.stdout, /^ok test\/mapping\/example-bsp\/mapping\.yaml \(\d+ expressions\b.*version [0-9a-f]{12}\)$/m);
  t.match(ok.stdout, new RegExp(`^${testMappings.length} mapping\\(s\\), 0 problem\\(s\\)$`, 'm'));

  const broken = await runs.lintBroken;
  t.equal(broken.code, 1, 'a broken mapping exits 1');
  const m = /example-bsp\/mapping\.yaml:(\d+:\d+): webhook\.handshake\.respond/.exec(broken.stdout);
  t.ok(m, 'prints file:line:col and the slot', { stdout: broken.stdout });
  t.equal(m?.[1], posOf(brokenText, 'oops'), 'the position of the offending token');
  t.match(broken.stdout, /1 mapping\(s\), 1 problem\(s\)/);
});

t.test('lint --json', async (t) => {
  const r = await runs.lintJson;
  t.equal(r.code, 1);
  const report = JSON.parse(r.stdout) as { ok: boolean; mappings: { ok: boolean }[]; problems: { code: string; where: string }[] };
  t.equal(report.ok, false);
  t.same(report.mappings.map((m) => m.ok), [false]);
  t.same(report.problems.map((p) => p.code), ['WAB_MAPPING_COMPILE']);
  t.match(report.problems[0]?.where, new RegExp(`example-bsp/mapping\\.yaml:${posOf(brokenText, 'oops')}$`));
});

t.test('test', async (t) => {
  const r = await runs.test;
  t.equal(r.code, 0);
  t.match(r.stdout, new RegExp(`^${fixtureCount} passed, 0 failed$`, 'm'), `${fixtureCount} fixtures pass`);
  t.match(r.stdout, /^ok {5}example-bsp\/error-401 — /m, 'one line per case');

  const json = JSON.parse((await runs.testJson).stdout) as { ok: boolean; passed: number; failed: number; errors: number; cases: { outcome: string }[] };
  t.equal(json.ok, true);
  t.equal(json.passed, fixtureCount);
  t.equal(json.failed, 0);
  t.equal(json.errors, 0);
  t.equal(json.cases.length, fixtureCount);
});

t.test('test with a stale expected.json, then --update', async (t) => {
  const { before, update, expected } = await runs.stale;
  t.equal(before.code, 1, 'a mismatch exits 1');
  t.match(before.stdout, /FAIL\s+example-bsp\/error-401/);
  t.match(before.stdout, /^\s*- .*"bad keys"/m, 'the expected line, with -');
  t.match(before.stdout, /^\s*\+ .*"bad key"/m, 'the actual line, with +');
  t.match(before.stdout, new RegExp(`${exampleCases - 1} passed, 1 failed`));

  t.equal(update.code, 0, '--update exits 0');
  const report = JSON.parse(update.stdout) as { updated: number; passed: number; cases: { name: string; outcome: string }[] };
  t.equal(report.updated, 1);
  t.equal(report.passed, exampleCases - 1);
  t.same(report.cases.filter((c) => c.outcome !== 'pass').map((c) => [c.name, c.outcome]), [['error-401', 'updated']], 'only the stale case is rewritten');
  t.same(JSON.parse(expected), { answer: { status: 'failure', error: { code: 2000, message: 'bad key' } } }, 'expected.json rewritten with the actual output');
});

t.test('map', async (t) => {
  const masked = await runs.mapSend;
  t.equal(masked.code, 0, masked.stderr);
  const request = (JSON.parse(masked.stdout) as { request: { url: string; headers: Record<string, string>; body: { to: string } } }).request;
  t.equal(request.headers.Authorization, 'Key «secret:apiKey»', 'the secret apiKey is masked');
  t.notMatch(masked.stdout, /test-api-key/, 'the secret appears nowhere');
  t.equal(request.url, 'https://api.example-bsp.test/v1/messages');
  t.equal(request.body.to, '+919999999999');

  const shown = await runs.mapSendSecrets;
  t.equal(shown.code, 0);
  t.match(shown.stdout, /"Authorization": "Key test-api-key"/, '--show-secrets shows it');

  const stdin = await runs.mapStdin;
  t.equal(stdin.code, 0, stdin.stderr);
  t.equal(stdin.stdout, masked.stdout, '`-` reads the input from stdin');
});

t.test('usage errors exit 2', async (t) => {
  for (const [name, what] of [
    ['mapUnknownKind', 'map with an unknown kind'],
    ['mapNoArgs', 'map without arguments'],
    ['mapMissingFile', 'map with an input file that does not exist'],
    ['unknownCommand', 'an unknown command'],
  ] as const) {
    const r = await runs[name];
    t.equal(r.code, 2, what);
    t.ok(r.stderr.trim().length > 0, `${what}: says why on stderr`);
  }
  t.match((await runs.unknownCommand).stderr, /frobnicate/, 'names the unknown command');
  t.match((await runs.mapUnknownKind).stderr, /send\|response\|transport\|webhook\|handshake/, 'lists the kinds');
});

t.test('new: a BSP folder that lints, tests and passes the provider suite as written', async (t) => {
  const r = await runs.scaffold;
  const dir = join(tmp, 'new', 'acme-wa');
  t.equal(r.made.code, 0, 'wabridge new exits 0', { stderr: r.made.stderr });
  for (const f of ['mapping.yaml', 'simulator.yaml', 'fixtures/settings.yaml', 'fixtures/send-template/expected.json', 'fixtures/response-error-auth/input.json', 'fixtures/transport-timeout/fixture.yaml', 'fixtures/webhook-inbound-text/input.json']) {
    t.ok(existsSync(join(dir, f)), `writes ${f}`);
  }
  t.match(r.made.stdout, /^created .*acme-wa\/mapping\.yaml$/m, 'names what it wrote');
  t.equal(readFileSync(join(dir, 'mapping.yaml'), 'utf8').split('\n')[0], '# yaml-language-server: $schema=../../schemas/mapping.schema.json');
  t.match(readFileSync(join(dir, 'mapping.yaml'), 'utf8'), /^settings:$/m, 'a settings block');
  const kinds = readdirSync(join(dir, 'fixtures'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => /^kind: (\w+)$/m.exec(readFileSync(join(dir, 'fixtures', d.name, 'fixture.yaml'), 'utf8'))?.[1]);
  t.same([...new Set(kinds)].sort(), ['response', 'send', 'transport', 'webhook'], 'a fixture of every kind the mapping has');
  t.equal(r.lint.code, 0, 'lints clean', { stdout: r.lint.stdout });
  t.match(r.lint.stdout, /1 mapping\(s\), 0 problem\(s\)/);
  t.equal(r.test.code, 0, 'its fixtures pass', { stdout: r.test.stdout });
  t.match(r.test.stdout, new RegExp(`^${casesOf(dir)} passed, 0 failed$`, 'm'));

  t.equal(r.again.code, 2, 'an existing folder is refused with exit 2');
  t.match(r.again.stderr, /acme-wa already exists: wabridge new never overwrites a folder/);
  t.equal(r.badName.code, 2, 'a bad name is refused with exit 2');
  t.match(r.badName.stderr, /'Acme_WA' is not a BSP name: lower-case letters, digits and '-'/);
  t.notOk(existsSync(join(tmp, 'new', 'Acme_WA')), 'and nothing is written');
  t.equal(r.noName.code, 2, 'no name: exit 2');
  t.match(r.noName.stderr, /new needs exactly one <bsp> name/);

  // The generic provider test, exactly as it runs every folder under mappings/.
  await t.test('the generic provider suite', (t) => providerSuite(t, dir));
});

t.test('--version', async (t) => {
  const r = await runs.version;
  t.equal(r.code, 0);
  t.equal(r.stdout.trim(), version);
});
