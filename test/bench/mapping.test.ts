// The mapping bench's contracts.enforce variant measures what it says: the baseline's mapping
// (bench/handwritten/) with the guard on (loaded as a user turns it on) plans every send golden fixture exactly as without it, so the ratio
// is the guard's cost and nothing else. Not a benchmark: nothing here is timed.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASELINE_MAPPING_DIR } from '../../bench/handwritten/baseline.js';
import { fixtures, loadEnforced, USAGE } from '../../bench/mapping.js';
import { loadMapping } from '../../engine/mapping/loader.js';
import { toCanonical } from '../../engine/mapping/pipeline.js';
import { planSend } from '../../engine/mapping/send.js';

const BASELINE = BASELINE_MAPPING_DIR;

t.test("the baseline's mapping with contracts.enforce: same plan for every send fixture", async (t) => {
  const plain = loadMapping(BASELINE);
  if (!plain.ok) throw new Error("the baseline's mapping does not load");
  const enforced = loadEnforced(BASELINE);
  t.ok(enforced.send.guard, 'the guard is compiled');
  t.equal(plain.mapping.send.guard, undefined, 'the mapping itself does not enforce');
  const own = join(basename(BASELINE), plain.mapping.contracts.requestBody ?? '(none)');
  t.ok(enforced.send.guard?.schema.endsWith(own), `held to its own contracts.requestBody (${enforced.send.guard?.schema})`);
  let requests = 0;
  for (const fx of fixtures(BASELINE, plain.mapping).filter((f) => f.kind === 'send')) {
    const c = toCanonical(fx.text);
    if (!c.ok) continue;
    const without = await planSend(plain.mapping, c.message, fx.settings);
    if (without.kind === 'request') requests++;
    t.same(await planSend(enforced, c.message, fx.settings), without, fx.name);
  }
  t.ok(requests >= 20, `${requests} sends reach the guard`);
});

t.test('--help prints the usage and runs nothing', async (t) => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../../bench/mapping.ts', import.meta.url)), '--help'], { encoding: 'utf8', timeout: 60_000 });
  t.equal(out, `${USAGE}\n`);
  t.match(USAGE, /meta_enforce_send_ratio/);
});
