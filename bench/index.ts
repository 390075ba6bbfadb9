// `npm run bench`: every benchmark, in the order that keeps them from disturbing each other, and one
// JSON object of every figure as the last line (see BENCHMARKS.md for what each one means).
//   1. mapping micro-bench (bench/mapping.ts): wabridge's fast path vs jsonata vs hand-written Meta;
//   2. the send flow in-process (bench/send-flow.ts): µs and KB allocated per message, no network,
//      and what the message trace adds to it (trace on vs off in the same process);
//   3. the official JSONata suite against the compiler: the fraction compiled and identical;
//   4. service and webhook bench (bench/service.ts): autocannon in its own process against wabridge,
//      a bare Fastify pass-through and wabridge on plain jsonata, each in its own process.
//   5. the message lifecycle (bench/lifecycle.ts): send + sent/delivered/read + callbacks, wabridge on
//      SQLite and on Redis against a bare pass-through of the same HTTP legs, and `wabridge serve
//      --workers 1` against `--workers 2` (workers_scaling);
//   6. `npm start` past capacity (bench/overload.ts): -c 100, 1500 and 3000 against the demo.
//   npm run bench [-- --quick] [-- --soak [--soak-seconds N]] [-- --skip-service]
// --quick takes about five minutes (each npm start level waits for its statuses to drain); --soak adds the 5-minute memory soak at -c 500.
import { runMappingBench } from './mapping.js';
import { runSendFlowBench } from './send-flow.js';
import { runLifecycleBench } from './lifecycle.js';
import { runOverloadBench } from './overload.js';
import { runServiceBench } from './service.js';
import { runJsonataSuite, suiteDir } from '../test/support/jsonata-suite.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const soakAt = argv.indexOf('--soak-seconds');
const soak = argv.includes('--soak') || soakAt >= 0 ? (soakAt >= 0 ? Number(argv[soakAt + 1]) : 300) : undefined;
const log = (line: string) => console.log(line);
const started = performance.now();

log(`== mapping micro-bench (${quick ? 'quick' : 'full'}) ==`);
const mapping = await runMappingBench({ quick, log });

log('== send flow, in-process ==');
const sendFlow = await runSendFlowBench({ quick, log });

log('== JSONata test suite on the compiler ==');
let jsonataSuiteCompiled: number | null = null;
if (suiteDir) {
  const suite = await runJsonataSuite(suiteDir);
  jsonataSuiteCompiled = Math.round((suite.identical / suite.total) * 1000) / 1000;
  log(`jsonata-suite: ${suite.identical}/${suite.total} cases compiled and identical (${suite.failures.length} failures)`);
} else {
  log('jsonata-suite: skipped, ../shared/jsonata-test-suite not found');
}

let service: Awaited<ReturnType<typeof runServiceBench>> | undefined;
if (!argv.includes('--skip-service')) {
  log(`== service and webhook bench (${quick ? 'quick' : 'full'}${soak ? `, soak ${soak} s` : ''}) ==`);
  service = await runServiceBench({ quick, ...(soak ? { soak } : {}), log });
  for (const r of service.runs) {
    log(
      `${r.target.padEnd(16)} c${String(r.connections).padEnd(5)} BSP ${String(r.bspDelayMs).padStart(3)} ms: ${String(r.rps).padStart(6)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, max ${r.max} ms, errors ${r.errors}, rss ${r.rssMb} MB`,
    );
  }
}

let lifecycle: Awaited<ReturnType<typeof runLifecycleBench>> | undefined;
let overload: Awaited<ReturnType<typeof runOverloadBench>> | undefined;
if (!argv.includes('--skip-service')) {
  log(`== message lifecycle (${quick ? 'quick' : 'full'}) ==`);
  lifecycle = await runLifecycleBench({ quick, log, only: ['passthrough', 'sqlite', 'redis', 'workers1', 'workers2'] });
  log(`== npm start past capacity (${quick ? 'quick' : 'full'}) ==`);
  overload = await runOverloadBench({ quick, log });
}

// the headline figures first, then every other one
const { mapping_vs_handwritten, mapping_speedup_vs_jsonata, ...mappingRest } = mapping;
const { runs, c1500_p99_ms, c1500_errors, c1500_vs_passthrough, ...serviceRest } = service ?? { runs: [] as unknown[] };
const summary = {
  mapping_vs_handwritten,
  mapping_speedup_vs_jsonata,
  c1500_p99_ms: c1500_p99_ms ?? null,
  c1500_errors: c1500_errors ?? null,
  c1500_vs_passthrough: c1500_vs_passthrough ?? null,
  jsonata_suite_compiled: jsonataSuiteCompiled,
  ...mappingRest,
  ...sendFlow,
  ...serviceRest,
  ...(lifecycle ?? {}),
  ...(overload ?? {}),
  runs,
  bench_wall_s: Math.round((performance.now() - started) / 100) / 10,
};
log(`bench: done in ${summary.bench_wall_s} s`);
console.log(JSON.stringify(summary));
