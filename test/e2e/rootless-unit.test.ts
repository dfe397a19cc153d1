import t from 'tap';
import { existsSync } from 'node:fs';
import { CLI, ROOT } from '../helpers/daemon.js';
import { installUnit } from '../helpers/unit.js';
import { bookwormRootfs, bootMachine, nspawnUsable } from '../helpers/nspawn.js';
import { waiter } from '../helpers/until.js';

const until = waiter(30_000);

// The system unit, hardened as it is, still reaches a user's rootless Podman socket: under a real
// systemd (Debian bookworm in systemd-nspawn) the daemon started by `systemctl enable --now` finds
// /run/user/1000/podman/podman.sock on a per-user tmpfs mounted after its start (as logind does
// at login), in a 0700 directory of another user, connects to it and (the socket here is not
// Podman: there is no rootless Podman in this machine) says so once, with the user's name.

const skip = nspawnUsable();
if (skip || !existsSync(CLI)) {
  t.comment(`skipped: ${skip ?? 'dist/cli.js is not built (npm run build)'}`);
  process.exit(0);
}

t.test("the system unit follows a user's socket under /run/user", async (t) => {
  const m = await bootMachine(t, { rootfs: bookwormRootfs(), prefix: 'rlun', bindRo: [[ROOT, '/opt/podman-swarm-dns']] });
  installUnit(m);
  m.exec('systemctl', 'enable', '--now', 'podman-swarm-dns');
  m.exec('useradd', '-u', '1000', '-M', 'alice');
  m.exec('sh', '-ec', 'mkdir -p /run/user/1000 && mount -t tmpfs -o mode=0700,uid=1000,gid=1000 tmpfs /run/user/1000 && install -d -o alice -m 0700 /run/user/1000/podman');
  m.exec('systemd-run', '--uid=1000', '--unit=fake-podman', '/usr/bin/node', '-e', "require('net').createServer((c) => c.end('not http\\r\\n')).listen('/run/user/1000/podman/podman.sock')");
  const journal = () => m.exec('journalctl', '-u', 'podman-swarm-dns', '-o', 'cat', '--no-pager');
  await until("the daemon to follow alice's socket", () => /watching alice's rootless Podman at \/run\/user\/1000\/podman\/podman\.sock/.test(journal()));
  await until('its verdict on the socket', () => /alice's Podman API|Podman API at \/run\/user\/1000\/podman\/podman\.sock/.test(journal()));
  const lines = journal().split('\n').filter((l) => l.includes('/run/user/1000/podman/podman.sock') && !l.includes('watching'));
  t.equal(lines.length, 1, 'one line about it');
  t.match(lines[0], /not a Podman API/, 'connected (not EACCES, not ENOENT): the socket is not Podman');
  t.equal(m.exec('systemctl', 'show', '-p', 'ActiveState', '--value', 'podman-swarm-dns').trim(), 'active', 'and the daemon runs on');
});
