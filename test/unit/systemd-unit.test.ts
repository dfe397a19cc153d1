import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/daemon.js';

// The unit file as SPEC §9 describes it, and clean under systemd-analyze verify (the e2e test
// verifies it again inside a booted Debian).

const unit = readFileSync(join(ROOT, 'systemd/podman-swarm-dns.service'), 'utf8');
const keys = (k: string) => [...unit.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]);

t.test('the settings SPEC §9 asks for', async (t) => {
  for (const [k, v] of Object.entries({
    Type: 'notify', NotifyAccess: 'main', WatchdogSec: '30', ExecReload: '/bin/kill -HUP $MAINPID', Restart: 'on-failure',
    NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'read-only', InaccessiblePaths: '-/home -/root', PrivateTmp: 'yes',
    StateDirectory: 'podman-swarm-dns', RuntimeDirectory: 'podman-swarm-dns',
    CapabilityBoundingSet: 'CAP_NET_BIND_SERVICE CAP_NET_ADMIN CAP_DAC_OVERRIDE', RestrictAddressFamilies: 'AF_UNIX AF_INET AF_INET6 AF_NETLINK',
    After: 'network-online.target podman.socket', Wants: 'network-online.target podman.socket', WantedBy: 'multi-user.target',
  })) t.same(keys(k), [v], k);
  t.match(keys('ExecStart')[0], /^\/usr\/lib\/podman-swarm-dns\/notify-socket-exec \/usr\/bin\/podman-swarm-dns daemon$/);
});

const analyze = spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0;
t.test('systemd-analyze verify is clean', { skip: analyze ? false : 'systemd-analyze is not installed' }, async (t) => {
  // The installed paths do not exist on a build machine: point ExecStart at stand-ins.
  const dir = t.testdir();
  mkdirSync(join(dir, 'bin'));
  copyFileSync(join(ROOT, 'systemd/notify-socket-exec'), join(dir, 'bin/notify-socket-exec'));
  writeFileSync(join(dir, 'bin/podman-swarm-dns'), '#!/bin/sh\n');
  chmodSync(join(dir, 'bin/podman-swarm-dns'), 0o755);
  const local = unit.replace(/^ExecStart=.*$/m, `ExecStart=${dir}/bin/notify-socket-exec ${dir}/bin/podman-swarm-dns daemon`);
  writeFileSync(join(dir, 'podman-swarm-dns.service'), local);
  const r = spawnSync('systemd-analyze', ['verify', join(dir, 'podman-swarm-dns.service')], { encoding: 'utf8' });
  t.equal(r.stderr + r.stdout, '', 'no complaints');
  t.equal(r.status, 0);
});

const userUnit = readFileSync(join(ROOT, 'systemd/podman-swarm-dns-user.service'), 'utf8');

t.test("the user unit: the same daemon for one user's rootless Podman", async (t) => {
  const userKeys = (k: string) => [...userUnit.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]);
  for (const [k, v] of Object.entries({ Type: 'notify', WatchdogSec: '30', Wants: 'podman.socket', WantedBy: 'default.target', EnvironmentFile: '-%E/podman-swarm-dns/env' })) t.same(userKeys(k), [v], k);
  t.same(userKeys('ExecStart'), keys('ExecStart'), 'the same command as the system unit');
  t.same(userKeys('CapabilityBoundingSet'), [], 'no capabilities: a user manager cannot grant them');
});

t.test('systemd-analyze verify --user is clean for the user unit', { skip: analyze ? false : 'systemd-analyze is not installed' }, async (t) => {
  // A short runtime directory: the user manager's socket units put their paths there (108 bytes at most).
  const dir = mkdtempSync(join(tmpdir(), 'psdu-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'bin'));
  copyFileSync(join(ROOT, 'systemd/notify-socket-exec'), join(dir, 'bin/notify-socket-exec'));
  writeFileSync(join(dir, 'bin/podman-swarm-dns'), '#!/bin/sh\n');
  chmodSync(join(dir, 'bin/podman-swarm-dns'), 0o755);
  const local = userUnit.replace(/^ExecStart=.*$/m, `ExecStart=${dir}/bin/notify-socket-exec ${dir}/bin/podman-swarm-dns daemon`);
  writeFileSync(join(dir, 'podman-swarm-dns.service'), local);
  const r = spawnSync('systemd-analyze', ['--user', 'verify', join(dir, 'podman-swarm-dns.service')], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: dir } });
  t.equal(r.stderr + r.stdout, '', 'no complaints');
  t.equal(r.status, 0);
});
