#!/usr/bin/env node
// `npm run build`, run by `npm ci` too (the `prepare` script): the engine bundled into dist/bundle/,
// so `wabridge serve` starts without compiling TypeScript. Dependencies stay in node_modules; the
// bundle sits two folders deep like the sources (engine/<folder>/), so the paths the engine resolves
// from its own location (schemas/, examples/, package.json) hold for both. The worker threads (SQLite,
// the demo's stand-ins) are entries of their own: each is started from a file. The console's static
// files (engine/host/console/) are copied beside the bundle (dist/bundle/console/), where the bundled
// console route looks for them.
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { ASSETS, BUNDLE_DIR, ROOT, sourcesDigest } from './sources.js';

const digest = sourcesDigest();
rmSync(BUNDLE_DIR, { recursive: true, force: true });
await build({
  entryPoints: { cli: join(ROOT, 'engine/cli/main.ts'), 'sqlite-worker': join(ROOT, 'engine/stores/sqlite-worker.ts'), 'standins-worker': join(ROOT, 'engine/standins/standins-worker.ts') },
  outdir: BUNDLE_DIR,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
});
for (const a of ASSETS) cpSync(join(ROOT, a.from), join(BUNDLE_DIR, a.to), { recursive: true });
writeFileSync(join(BUNDLE_DIR, 'sources.json'), `${JSON.stringify({ digest, builtAt: new Date().toISOString() })}\n`);
process.stdout.write(`wabridge: engine bundled into ${BUNDLE_DIR}\n`);
