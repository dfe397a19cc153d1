import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './daemon.js';
import type { Host } from './hosts.js';
import { hasPodman, IMAGE } from './podman.js';

// A real rootless Podman on one simulated host (../shared/TESTING.md "Rootless Podman"): a fresh
// user with subordinate ids, its runtime directory /run/user/<uid> on a tmpfs private to the
// host's mount namespace (the machine's own /run/user is never touched), /dev/net/tun replaced
// there by a node the user may open (slirp4netns needs it; the machine's stays 0600), and
// `podman system service` run as the user on /run/user/<uid>/podman/podman.sock. At teardown the
// user's processes are killed (by pid), the user and its subordinate ids removed, its storage deleted.

export const CONTAINERS_CONF_ROOTLESS = join(ROOT, 'test', 'fixtures', 'podman', 'containers-rootless.conf');

export const hasRootless = (): boolean => hasPodman() && ['/usr/bin/newuidmap', '/usr/bin/slirp4netns', '/usr/sbin/useradd'].every((p) => existsSync(p));

export interface RootlessPodman {
  user: string;
  uid: number;
  socket: string;
  /** The user's home (its own, writable), and argv running a command as the user with its runtime directory. */
  home: string;
  asUser: string[];
  /** podman --remote through the user's service (run by root here; the service acts as the user). */
  run(args: string[]): string;
  /** `podman run -d --name <name> <args> IMAGE <cmd>`. */
  container(name: string, args: string[], cmd: string[]): string;
}

function pidsOf(uid: number): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (new RegExp(`^Uid:\\s+${uid}\\s`, 'm').test(readFileSync(`/proc/${e}/status`, 'utf8'))) pids.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

export async function rootlessPodman(t: { teardown(fn: () => unknown): void }, h: Host): Promise<RootlessPodman> {
  if (!h.mountNs) throw new Error('rootlessPodman needs a host with its own mount namespace (createHosts podmanHosts)');
  const user = `psdrl${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), `${user}-`));
  chmodSync(dir, 0o711);
  const home = join(dir, 'home');
  const run = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  let uid = -1;
  t.teardown(async () => {
    if (uid > 0) {
      for (let round = 0; round < 20; round++) {
        const pids = pidsOf(uid);
        if (pids.length === 0) break;
        for (const pid of pids) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    try { run('userdel', user); } catch { /* not created */ }
    for (const f of ['/etc/subuid', '/etc/subgid']) {
      try { writeFileSync(f, readFileSync(f, 'utf8').split('\n').filter((l) => !l.startsWith(`${user}:`)).join('\n')); } catch { /* none */ }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  run('useradd', '-M', '-d', home, '-s', '/usr/sbin/nologin', user);
  uid = Number(run('id', '-u', user).trim());
  const first = 600_000 + (parseInt(randomBytes(1).toString('hex'), 16) % 64) * 65_536;
  run('usermod', '--add-subuids', `${first}-${first + 65_535}`, '--add-subgids', `${first}-${first + 65_535}`, user);
  mkdirSync(home);
  chownSync(home, uid, uid);
  const runDir = `/run/user/${uid}`;
  const socket = `${runDir}/podman/podman.sock`;
  const tun = join(dir, 'tun');
  h.exec('sh', ['-ec', [
    'mountpoint -q /run/user || mount -t tmpfs -o mode=0755 tmpfs /run/user',
    `mkdir -p ${runDir}/podman && chown -R ${uid}:${uid} ${runDir} && chmod 0700 ${runDir}`,
    `mknod ${tun} c 10 200 && chmod 0666 ${tun} && mount --bind ${tun} /dev/net/tun`,
  ].join('\n')]);
  const env = [`XDG_RUNTIME_DIR=${runDir}`, `HOME=${home}`, `CONTAINERS_CONF=${CONTAINERS_CONF_ROOTLESS}`];
  const service = h.spawn('runuser', ['-u', user, '--', 'env', ...env, 'podman', '--storage-driver', 'vfs', 'system', 'service', '--time=0', `unix://${socket}`]);
  let log = '';
  service.stdout!.on('data', (c: Buffer) => (log += c));
  service.stderr!.on('data', (c: Buffer) => (log += c));
  const remote = (args: string[]) => h.exec('env', [`CONTAINERS_CONF=${CONTAINERS_CONF_ROOTLESS}`, 'podman', '--remote', '--url', `unix://${socket}`, ...args], 60_000);
  const end = Date.now() + 20_000;
  for (;;) {
    try {
      remote(['version', '--format', '{{.Server.Version}}']);
      break;
    } catch (e) {
      if (Date.now() > end) throw new Error(`${user}'s podman service did not come up: ${(e as Error).message}\n${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const bb = join(dir, 'bb');
  mkdirSync(join(bb, 'bin'), { recursive: true });
  mkdirSync(join(bb, 'tmp'), { recursive: true });
  copyFileSync('/bin/busybox', join(bb, 'bin', 'busybox'));
  for (const a of ['sh', 'httpd', 'echo', 'nslookup']) symlinkSync('busybox', join(bb, 'bin', a));
  run('tar', '-C', bb, '-cf', join(dir, 'bb.tar'), '.');
  remote(['import', join(dir, 'bb.tar'), IMAGE]);
  return {
    user,
    uid,
    socket,
    home,
    asUser: ['runuser', '-u', user, '--', 'env', ...env],
    run: remote,
    container: (name, args, cmd) => remote(['run', '-d', '--name', name, ...args, IMAGE, ...cmd]).trim(),
  };
}
