import t from 'tap';
import { HttpError } from '../../src/api/http.js';
import { Serial } from '../../src/api/serial.js';

// Registration writes run one at a time, in arrival order, and a bounded number wait.

t.test('jobs run one at a time in order; a failing job does not stop the next; beyond the limit: 503', async (t) => {
  const q = new Serial(3);
  const log: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const first = q.run(async () => {
    log.push('1 start');
    await gate;
    log.push('1 end');
    return 1;
  });
  const second = q.run(async () => {
    log.push('2');
    throw new Error('disk');
  });
  const third = q.run(async () => {
    log.push('3');
    return 3;
  });
  await t.rejects(q.run(async () => 4), new HttpError(503, '3 writes are waiting for the state directory; try again later'));
  await Promise.resolve();
  t.same(log, ['1 start'], 'the others wait for the first');
  release();
  t.equal(await first, 1);
  await t.rejects(second, { message: 'disk' });
  t.equal(await third, 3);
  t.same(log, ['1 start', '1 end', '2', '3']);
  t.equal(await q.run(async () => 5), 5, 'room again once they are done');
});
