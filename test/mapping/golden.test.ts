// Every golden fixture of every mapping is a tap test: CI runs them with the rest of the suite.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { runGolden } from '../../engine/mapping/golden.js';

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));

for (const dir of ['mappings', 'test/mapping']) {
  t.test(`golden fixtures in ${dir}/`, async (t) => {
    const report = await runGolden(root(dir));
    t.same(report.loadErrors.map((e) => e.message), [], 'every mapping loads');
    t.ok(report.cases.length > 0, 'there are fixtures to run');
    for (const c of report.cases) {
      t.equal(c.outcome, 'pass', `${c.mapping}/${c.name}: ${c.description}`, { diagnostic: c.outcome !== 'pass', detail: c.detail });
    }
  });
}
