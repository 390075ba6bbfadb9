// The messaging endpoint past capacity, through the real server: a burst over the in-flight limit is
// answered CleverTap's 429 within the configured wait, the admitted requests succeed, and the tenant's
// deadline counts from the request's arrival, so the time it waited for a slot is not given twice. A
// burst of new connections is taken from the kernel before any of it is read.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { ROOT, startStack } from '../support/stack.js';
import { connectionBurst } from '../support/burst.js';

const sample = JSON.parse(readFileSync(join(ROOT, 'examples', 'clevertap', 'template-body-footer.json'), 'utf8')) as Record<string, unknown>;
const payload = (msgId: string) => ({ ...sample, msgId });

async function timed<T>(p: Promise<T>): Promise<T & { ms: number }> {
  const started = performance.now();
  const r = await p;
  return { ...r, ms: performance.now() - started };
}

t.test('a burst over the in-flight limit: 429 within maxWait for the excess, success for the rest', async (t) => {
  const s = await startStack({ overload: { initialInFlight: 4, minInFlight: 4, maxInFlight: 4, maxWait: '100ms' } });
  t.teardown(() => s.close());
  s.sim.setScenario({ scenario: 'slow', delayMs: 600 });
  const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => timed(s.send(payload(`over|1|1|${i}`)))));
  const ok = answers.filter((a) => a.status === 200);
  const shed = answers.filter((a) => a.status === 429);
  t.equal(ok.length, 4, 'the four admitted requests are answered');
  t.equal(shed.length, 36, 'the other 36 are shed');
  for (const a of ok) t.same(a.body, { status: 'success' });
  for (const a of shed) t.same(a.body, { message: 'Too many requests to process' }, 'CleverTap\'s documented 429 body');
  const slowestShed = Math.max(...shed.map((a) => a.ms));
  t.ok(slowestShed < 500, `the slowest 429 took ${slowestShed.toFixed(0)} ms (maxWait 100 ms; the BSP takes 600)`);
  t.equal(s.sim.sent().length, 4, 'shed requests never reached the BSP');

  const metrics = await (await request(`${s.host.url}/metrics`)).body.text();
  t.match(metrics, /wabridge_shed_total\{reason="queue_timeout"\} 36\b/);
  t.match(metrics, /wabridge_messages_total\{tenant="demo",answer="429"\} 36\b/);
  // The answers' time as wabridge saw it: every 429 within its wait, every success after the BSP's 600 ms.
  t.match(metrics, /wabridge_answer_seconds_bucket\{le="0.5",tenant="demo",answer="429"\} 36\b/);
  t.match(metrics, /wabridge_answer_seconds_count\{tenant="demo",answer="success"\} 4\b/);
  t.match(metrics, /wabridge_answer_seconds_bucket\{le="0.5",tenant="demo",answer="success"\} 0\b/);

  s.sim.setScenario('success');
  const after = await Promise.all(Array.from({ length: 4 }, (_, i) => s.send(payload(`over|1|2|${i}`))));
  t.same(after.map((a) => a.body), Array(4).fill({ status: 'success' }), 'within capacity again: every request succeeds');
});

t.test('the deadline counts from arrival: time spent waiting for a slot comes out of it', async (t) => {
  const s = await startStack({ deadline: '700ms', overload: { initialInFlight: 1, minInFlight: 1, maxInFlight: 1, maxWait: '2s' } });
  t.teardown(() => s.close());
  s.sim.setScenario({ scenario: 'slow', delayMs: 450 });
  const [first, second] = await Promise.all([timed(s.send(payload('wait|1|1|1'))), (async () => {
    await new Promise((r) => setTimeout(r, 20));
    return timed(s.send(payload('wait|1|1|2')));
  })()]);
  t.same(first.body, { status: 'success' }, 'the first holds the only slot for 450 ms');
  // The second waits ~430 ms for the slot, so ~270 ms of its 700 are left for a 450 ms BSP.
  t.match(second.body, { status: 'failure', error: { code: 2004, message: /^BSP did not answer within \d+ ms$/ } }, 'answered at its own deadline');
  t.ok(second.ms < 1100, `answered after ${second.ms.toFixed(0)} ms: its 700 ms count from arrival, not from the slot (that would be ~1150)`);
});

t.test("past the tenant's concurrency (CleverTap's contract) the 429 is held like admission's, and the slot goes on", async (t) => {
  const s = await startStack({ concurrency: 2, overload: { maxWait: '400ms' } });
  t.teardown(() => s.close());
  s.sim.setScenario({ scenario: 'slow', delayMs: 700 });
  const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => timed(s.send(payload(`tenantcap|1|1|${i}`)))));
  const ok = answers.filter((a) => a.status === 200);
  const over = answers.filter((a) => a.status === 429);
  t.equal(ok.length, 2, 'the tenant concurrency (2) is answered');
  t.equal(over.length, 4, 'the rest are past it');
  for (const a of over) {
    t.same(a.body, { message: 'Too many requests to process' });
    // Held for half of maxWait at least (an instant 429 invites an instant retry), well within the second.
    t.ok(a.ms >= 190 && a.ms < 900, `a 429 past the tenant's concurrency after ${a.ms.toFixed(0)} ms`);
  }
  t.equal(s.sim.sent().length, 2, 'nothing past the concurrency reached the BSP');
});

t.test('a burst of new connections is accepted before it is read, and every request of it is answered', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const N = 60;
  const auth = `Basic ${Buffer.from('demo:s3cret').toString('base64')}`;
  const bodies = await connectionBurst(
    Number(new URL(s.host.url).port),
    Array.from({ length: N }, (_, i) => ({ path: '/v1/tenants/demo/messages', headers: { authorization: auth }, body: JSON.stringify(payload(`burst|1|1|${i}`)) })),
  );
  t.equal(bodies.filter((b) => b === '{"status":"success"}').length, N, `all ${N} answered success`);
  const metrics = await (await request(`${s.host.url}/metrics`)).body.text();
  const held = Number(/^wabridge_connections_held_total (\d+)/m.exec(metrics)?.[1]);
  t.ok(held >= N - 2, `${held} connections held until their burst was in: the burst's ${N - 2} after its first two, and the simulator's status webhooks, which open theirs in bursts too`);
});
