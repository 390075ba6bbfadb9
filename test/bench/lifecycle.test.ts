// The lifecycle bench runs end to end on a few messages: every status of every message reaches the
// sink through wabridge and through the pass-through, and the figures it reports are computed from
// that (nothing here is timed).
import t from 'tap';
import { runLifecycleBench } from '../../bench/lifecycle.js';

t.test('100 messages through wabridge on SQLite and through the pass-through', async (t) => {
  const lines: string[] = [];
  const f = await runLifecycleBench({ messages: 100, only: ['passthrough', 'sqlite'], log: (l) => lines.push(l) });
  t.equal(f.lifecycle_runs.length, 2);
  for (const r of f.lifecycle_runs) {
    t.equal(r.sendErrors, 0, `${r.target}: every send answered success`);
    t.equal(r.statusesAtSink, 300, `${r.target}: sent, delivered and read of each message at the sink`);
    t.ok(r.msgsPerS > 0 && r.cpuMsPerMsg > 0 && r.allMsPerMsg >= r.cpuMsPerMsg, `${r.target}: ${r.msgsPerS} messages/s, ${r.cpuMsPerMsg} ms CPU each`);
  }
  t.equal(f.lifecycle_msgs_per_s, f.lifecycle_runs[1]!.msgsPerS);
  t.equal(f.lifecycle_vs_passthrough, Math.round((f.lifecycle_runs[1]!.msgsPerS / f.lifecycle_runs[0]!.msgsPerS) * 100) / 100);
  t.equal(f.lifecycle_redis_msgs_per_s, null, 'redis not asked for');
  t.equal(f.workers_scaling, null, '--workers not asked for');
  t.match(lines.join('\n'), /lifecycle sqlite +\d+ messages\/s completed/);
});

t.test('wabridge serve --workers 1 and --workers 2 from the CLI: every status at the sink, and their ratio', async (t) => {
  const f = await runLifecycleBench({ messages: 100, only: ['workers1', 'workers2'], log: () => undefined });
  const [w1, w2] = f.lifecycle_runs;
  for (const r of [w1!, w2!]) {
    t.equal(r.sendErrors, 0, `${r.target}: every send answered success`);
    t.equal(r.statusesAtSink, 300, `${r.target}: sent, delivered and read of each message at the sink`);
  }
  t.equal(f.workers_scaling, Math.round((w2!.msgsPerS / w1!.msgsPerS) * 100) / 100);
  t.ok(w2!.cpuMsPerMsg > 0, 'the CPU of the primary and its workers is counted');
});
