#!/usr/bin/env node
// The bundle `npm ci` builds (dist/bundle/, bin/build.js) when it matches the sources, else the
// TypeScript sources through tsx: an edit runs at once, without a build step, only slower to start.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BUNDLE_DIR, bundleDigest, sourcesDigest } from './sources.js';

let main;
if (bundleDigest() === sourcesDigest()) {
  ({ main } = await import(pathToFileURL(join(BUNDLE_DIR, 'cli.js')).href));
} else {
  (await import('tsx/esm/api')).register();
  ({ main } = await import('../engine/cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
