import t from 'tap';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, ROOT } from '../helpers/daemon.js';
import { installUnit } from '../helpers/unit.js';
import { bookwormRootfs, bootMachine, nspawnUsable, type Machine } from '../helpers/nspawn.js';
import { waiter } from '../helpers/until.js';

const until = waiter(20_000);

// The unit under a real systemd PID 1 (Debian bookworm in systemd-nspawn) with the real
// systemd-resolved and D-Bus: enable --now, READY, resolvectl/getent answers for a service
// registered through the API, reload, kill -9 → restart, a hung event loop → watchdog restart,
// resolved restart → links re-applied, stop → RevertLink. The daemon is this checkout (dist and
// node_modules bind-mounted read-only) run by Debian's Node.js 18.

const skip = nspawnUsable();
if (skip || !existsSync(CLI)) {
  t.comment(`skipped: ${skip ?? 'dist/cli.js is not built (npm run build)'}`);
  process.exit(0);
}

const UNIT = 'podman-swarm-dns';

function show(m: Machine, prop: string): string {
  return m.exec('systemctl', 'show', '-p', prop, '--value', UNIT).trim();
}

const resolves = (m: Machine, name: string, address: string) => () => m.exec('resolvectl', 'query', '--cache=no', name).includes(address);

t.test('under systemd: notify, resolved, reload, restart, watchdog, stop', async (t) => {
  const rootfs = bookwormRootfs();
  const m = await bootMachine(t, { rootfs, prefix: 's7sd', bindRo: [[ROOT, '/opt/podman-swarm-dns']] });
  installUnit(m);

  const verify = m.run('systemd-analyze', 'verify', `/etc/systemd/system/${UNIT}.service`);
  t.same(verify, { code: 0, out: '' }, 'systemd-analyze verify is clean');

  m.exec('systemctl', 'enable', '--now', UNIT); // returns once READY=1 arrived (Type=notify)
  t.equal(show(m, 'ActiveState'), 'active');
  t.match(show(m, 'StatusText'), /^DNS on 10\.223\.0\.10:53, 127\.0\.0\.1:53; 0 services/, 'STATUS= from the daemon');
  const pid1 = show(m, 'MainPID');

  m.exec('curl', '-sf', '-XPOST', '-H', 'content-type: application/json', '-d', '{"address":"10.0.0.7"}',
    '--unix-socket', '/run/podman-swarm-dns/api.sock', 'http://x/api/v1/services/default/web/endpoints');
  await until('resolvectl to answer web.default.cluster.local', resolves(m, 'web.default.cluster.local', '10.0.0.7'));
  t.match(m.exec('resolvectl', 'status', 'pswarm0'), /DNS Servers: 10\.223\.0\.10[\s\S]*DNS Domain: ~cluster\.local/);
  t.match(m.exec('getent', 'hosts', 'web.default.cluster.local'), /^10\.0\.0\.7\s+web\.default\.cluster\.local/, 'getent through nss-resolve');
  t.notMatch(m.exec('resolvectl', 'status', 'pswarm0'), /\+DefaultRoute/, 'not a default route for other names');
  await until('STATUS= to count the service', () => /1 service, 1 endpoint/.test(show(m, 'StatusText')));

  // Reload: one option applied live, one that needs a restart.
  mkdirSync(join(m.root, 'etc/podman-swarm-dns'), { recursive: true });
  writeFileSync(join(m.root, 'etc/podman-swarm-dns/config.yaml'), 'ttl: 7s\nnode-name: renamed\n');
  m.exec('systemctl', 'reload', UNIT);
  await until('the reload outcome in STATUS=', () => /^reloaded: applied ttl; needs a restart: node-name$/.test(show(m, 'StatusText')));
  t.equal(show(m, 'MainPID'), pid1, 'reload kept the process');
  t.match(m.exec('dig', '+noall', '+answer', '@127.0.0.1', 'web.default.cluster.local'), /\s7\s+IN\s+A\s+10\.0\.0\.7/, 'new TTL served');
  writeFileSync(join(m.root, 'etc/podman-swarm-dns/config.yaml'), '');

  // resolved restarts: our link settings come back.
  m.exec('systemctl', 'restart', 'systemd-resolved');
  await until('resolved to be configured again', resolves(m, 'web.default.cluster.local', '10.0.0.7'));

  // kill -9: systemd restarts it, API registrations come back from the state directory.
  const killedAt = Date.now();
  m.exec('kill', '-9', pid1);
  await until('a new main PID', () => show(m, 'ActiveState') === 'active' && show(m, 'MainPID') !== pid1 && show(m, 'MainPID') !== '0');
  await until('DNS to answer again after kill -9', resolves(m, 'web.default.cluster.local', '10.0.0.7'));
  t.comment(`kill -9 → resolvectl answers again: ${Date.now() - killedAt} ms (includes RestartSec=200ms; see bench/RESULTS.md)`);
  t.equal(show(m, 'NRestarts'), '1');

  // A hung event loop: the watchdog (shortened for the test) kills it and systemd restarts it.
  mkdirSync(join(m.root, `etc/systemd/system/${UNIT}.service.d`), { recursive: true });
  writeFileSync(join(m.root, `etc/systemd/system/${UNIT}.service.d/test.conf`), '[Service]\nWatchdogSec=2s\nEnvironment=PODMAN_SWARM_DNS_DEBUG_HANG_ON_SIGUSR2=1\n');
  m.exec('systemctl', 'daemon-reload');
  m.exec('systemctl', 'restart', UNIT);
  const restarted = m.exec('journalctl', '-u', UNIT, '--no-pager', '-o', 'cat');
  t.match(restarted, /systemd is running a restart job for the unit: a restart, not a leave/, 'systemctl restart is told apart from a stop (the job on D-Bus)');
  t.notMatch(restarted, /reverted link|stopping\n/, 'a restart keeps the link and its resolved settings');
  const pid2 = show(m, 'MainPID');
  m.exec('kill', '-USR2', pid2);
  await until('the watchdog to restart the daemon', () => show(m, 'MainPID') !== pid2 && show(m, 'ActiveState') === 'active', 30_000);
  t.match(m.exec('journalctl', '-u', UNIT, '--no-pager', '-o', 'cat'), /Watchdog timeout \(limit 2s\)/, 'killed by the watchdog');
  await until('DNS after the watchdog restart', resolves(m, 'web.default.cluster.local', '10.0.0.7'));

  // Stop: the link is handed back to resolved.
  m.exec('systemctl', 'stop', UNIT);
  t.match(m.exec('journalctl', '-u', UNIT, '--no-pager', '-o', 'cat'), /systemd is running a stop job for the unit: leaving the cluster/, 'systemctl stop is a stop');
  t.notMatch(m.exec('resolvectl', 'status', 'pswarm0'), /10\.223\.0\.10|cluster\.local/, 'RevertLink on stop');
  t.match(m.exec('journalctl', '-u', UNIT, '--no-pager', '-o', 'cat'), /systemd-resolved: reverted link pswarm0/);
  t.match(m.exec('journalctl', '-u', UNIT, '--no-pager', '-o', 'short', '-n', '20'), / podman-swarm-dns\[\d+\]: /, 'journal lines under the daemon name');

  // Without the link the daemon creates it itself, under the unit's hardening (netlink via ip(8)).
  m.exec('ip', 'link', 'del', 'pswarm0');
  m.exec('systemctl', 'start', UNIT);
  t.match(m.exec('journalctl', '-u', UNIT, '--no-pager', '-o', 'cat'), /link pswarm0 \((dummy|bridge)\) holds the cluster DNS address 10\.223\.0\.10/);
  t.match(m.exec('dig', '+short', '@10.223.0.10', 'web.default.cluster.local'), /10\.0\.0\.7/);
  m.exec('systemctl', 'stop', UNIT);
  t.not(m.run('ip', 'link', 'show', 'pswarm0').code, 0, 'and removes it at stop');
});
