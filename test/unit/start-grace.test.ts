import t from 'tap';
import { StartGrace } from '../../src/dns/start-grace.js';
import { until } from '../helpers/until.js';

t.test('the window closes when every sync is done, and says so once', async (t) => {
  const g = new StartGrace(60_000);
  t.teardown(() => g.end());
  t.ok(g.active, 'open from construction');
  let podman = false;
  const reports: Array<[number, string[]]> = [];
  let ended = 0;
  g.onEnd(() => ended++);
  g.start([{ name: 'Podman', done: () => podman }], (ms, missing) => reports.push([ms, missing]));
  t.ok(g.active, 'still open while Podman has not synced');
  podman = true;
  await until('the window to close', () => !g.active, 5000);
  t.equal(reports.length, 1);
  t.same(reports[0]![1], [], 'nothing missing');
  t.equal(ended, 1);
  g.end();
  t.equal(ended, 1, 'onEnd runs once');
  let late = 0;
  g.onEnd(() => late++);
  t.equal(late, 1, 'onEnd after the end runs at once');
});

t.test('the grace period closes it with what is still missing', async (t) => {
  const g = new StartGrace(100);
  t.teardown(() => g.end());
  const reports: string[][] = [];
  g.start([{ name: 'Podman', done: () => true }, { name: 'cluster', done: () => false }], (_ms, missing) => reports.push(missing));
  await until('the window to close', () => !g.active, 5000);
  t.same(reports, [['cluster']]);
});

t.test('nothing to wait for, or 0: closed at once and nothing reported', async (t) => {
  const g = new StartGrace(5000);
  let reported = false;
  g.start([], () => (reported = true));
  t.notOk(g.active);
  t.notOk(reported);
  t.notOk(new StartGrace(0).active, '--start-grace 0 is off');
});
