import t from 'tap';
import { SystemdNotifier } from '../../src/systemd/lifecycle.js';

t.test('what the notifier sends, in order', async (t) => {
  const sent: string[] = [];
  const n = new SystemdNotifier((m) => (sent.push(m), true));
  n.ready('DNS on 127.0.0.1:53; 0 services, 0 endpoints (0 healthy)');
  n.status('DNS on 127.0.0.1:53; 0 services, 0 endpoints (0 healthy)'); // unchanged: not sent again
  n.status('DNS on 127.0.0.1:53; 1 service, 1 endpoint (1 healthy)');
  n.extendTimeout(20_000);
  n.reloading();
  n.reloaded({ applied: ['ttl'], restart: [] });
  n.watchdog();
  n.stopping();
  t.equal(sent.length, 7);
  t.equal(sent[0], 'READY=1\nSTATUS=DNS on 127.0.0.1:53; 0 services, 0 endpoints (0 healthy)');
  t.equal(sent[1], 'STATUS=DNS on 127.0.0.1:53; 1 service, 1 endpoint (1 healthy)');
  t.equal(sent[2], 'EXTEND_TIMEOUT_USEC=20000000');
  t.match(sent[3], /^RELOADING=1\nMONOTONIC_USEC=\d+$/);
  t.equal(sent[4], 'READY=1\nSTATUS=reloaded: applied ttl');
  t.equal(sent[5], 'WATCHDOG=1');
  t.equal(sent[6], 'STOPPING=1\nSTATUS=stopping');
});

t.test('without systemd every call is a no-op', async (t) => {
  const n = new SystemdNotifier(null);
  t.equal(n.enabled, false);
  n.ready();
  n.stopping();
  t.pass('nothing thrown');
});
