// What the bundle in dist/bundle/ was built from: a digest of every engine source file and of the
// console's static files (copied beside the bundle). bin/wabridge.js runs the bundle only while it
// matches the sources, so an edit is never shadowed by a stale build.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BUNDLE_DIR = join(ROOT, 'dist', 'bundle');
/** Files the engine reads at run time from beside its module, copied as they are into the bundle: source → bundle folder. */
export const ASSETS = [{ from: join('engine', 'host', 'console'), to: 'console' }];

function sourceFiles(dir, assets) {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .flatMap((e) => {
      const p = join(dir, e.name);
      if (e.isDirectory()) return sourceFiles(p, assets);
      return e.name.endsWith('.ts') || assets.some((a) => p.startsWith(a)) ? [p] : [];
    });
}

/** sha256 over the relative path and content of every .ts file under engine/ and every asset file (a few ms). */
export function sourcesDigest(root = ROOT) {
  const h = createHash('sha256');
  const assets = ASSETS.map((a) => join(root, a.from) + sep);
  for (const f of sourceFiles(join(root, 'engine'), assets)) h.update(relative(root, f)).update('\0').update(readFileSync(f)).update('\0');
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
