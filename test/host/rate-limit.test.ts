// The per-tenant BSP rate limit in one process (engine/host/concurrency.ts LocalRateLimiter), on an
// injected clock: a fixed window per epoch second, sends over the rate wait for the next second as
// long as that fits in maxWaitMs, the rest are refused.
import t from 'tap';
import { LocalRateLimiter } from '../../engine/host/concurrency.js';

function fakeClock(start: number) {
  let now = start;
  const sleeps: number[] = [];
  return {
    now: () => now,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    },
    advance: (ms: number) => (now += ms),
    sleeps,
  };
}

t.test('at most perSecond takes per epoch second, then refused when maxWaitMs is 0', async (t) => {
  const c = fakeClock(1_000_000_200);
  const rate = new LocalRateLimiter(c);
  const got = [];
  for (let i = 0; i < 5; i++) got.push(await rate.take('a', 3, 0));
  t.same(got, [true, true, true, false, false], '3 of 5 in the same second');
  t.same(c.sleeps, [], 'never slept');
  t.ok(await rate.take('b', 3, 0), 'another tenant has its own window');
  c.advance(800);
  t.ok(await rate.take('a', 3, 0), 'the next epoch second is a new window');
});

t.test('over the rate: waits for the next second within maxWaitMs', async (t) => {
  const c = fakeClock(1_000_000_700);
  const rate = new LocalRateLimiter(c);
  for (let i = 0; i < 2; i++) t.ok(await rate.take('a', 2, 0));
  t.ok(await rate.take('a', 2, 500), 'waited for the next second (300 ms away)');
  t.same(c.sleeps, [301], 'slept until just inside the next window');
  t.equal(c.now(), 1_000_001_001);
  t.ok(await rate.take('a', 2, 0), 'second take of the new window');
  t.notOk(await rate.take('a', 2, 998), 'the window after is 999+1 ms away: more than maxWaitMs');
  t.ok(await rate.take('a', 2, 2500), 'within 2.5 s it fits');
  t.equal(c.now(), 1_000_002_001, 'taken in the following second');
});

t.test('a burst is spread over the following seconds, the rest refused at the deadline', async (t) => {
  const c = fakeClock(1_000_000_300);
  const rate = new LocalRateLimiter(c);
  // Sequential takes, each with a deadline of 3 s from the burst's start.
  const start = c.now();
  const perSecond = new Map<number, number>();
  let refused = 0;
  for (let i = 0; i < 50; i++) {
    if (await rate.take('a', 10, 3000 - (c.now() - start))) {
      const sec = Math.floor(c.now() / 1000);
      perSecond.set(sec, (perSecond.get(sec) ?? 0) + 1);
    } else refused++;
  }
  t.same([...perSecond.values()], [10, 10, 10, 10], '10 in each of the 4 seconds the 3 s deadline reaches');
  t.equal(refused, 10, 'the other 10 refused');
});

t.test('real clock: a take over the rate resolves in the next second', async (t) => {
  const rate = new LocalRateLimiter();
  t.ok(await rate.take('r', 1, 0));
  const before = Math.floor(Date.now() / 1000);
  t.ok(await rate.take('r', 1, 1100));
  t.ok(Math.floor(Date.now() / 1000) > before, 'resumed in a later second');
  await rate.close();
});
