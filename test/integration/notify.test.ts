import t from 'tap';
import { join } from 'node:path';
import { ROOT, startDaemon } from '../helpers/daemon.js';
import { notifySocket } from '../helpers/notify-socket.js';
import { nativeSkip } from '../helpers/native.js';
import { expectLog } from '../helpers/until.js';

// The daemon talks to a real unix datagram NOTIFY_SOCKET the way it does under systemd: through
// systemd/notify-socket-exec (or the native addon, which takes precedence when built), from its own PID, with READY=1 only once it
// serves, STATUS= that follows the registry, WATCHDOG=1 while DNS answers, RELOADING=1 with
// MONOTONIC_USEC then READY=1 around SIGHUP, STOPPING=1 on SIGTERM.

const EXEC = join(ROOT, 'systemd', 'notify-socket-exec');
const has = (k: string, v?: string) => (n: { fields: Record<string, string> }) => (v === undefined ? k in n.fields : n.fields[k] === v);

t.test('READY, STATUS, WATCHDOG, RELOADING, STOPPING from the main PID', async (t) => {
  const sock = await notifySocket(t);
  const d = await startDaemon(t, {
    wrap: [EXEC],
    env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '400000' },
    config: 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.1\n',
  });

  const ready = await sock.next(has('READY', '1'));
  t.equal(ready.n.pid, d.proc.pid, 'sent by the main PID (exec kept it), so NotifyAccess=main accepts it');
  t.match(ready.n.fields.STATUS, `DNS on 127.0.0.1:${d.dnsPort}; 1 service, 1 endpoint (1 healthy)`);
  t.notOk(sock.messages.slice(0, ready.index).some(has('WATCHDOG')), 'no watchdog ping before READY=1');

  // WATCHDOG=1 keeps coming while the DNS path answers.
  const w1 = await sock.next(has('WATCHDOG', '1'), ready.index + 1);
  const w2 = await sock.next(has('WATCHDOG', '1'), w1.index + 1);
  t.equal(w2.n.pid, d.proc.pid);

  // STATUS= follows the registry.
  const res = await fetch(`${d.api}/api/v1/services/default/api1/endpoints`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...d.auth() }, body: JSON.stringify({ address: '10.0.0.2' }),
  });
  t.ok(res.ok, `registered through the API (${res.status})`);
  await sock.next((n) => /2 services, 2 endpoints/.test(n.fields.STATUS ?? ''), ready.index + 1);

  // SIGHUP with a config change that applies live and one that needs a restart.
  const from = sock.messages.length;
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(d.dir, 'config.yaml'), 'ttl: 9s\ndomain: example.internal\n');
  const before = process.hrtime.bigint() / 1000n;
  d.proc.kill('SIGHUP');
  const reloading = await sock.next(has('RELOADING', '1'), from);
  const mono = BigInt(reloading.n.fields.MONOTONIC_USEC ?? '0');
  t.ok(mono >= before && mono <= process.hrtime.bigint() / 1000n, 'MONOTONIC_USEC is CLOCK_MONOTONIC at the reload');
  const after = await sock.next(has('READY', '1'), reloading.index + 1);
  t.match(after.n.fields.STATUS, /reloaded: applied .*ttl.*; needs a restart: domain/);

  d.proc.kill('SIGTERM');
  t.equal(await d.exitCode(), 0);
  const stopping = await sock.next(has('STOPPING', '1'), after.index + 1);
  t.equal(stopping.n.pid, d.proc.pid);
});

t.test('a failed reload is reported as STATUS= and READY=1 follows', async (t) => {
  const sock = await notifySocket(t);
  const d = await startDaemon(t, { wrap: [EXEC], env: { NOTIFY_SOCKET: sock.path } });
  await sock.next(has('READY', '1'));
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(d.dir, 'config.yaml'), 'ttl: forever\n');
  const from = sock.messages.length;
  d.proc.kill('SIGHUP');
  const r = await sock.next(has('RELOADING', '1'), from);
  const ready = await sock.next(has('READY', '1'), r.index + 1);
  t.match(ready.n.fields.STATUS, /^reload failed, running configuration kept: .*ttl/);
  t.equal(d.proc.exitCode, null, 'still running');
});

t.test('a blocked event loop stops the watchdog pings', async (t) => {
  const sock = await notifySocket(t);
  const d = await startDaemon(t, {
    wrap: [EXEC],
    env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '200000', PODMAN_SWARM_DNS_DEBUG_HANG_ON_SIGUSR2: '1' },
  });
  const ready = await sock.next(has('READY', '1'));
  await sock.next(has('WATCHDOG', '1'), ready.index + 1);
  d.proc.kill('SIGUSR2');
  // Let a ping already in flight land, then watch ten intervals.
  await new Promise((r) => setTimeout(r, 300));
  const count = sock.messages.length;
  await new Promise((r) => setTimeout(r, 1000));
  t.same(sock.messages.slice(count).filter(has('WATCHDOG')), [], 'no WATCHDOG=1 while the loop is blocked');
  d.proc.kill('SIGKILL');
});

t.test('an abstract NOTIFY_SOCKET (@name) works the same', async (t) => {
  const sock = await notifySocket(t, { abstract: true });
  const d = await startDaemon(t, { wrap: [EXEC], env: { NOTIFY_SOCKET: sock.path } });
  const ready = await sock.next(has('READY', '1'));
  t.equal(ready.n.pid, d.proc.pid);
});

t.test('without notify-socket-exec or the addon, NOTIFY_SOCKET gets a clear warning', async (t) => {
  const sock = await notifySocket(t);
  const d = await startDaemon(t, { env: { NOTIFY_SOCKET: sock.path, PODMAN_SWARM_DNS_NATIVE_ADDON: '/nonexistent/podman-swarm-dns.node' } });
  await expectLog(t, d, /NOTIFY_SOCKET is set but neither the native addon nor notify-socket-exec/);
  t.same(sock.messages, []);
});

t.test('with the native addon, READY=1 comes from the main PID without notify-socket-exec', { skip: nativeSkip() }, async (t) => {
  const sock = await notifySocket(t);
  const d = await startDaemon(t, { env: { NOTIFY_SOCKET: sock.path } });
  const ready = await sock.next(has('READY', '1'));
  t.equal(ready.n.pid, d.proc.pid);
  t.match(ready.n.fields.STATUS, `DNS on 127.0.0.1:${d.dnsPort}`);
});
