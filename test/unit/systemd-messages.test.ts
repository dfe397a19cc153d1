import t from 'tap';
import { extendTimeoutMessage, formatNotify, reloadingMessage, reloadStatus, statusLine, statusMessage, watchdogIntervalMs } from '../../src/systemd/messages.js';

t.test('notify messages are KEY=value lines with no stray newlines', async (t) => {
  t.equal(formatNotify({ READY: 1, STATUS: 'a\nb' }), 'READY=1\nSTATUS=a b');
  t.equal(statusMessage('ok'), 'STATUS=ok');
  t.equal(reloadingMessage(123456789n), 'RELOADING=1\nMONOTONIC_USEC=123456789');
  t.equal(extendTimeoutMessage(30_000_000), 'EXTEND_TIMEOUT_USEC=30000000');
  t.equal(extendTimeoutMessage(-5), 'EXTEND_TIMEOUT_USEC=0');
});

t.test('watchdog interval: half of WATCHDOG_USEC, only for this PID', async (t) => {
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 42), 15_000);
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42), 15_000);
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42), null, 'meant for another process');
  t.equal(watchdogIntervalMs({}, 42), null);
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '0' }, 42), null);
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: 'soon' }, 42), null);
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '1000' }, 42), 1, 'never 0 ms');
});

t.test('STATUS= lines', async (t) => {
  t.equal(statusLine({ services: 1, endpoints: 3, healthy: 2, dns: ['10.223.0.10:53', '127.0.0.1:53'] }), 'DNS on 10.223.0.10:53, 127.0.0.1:53; 1 service, 3 endpoints (2 healthy)');
  t.equal(statusLine({ services: 0, endpoints: 0, healthy: 0, dns: [] }), 'no DNS listener; 0 services, 0 endpoints (0 healthy)');
  t.equal(reloadStatus({ applied: [], restart: [] }), 'reloaded: nothing changed');
  t.equal(reloadStatus({ applied: ['ttl', 'services'], restart: ['domain'] }), 'reloaded: applied ttl, services; needs a restart: domain');
  t.equal(reloadStatus({ error: 'bad ttl' }), 'reload failed, running configuration kept: bad ttl');
});
