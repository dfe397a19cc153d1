import t from 'tap';
import { createLogger } from '../../src/log.js';
import { Watchdog } from '../../src/systemd/watchdog.js';

// WATCHDOG=1 follows the self-query: no answer, no ping. (Counted per probe, not timed.)

const log = createLogger('error');
const probes = async (n: () => number, count: number) => {
  while (n() < count) await new Promise((r) => setTimeout(r, 5));
};

t.test('pings after every successful probe, none while probes fail, again when they succeed', async (t) => {
  let ok = true;
  let probed = 0;
  let pings = 0;
  const w = new Watchdog({ intervalMs: 5, probe: async () => (probed++, ok), ping: () => pings++, log });
  w.start();
  t.teardown(() => w.stop());
  await probes(() => probed, 3);
  t.ok(pings >= 2, 'pinging while DNS answers');
  ok = false;
  await probes(() => probed, probed + 2); // the probe in flight may still have been a success
  const before = pings;
  await probes(() => probed, probed + 5);
  t.equal(pings, before, 'no ping while the self-query fails');
  ok = true;
  await probes(() => probed, probed + 2);
  t.ok(pings > before, 'pings again');
});

t.test('a probe that never settles blocks further pings (it is not stacked)', async (t) => {
  let probed = 0;
  let pings = 0;
  const w = new Watchdog({ intervalMs: 5, probe: () => (probed++, new Promise<boolean>(() => undefined)), ping: () => pings++, log });
  w.start();
  t.teardown(() => w.stop());
  await new Promise((r) => setTimeout(r, 50));
  t.equal(probed, 1);
  t.equal(pings, 0);
});
