import t from 'tap';
import { oneAtATime } from '../../src/part.js';

// Reloads: one at a time, and any number of requests during one make a single next one.

t.test('calls run one at a time; those made while one runs share one more run', async (t) => {
  const started: number[] = [];
  const release: Array<() => void> = [];
  let n = 0;
  const run = oneAtATime(() => {
    const id = ++n;
    started.push(id);
    return new Promise<number>((resolve) => release.push(() => resolve(id)));
  });
  const first = run();
  await new Promise((r) => setImmediate(r));
  t.same(started, [1], 'the first runs at once');
  const waiting = [run(), run(), run()];
  t.equal(waiting[0], waiting[1], 'calls during a run share the one that waits');
  t.equal(waiting[1], waiting[2]);
  await new Promise((r) => setImmediate(r));
  t.same(started, [1], 'the next does not begin before the first ends');
  release.shift()!();
  t.equal(await first, 1);
  await new Promise((r) => setImmediate(r));
  t.same(started, [1, 2], 'one more run for all three calls');
  const after = run();
  t.not(after, waiting[0], 'a call once the waiting one has begun waits for a run of its own');
  release.shift()!();
  t.same(await Promise.all(waiting), [2, 2, 2]);
  await new Promise((r) => setImmediate(r));
  release.shift()!();
  t.equal(await after, 3);
});

t.test('a failed run does not stop the next', async (t) => {
  let calls = 0;
  const run = oneAtATime(async () => {
    calls++;
    if (calls === 1) throw new Error('bad file');
    return calls;
  });
  await t.rejects(run(), /bad file/);
  t.equal(await run(), 2);
});
