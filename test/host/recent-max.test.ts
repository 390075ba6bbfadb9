// engine/host/recent-max.ts: the largest recent note, kept a window or two, then forgotten.
import t from 'tap';
import { RecentMax } from '../../engine/host/recent-max.js';

t.test('the largest note of the current and the previous window, then forgotten', async (t) => {
  const w = new RecentMax(500);
  t.equal(w.value(0), 0);
  w.note(120, 10);
  w.note(80, 20);
  t.equal(w.value(400), 120);
  t.equal(w.value(700), 120, 'kept through the next window');
  w.note(30, 800);
  t.equal(w.value(1_300), 30, 'two windows on, only the newer note counts');
  t.equal(w.value(3_000), 0, 'after a quiet second nothing is left');
});
