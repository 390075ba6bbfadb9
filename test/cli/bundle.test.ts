// `npm ci` bundles the engine (bin/build.js) and bin/wabridge.js runs that bundle only while it was
// built from the sources as they are now; otherwise the sources through tsx. Both must behave alike.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleDigest, sourcesDigest } from '../../bin/sources.js';
import { demoMapping } from '../support/demo.js';
import { ROOT, freePort, writeConfig } from '../support/stack.js';

// The CLI as a user runs it: without the test runner's loaders.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS_')));
const node = (args: string[], cwd = ROOT) => spawnSync(process.execPath, args, { cwd, env, encoding: 'utf8', timeout: 60_000 });

t.test('the digest follows every engine source: an edit makes the bundle stale', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wabridge-digest-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(join(ROOT, 'engine'), join(dir, 'engine'), { recursive: true });
  const before = sourcesDigest(dir);
  t.equal(before, sourcesDigest(ROOT), 'a copy of the sources has the same digest');
  writeFileSync(join(dir, 'engine', 'host', 'metrics.ts'), '// edited\n', { flag: 'a' });
  t.not(sourcesDigest(dir), before, 'an edited file changes it');
  writeFileSync(join(dir, 'engine', 'host', 'new-module.ts'), 'export {};\n');
  t.not(sourcesDigest(dir), before, 'a new file changes it');
  const withModule = sourcesDigest(dir);
  writeFileSync(join(dir, 'engine', 'host', 'console', 'console.css'), '/* edited */\n', { flag: 'a' });
  t.not(sourcesDigest(dir), withModule, 'so does an edit of the console (copied into the bundle)');
  t.equal(bundleDigest(join(dir, 'no-bundle')), undefined, 'no bundle: no digest, the sources run');
});

t.test('a freshly built bundle and the sources give the same answers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wabridge-build-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // Build a copy of the project (sources + links to node_modules) so this test never races the repo's own bundle.
  for (const f of ['engine', 'bin', 'schemas', 'mappings', 'examples', 'package.json']) cpSync(join(ROOT, f), join(dir, f), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const built = node([join(dir, 'bin', 'build.js')], dir);
  t.equal(built.status, 0, `build: ${built.stderr}`);
  t.equal(bundleDigest(join(dir, 'dist', 'bundle')), sourcesDigest(dir), 'the bundle records the digest of what it was built from');
  // The console's static files travel beside the bundle, where its console route finds them.
  t.equal(readFileSync(join(dir, 'dist', 'bundle', 'console', 'index.html'), 'utf8'), readFileSync(join(ROOT, 'engine', 'host', 'console', 'index.html'), 'utf8'), 'the console is copied beside the bundle');
  const port = await freePort();
  writeConfig(join(dir, 'wabridge.yaml'), { port, bspPort: 1, sinkUrl: 'http://127.0.0.1:1', mappings: join(dir, 'mappings'), sqlite: join(dir, 'serve.db') });
  const server = spawn(process.execPath, [join(dir, 'bin', 'wabridge.js'), 'serve', '--config', join(dir, 'wabridge.yaml')], { cwd: dir, env, stdio: 'ignore' });
  t.teardown(() => void server.kill('SIGKILL'));
  let page: { status: number; text: string } | undefined;
  for (let i = 0; i < 150 && page?.status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    page = await fetch(`http://127.0.0.1:${port}/console/screens/overview.js`).then(async (r) => ({ status: r.status, text: await r.text() }), () => undefined);
  }
  t.equal(page?.status, 200, 'the bundled server serves the console');
  t.equal(page?.text, readFileSync(join(ROOT, 'engine', 'host', 'console', 'screens', 'overview.js'), 'utf8'));
  server.kill('SIGTERM');
  // the README's `wabridge map` example: the demo's mapping with its example settings
  const demo = demoMapping();
  const args = ['map', demo.provider, 'send', join(ROOT, 'examples', 'clevertap', 'template-image-dynamic-url.json'), '--settings', join(ROOT, 'examples', 'settings', `${demo.provider}.yaml`)];
  const fromBundle = node([join(dir, 'bin', 'wabridge.js'), ...args], dir);
  t.equal(fromBundle.status, 0, fromBundle.stderr);
  // The same command on the sources: the bundle made stale by an edit that changes nothing else.
  writeFileSync(join(dir, 'engine', 'host', 'metrics.ts'), '\n', { flag: 'a' });
  const fromSources = node([join(dir, 'bin', 'wabridge.js'), ...args], dir);
  t.equal(fromSources.status, 0, fromSources.stderr);
  t.ok(fromBundle.stdout.length > 100, 'the request is printed');
  t.equal(fromBundle.stdout, fromSources.stdout, 'bundle and sources print the same request');
});
