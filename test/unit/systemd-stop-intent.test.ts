import t from 'tap';
import { intentOfJob, stopIntent } from '../../src/systemd/stop-intent.js';

t.test('the job systemd queued for the unit tells a restart from a stop', async (t) => {
  for (const job of ['restart', 'try-restart', 'reload-or-restart']) t.equal(intentOfJob(job).intent, 'restart', job);
  for (const job of ['stop', 'start', 'verify-active']) t.equal(intentOfJob(job).intent, 'stop', job);
  t.equal(intentOfJob(null).intent, 'stop', 'no job: a plain signal is a stop');
  t.match(intentOfJob('restart').why, /restart job/);
});

t.test('without systemd, a stop (no bus is asked)', async (t) => {
  t.same(await stopIntent({}), { intent: 'stop', why: 'not run by systemd' });
});

t.test('no answer from systemd on the bus (none here, or not our unit): a stop, within the time limit, never a throw', async (t) => {
  const d = await stopIntent({ INVOCATION_ID: 'x', DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/nonexistent/bus' }, { timeoutMs: 500 });
  t.equal(d.intent, 'stop');
  t.match(d.why, /could not ask systemd/);
});
