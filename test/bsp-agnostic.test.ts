// A BSP is a folder under mappings/: nothing in engine/ or test/ may be specific to one. This reads the
// folder list when it runs, so a BSP added later is held to it too, and fails on any file under engine/
// or test/ that names one (tests that need some mapping use the demo's, test/support/demo.ts; tests of
// the engine that need a capability use a made-up BSP under test/fixtures/mappings/).
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAPPINGS = join(ROOT, 'mappings');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Every line of `text` naming one of `bsps` as a word of its own (any case), as `line: name`. */
function namings(text: string, bsps: string[]): string[] {
  if (bsps.length === 0) return [];
  const word = new RegExp(`(?<![A-Za-z0-9])(${bsps.map(escape).join('|')})(?![A-Za-z0-9])`, 'gi');
  return text.split('\n').flatMap((line, i) => [...line.matchAll(word)].map((m) => `${i + 1}: ${m[1]}`));
}

const bsps = readdirSync(MAPPINGS).filter((d) => statSync(join(MAPPINGS, d)).isDirectory());

t.test('the check finds what it looks for', async (t) => {
  t.same(namings('a\nuse Acme-Cloud here\nand acme.', ['acme-cloud']), ['2: Acme-Cloud'], 'any case, the line it is on');
  t.same(namings('acme-cloudy, myacme-cloud, acme-cloud2', ['acme-cloud']), [], 'only as a word of its own');
  t.same(namings('see mappings/acme-cloud/fixtures', ['acme-cloud']), ['1: acme-cloud'], 'in a path too');
});

t.test('no file under engine/ or test/ names a BSP folder of mappings/', async (t) => {
  t.ok(bsps.length > 0, `BSP folders: ${bsps.join(', ')}`);
  let checked = 0;
  for (const top of ['engine', 'test']) {
    for (const file of files(join(ROOT, top))) {
      checked++;
      const found = namings(readFileSync(file, 'utf8'), bsps);
      t.same(found, [], relative(ROOT, file), { diagnostic: found.length > 0 });
    }
  }
  t.ok(checked > 50, `${checked} files read`);
});

t.test("the made-up BSPs of the engine tests are not real BSPs' folders", async (t) => {
  const madeUp = readdirSync(join(ROOT, 'test', 'fixtures', 'mappings'));
  t.same(madeUp.filter((d) => bsps.includes(d)), [], madeUp.join(', '));
});
