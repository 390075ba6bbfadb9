// Admission to the messaging endpoint (engine/host/admission.ts) and the gate that makes background
// rounds yield to it (engine/host/background-gate.ts), driven step by step: the AIMD adjustment is
// called with a given lag instead of waiting for a real loop to run late.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { Admission, type ShedReason } from '../../engine/host/admission.js';
import { BackgroundGate } from '../../engine/host/background-gate.js';
import { bspBudgetMs } from '../../engine/host/send-flow.js';

const make = (o: ConstructorParameters<typeof Admission>[0] = {}) => {
  const shed: ShedReason[] = [];
  const a = new Admission({ initialLimit: 2, minLimit: 1, maxLimit: 100, maxWaitMs: 1000, ...o }, (r) => shed.push(r));
  t.teardown(() => a.close());
  return { a, shed };
};

t.test('slots up to the limit are given at once; the next request waits for one to be given back', async (t) => {
  const { a, shed } = make();
  t.equal(a.enter(performance.now()), true);
  t.equal(a.enter(performance.now()), true);
  const third = a.enter(performance.now());
  t.type(third, Promise, 'over the limit: a promise');
  t.equal(a.queued, 1);
  t.ok(a.pressed, 'a waiting request is pressure');
  a.leave();
  t.equal(await third, true, 'the freed slot goes to the waiter');
  t.equal(a.inFlight, 2);
  t.equal(a.queued, 0);
  t.strictSame(shed, []);
});

t.test('a waiter whose wait is over is answered false (429) without a slot freeing', async (t) => {
  const { a, shed } = make({ initialLimit: 1, maxWaitMs: 40 });
  t.equal(a.enter(performance.now()), true);
  const started = performance.now();
  const second = a.enter(started);
  const third = a.enter(started + 20);
  t.equal(await second, false);
  const firstShedAfter = performance.now() - started;
  t.ok(firstShedAfter >= 39 && firstShedAfter < 500, `shed after ${firstShedAfter.toFixed(0)} ms (maxWait 40)`);
  t.equal(await third, false, 'the later waiter times out on its own clock');
  t.strictSame(shed, ['queue_timeout', 'queue_timeout']);
  t.equal(a.inFlight, 1, 'shed requests never held a slot');
});

t.test("the loop's lateness comes out of the wait, twice, down to half of maxWait", async (t) => {
  const { a, shed } = make({ initialLimit: 1, maxWaitMs: 400, targetLagMs: 150 });
  t.equal(a.enter(performance.now()), true);
  a.adjust(50);
  t.equal(a.answerBy(1000), 1300, '400 - 2 × 50 ms');
  a.adjust(250);
  t.equal(a.answerBy(1000), 1200, 'never less than half of maxWait: an instant 429 invites an instant retry');
  const started = performance.now();
  t.equal(await a.enter(started), false);
  const waited = performance.now() - started;
  t.ok(waited >= 190 && waited < 390, `shed after ${waited.toFixed(0)} ms`);
  t.strictSame(shed, ['queue_timeout']);
  t.equal(a.inFlight, 1);
});

t.test('a slot freed after a waiter ran out of time goes to the next one still in time', async (t) => {
  const { a, shed } = make({ initialLimit: 1, maxWaitMs: 1000 });
  t.equal(a.enter(performance.now()), true);
  const stale = a.enter(performance.now() - 2000); // arrived long ago: its time is over
  const fresh = a.enter(performance.now());
  a.leave();
  t.equal(await stale, false);
  t.equal(await fresh, true);
  t.strictSame(shed, ['queue_timeout']);
});

t.test('the limit shrinks by 10 % while the loop runs late and grows by 5 % while requests wait and it keeps time', async (t) => {
  const { a } = make({ initialLimit: 50, minLimit: 40, maxLimit: 60, targetLagMs: 50 });
  a.adjust(80);
  t.equal(a.limit, 45);
  a.adjust(80);
  t.equal(a.limit, 40);
  a.adjust(500);
  t.equal(a.limit, 40, 'never below minLimit');
  a.adjust(10);
  t.equal(a.limit, 40, 'no demand: no growth');
  for (let i = 0; i < 40; i++) t.equal(a.enter(performance.now()), true);
  const waiting = [a.enter(performance.now()), a.enter(performance.now())];
  a.adjust(30);
  t.equal(a.limit, 40, 'between target/2 and target: hold');
  a.adjust(10);
  t.equal(a.limit, 42, 'grows by 5 %, rounded up');
  t.strictSame(await Promise.all(waiting), [true, true], 'growth admits the waiters');
  for (let i = 0; i < 10; i++) {
    while (a.enter(performance.now()) === true); // demand: one request waits
    a.adjust(0);
  }
  t.equal(a.limit, 60, 'never above maxLimit');
  t.equal(a.lagMs, 0);
});

t.test('the limit keeps half of what the loop carried on time lately: lateness it does not cause is not cut', async (t) => {
  const { a } = make({ initialLimit: 100, minLimit: 10, maxLimit: 1000, targetLagMs: 50 });
  for (let i = 0; i < 100; i++) t.equal(a.enter(performance.now()), true);
  const waiting = a.enter(performance.now()); // the limit is in use
  a.adjust(10, 1_000);
  t.equal(a.limit, 105, 'on time and in use: grows');
  t.equal(await waiting, true);
  t.equal(a.floor(1_000), 50, 'half of the 100 it carried on time');
  for (let i = 0; i < 30; i++) a.adjust(400, 1_100 + i * 100);
  t.equal(a.limit, 50, 'a loop late whatever the limit does not take it below the floor');
  t.equal(a.snapshot().floor, a.floor(), 'the admin status shows it');
  for (let i = 0; i < 30; i++) a.adjust(400, 25_000 + i * 100);
  t.equal(a.floor(27_000), 10, '10-20 s later, nothing carried on time since: the floor is minLimit');
  t.equal(a.limit, 10, 'and the limit goes down to it');
});

t.test('a sample late while the limit is not in use carries nothing', async (t) => {
  const { a } = make({ initialLimit: 100, minLimit: 10, maxLimit: 1000, targetLagMs: 50 });
  for (let i = 0; i < 60; i++) a.enter(performance.now());
  a.adjust(10, 1_000);
  t.equal(a.floor(1_000), 10, '60 in flight under a limit of 100 proves nothing about 100');
  a.adjust(400, 1_100);
  t.equal(a.limit, 90);
});

t.test('close answers every waiter and later request false', async (t) => {
  const { a, shed } = make({ initialLimit: 1 });
  a.enter(performance.now());
  const waiting = a.enter(performance.now());
  a.close();
  t.equal(await waiting, false);
  t.equal(a.enter(performance.now()), false);
  t.strictSame(shed, ['closing']);
});

t.test('a closed admission reads no lag from its stopped probe', async (t) => {
  const a = new Admission({ sampleMs: 10_000 });
  a.start();
  a.close();
  await sleep(60);
  t.equal(a.lagNowMs(), 0, 'requests still in flight at shutdown keep their whole budget');
});

t.test('the probe measures a blocked loop', async (t) => {
  const a = new Admission({ sampleMs: 1000, targetLagMs: 50 });
  a.start();
  t.teardown(() => a.close());
  await sleep(30);
  const until = performance.now() + 120;
  while (performance.now() < until);
  await sleep(15);
  a.adjust();
  t.ok(a.lagMs >= 90, `a 120 ms block reads as ${a.lagMs.toFixed(0)} ms of lag`);
  t.ok(a.pressed, 'lag over the target is pressure');
});

t.test('lagNowMs reads a loop blocked right now, before any sample or probe has seen it', async (t) => {
  const a = new Admission({ sampleMs: 10_000 });
  t.equal(a.lagNowMs(), 0, 'not started: nothing measured');
  a.start();
  t.teardown(() => a.close());
  await sleep(30);
  const until = performance.now() + 120;
  while (performance.now() < until);
  // Still inside the same turn of the loop: the probe is due and has not fired.
  const now = a.lagNowMs();
  t.ok(now >= 100, `read during a 120 ms block: ${now.toFixed(0)} ms`);
  t.equal(a.lagMs, 0, 'the last full sample does not know yet');
  const at = performance.now();
  t.ok(a.answerBy(at) - at <= a.options.maxWaitMs - 200 + 1, 'a 429 is held for less while the loop runs late');
});

t.test('bspBudgetMs: the deadline less twice the lag, never under half of it', async (t) => {
  t.equal(bspBudgetMs(900, 0), 900);
  t.equal(bspBudgetMs(900, 100), 700);
  t.equal(bspBudgetMs(900, 400), 450);
  t.equal(bspBudgetMs(900, 12.4), 875);
});

t.test('background gate: holds while pressed, at most maxHoldMs in a row, and reports how long', async (t) => {
  let pressed = true;
  const held: number[] = [];
  const g = new BackgroundGate(() => pressed, 1000, (ms) => held.push(ms));
  t.equal(g.hold(0), true);
  t.equal(g.hold(500), true);
  t.equal(g.hold(1000), false, 'held for maxHoldMs: this round runs');
  t.strictSame(held, [1000]);
  t.equal(g.hold(1100), true, 'a new hold starts');
  pressed = false;
  t.equal(g.hold(1300), false);
  t.strictSame(held, [1000, 200]);
  t.equal(g.hold(1400), false, 'no pressure, nothing held');
  t.strictSame(held, [1000, 200]);
});
