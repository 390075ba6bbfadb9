// What the bundle in dist/bundle/ was built from: a digest of every engine source file. bin/wabridge.js
// runs the bundle only while it matches the sources, so an edit is never shadowed by a stale build.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BUNDLE_DIR = join(ROOT, 'dist', 'bundle');

function tsFiles(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** sha256 over the relative path and content of every .ts file under engine/ (a few ms). */
export function sourcesDigest(root = ROOT) {
  const h = createHash('sha256');
  for (const f of tsFiles(join(root, 'engine'))) h.update(relative(root, f)).update('\0').update(readFileSync(f)).update('\0');
  return h.digest('hex');
}

/** The digest the bundle was built from, or undefined when there is no bundle. */
export function bundleDigest(dir = BUNDLE_DIR) {
  try {
    return JSON.parse(readFileSync(join(dir, 'sources.json'), 'utf8')).digest;
  } catch {
    return undefined;
  }
}
