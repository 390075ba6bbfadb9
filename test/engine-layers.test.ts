// engine/'s folders import only downwards (eslint.config.js holds the rule, each folder's README.md
// says it in prose). The rule is only worth something if it fires: each case here lints one import
// as if it were written in a given engine file, and must be refused or accepted as the README says.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const eslint = new ESLint({ cwd: ROOT });
const ENGINE = join(ROOT, 'engine');
const folders = readdirSync(ENGINE).filter((d) => statSync(join(ENGINE, d)).isDirectory());

async function refusals(file: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(`${source}\nexport const used = x;\n`, { filePath: join(ENGINE, file) });
  return result!.messages.filter((m) => m.ruleId === '@typescript-eslint/no-restricted-imports').map((m) => m.message);
}

t.test('every engine folder has a README naming its job and imports, and a rule in eslint.config.js', async (t) => {
  t.strictSame(folders.sort(), ['cli', 'clevertap', 'host', 'mapping', 'standins', 'stores'].sort(), 'a new folder needs a README and a layer rule');
  for (const f of folders) {
    t.ok(existsSync(join(ENGINE, f, 'README.md')), `engine/${f}/README.md`);
    t.match(readFileSync(join(ENGINE, f, 'README.md'), 'utf8'), /May import/, `engine/${f}/README.md says what it may import`);
  }
  t.notOk(readdirSync(ENGINE).some((f) => f.endsWith('.ts')), 'no module sits at engine/ top level, outside every folder');
});

t.test('wrong-way imports are refused', async (t) => {
  const wrong: [string, string][] = [
    ['mapping/send.ts', "import { x } from '../host/metrics.js';"],
    ['mapping/golden.ts', "import type { x } from '../stores/store.js';"],
    ['mapping/loader.ts', "import { x } from '../standins/http.js';"],
    ['clevertap/normalize.ts', "import { x } from '../mapping/errors.js';"],
    ['stores/sqlite.ts', "import { x } from '../host/logger.js';"],
    ['stores/redis.ts', "import { x } from '../mapping/webhook.js';"],
    ['host/server.ts', "import { x } from '../cli/main.js';"],
    ['host/host.ts', "import { x } from '../standins/bsp-simulator.js';"],
    ['standins/http.ts', "import { x } from '../host/http-call.js';"],
    ['host/server.ts', "import { x } from '../../test/support/stack.js';"],
  ];
  for (const [file, source] of wrong) {
    const found = await refusals(file, source);
    t.equal(found.length, 1, `engine/${file}: ${source}`);
  }
});

t.test('downward imports pass', async (t) => {
  const right: [string, string][] = [
    ['mapping/pipeline.ts', "import { x } from '../clevertap/normalize.js';"],
    ['mapping/send.ts', "import { x } from './errors.js';"],
    ['stores/redis.ts', "import type { x } from '../mapping/webhook.js';"],
    ['host/server.ts', "import { x } from '../mapping/send.js';"],
    ['host/host.ts', "import { x } from '../stores/redis.js';"],
    ['standins/bsp-simulator.ts', "import { x } from '../mapping/send.js';"],
    ['cli/serve.ts', "import { x } from '../standins/bsp-simulator.js';"],
    ['cli/serve.ts', "import { x } from '../host/host.js';"],
  ];
  for (const [file, source] of right) t.strictSame(await refusals(file, source), [], `engine/${file}: ${source}`);
});
