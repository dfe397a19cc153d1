import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/daemon.js';

// The unit file as SPEC §9 describes it, and clean under systemd-analyze verify (the e2e test
// verifies it again inside a booted Debian).

const unit = readFileSync(join(ROOT, 'systemd/podman-swarm-dns.service'), 'utf8');
const keys = (k: string) => [...unit.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]);

t.test('the settings SPEC §9 asks for', async (t) => {
  for (const [k, v] of Object.entries({
    Type: 'notify', NotifyAccess: 'main', WatchdogSec: '30', ExecReload: '/bin/kill -HUP $MAINPID', Restart: 'on-failure',
    NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes',
    StateDirectory: 'podman-swarm-dns', RuntimeDirectory: 'podman-swarm-dns',
    CapabilityBoundingSet: 'CAP_NET_BIND_SERVICE CAP_NET_ADMIN', RestrictAddressFamilies: 'AF_UNIX AF_INET AF_INET6 AF_NETLINK',
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
