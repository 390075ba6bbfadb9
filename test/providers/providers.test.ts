// Every BSP folder under mappings/ against the local stand-in (test/providers/provider-suite.ts). A
// folder added later is picked up as it is; nothing here names a BSP.
import t from 'tap';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { providerDirs, providerSuite } from './provider-suite.js';

const dirs = providerDirs(fileURLToPath(new URL('../../mappings', import.meta.url)));
t.ok(dirs.length > 0, `BSP folders: ${dirs.map((d) => basename(d)).join(', ')}`);
for (const dir of dirs) t.test(basename(dir), (t) => providerSuite(t, dir));
