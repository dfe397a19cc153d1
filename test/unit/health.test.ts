import t from 'tap';
import { INITIAL, record, type HealthState } from '../../src/health/hysteresis.js';

// Rise/fall hysteresis (SPEC §6).

const run = (results: boolean[], rise: number, fall: number): boolean[] => {
  let s: HealthState = INITIAL;
  return results.map((ok) => (s = record(s, ok, { rise, fall })).healthy);
};

t.test('fall 3, rise 1 (the defaults)', async (t) => {
  t.same(run([false, false, false], 1, 3), [true, true, false], 'unhealthy on the third failure');
  t.same(run([false, false, true, false, false, false], 1, 3), [true, true, true, true, true, false], 'a success resets the count');
  t.same(run([false, false, false, true], 1, 3), [true, true, false, true], 'healthy again after one success');
});

t.test('rise 2', async (t) => {
  t.same(run([false, true, false, true, true], 2, 1), [false, false, false, false, true]);
});
