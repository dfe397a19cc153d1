import t from 'tap';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/daemon.js';
import { bootMachine, nspawnUsable, type Machine } from '../helpers/nspawn.js';
import { until } from '../helpers/until.js';

// The README's first screen, as pasted by a newcomer on a fresh Debian 12: the install command
// (build the .deb from the checkout, install it, `systemctl enable --now`) and the from-source
// command, taken from README.md itself (the first two ```sh blocks), run in a booted Debian
// bookworm that has neither Node.js nor cargo. What a user notices is asserted: each command
// exits 0 (or, for the daemon, serves), the service is active, the package carries the native
// addon, and dig (installed by the command) gets an answer.
//
// The clean rootfs is cached (test/helpers/bookworm-clean-rootfs.sh) and never changed: an overlay
// on disk takes everything. The machine boots with systemd in a network namespace of its own
// with a veth to the host and a MASQUERADE rule, so apt and npm reach Debian and the npm registry
// while the daemon's 127.0.0.1:53 and its pswarm0 link stay inside. Slow: apt installs nodejs,
// npm, cargo and rustc, then npm ci and cargo build run (several minutes).

const skip = nspawnUsable() ?? (spawnSync('sh', ['-c', 'command -v git && command -v iptables']).status !== 0 ? 'git or iptables is not installed' : null);
if (skip) {
  t.comment(`skipped: ${skip}`);
  process.exit(0);
}
t.setTimeout(60 * 60_000);

/** The first command line of each of the README's first two ```sh blocks. */
function firstScreen(readme: string): { install: string; fromSource: string } {
  const blocks = [...readme.matchAll(/^```sh\n([\s\S]*?)^```/gm)].slice(0, 2).map((m) => m[1]!.split('\n').find((l) => l.trim() && !l.trim().startsWith('#'))!.trim());
  if (blocks.length < 2) throw new Error('README.md has fewer than two ```sh blocks');
  const [install, fromSource] = blocks as [string, string];
  if (!/systemctl enable --now podman-swarm-dns/.test(install)) throw new Error(`README.md's first command no longer installs and starts the service: ${install}`);
  if (!/dist\/cli\.js daemon/.test(fromSource)) throw new Error(`README.md's second command no longer runs the daemon from source: ${fromSource}`);
  return { install, fromSource };
}
const { install, fromSource } = firstScreen(readFileSync(join(ROOT, 'README.md'), 'utf8'));

const UNIT = 'podman-swarm-dns';
const USER = 'newcomer';
const CHECKOUT = `/home/${USER}/podman-swarm-dns`;
const work = mkdtempSync(join(tmpdir(), 'psdns-first-screen-'));
const root = join(work, 'root');
// Every command's output; kept when the test fails (its path is printed), removed when it passes.
const log = join(tmpdir(), `psdns-first-screen-${process.pid}.log`);
const netns = `fs${randomInt(1 << 24).toString(16)}`;
// A /30 for the veth, from a range nothing else here uses.
const net = `10.231.${randomInt(256)}.${4 * randomInt(64)}`;
const [a, b, c, d] = net.split('.').map(Number) as [number, number, number, number];
const hostIp = `${a}.${b}.${c}.${d + 1}`;
const guestIp = `${a}.${b}.${c}.${d + 2}`;
const masquerade = ['-t', 'nat', 'POSTROUTING', '-s', `${net}/30`, '-j', 'MASQUERADE', '-m', 'comment', '--comment', `podman-swarm-dns test ${netns}`];

t.teardown(() => {
  if (t.passing()) rmSync(log, { force: true });
  spawnSync('iptables', [masquerade[0]!, masquerade[1]!, '-D', ...masquerade.slice(2)]);
  spawnSync('ip', ['netns', 'del', netns]);
  spawnSync('umount', ['-l', root]);
  rmSync(work, { recursive: true, force: true });
});

const clean = execFileSync(join(ROOT, 'test/helpers/bookworm-clean-rootfs.sh'), { encoding: 'utf8', timeout: 15 * 60_000, stdio: ['ignore', 'pipe', 'inherit'] }).trim();
for (const dir of ['upper', 'ovlwork', 'root']) mkdirSync(join(work, dir));
execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${clean},upperdir=${join(work, 'upper')},workdir=${join(work, 'ovlwork')}`, root]);

// What a fresh Debian 12 installed with a user has and the clean rootfs lacks: current package
// lists, sudo, and a user who may use it (NOPASSWD here, as nobody types the password). The
// commands then run as that user, in a clone of the checkout in its home.
{
  const name = `fs-setup-${process.pid}`;
  const r = spawnSync(
    'systemd-nspawn',
    ['-q', '-D', root, '--machine', name, '--register=no', '--keep-unit', '--resolv-conf=replace-host', '--pipe', '--',
      'sh', '-c', `apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q sudo && useradd -m -s /bin/bash ${USER} && echo '${USER} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/${USER}`],
    { encoding: 'utf8', timeout: 10 * 60_000 },
  );
  rmSync(`/run/systemd/nspawn/propagate/${name}`, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`preparing the machine failed (apt unreachable?):\n${r.stdout}${r.stderr}`);
  // Not the newcomer's concern but this test machine's: where outgoing TLS passes a proxy with a
  // CA of its own (in /usr/local/share/ca-certificates), the machine inside trusts it too, and
  // Node is pointed at the system bundle (NODE_EXTRA_CA_CERTS below), as on the host.
  const cas = '/usr/local/share/ca-certificates';
  if (existsSync(cas)) {
    cpSync(cas, join(root, cas), { recursive: true });
    execFileSync('chroot', [root, 'update-ca-certificates'], { stdio: 'ignore' });
  }
  // The booted machine resolves names through the host's servers, over the veth.
  rmSync(join(root, 'etc/resolv.conf'), { force: true });
  writeFileSync(join(root, 'etc/resolv.conf'), readFileSync('/etc/resolv.conf', 'utf8').split('\n').filter((l) => /^nameserver\s/.test(l)).join('\n') + '\n');
}
// The checkout as a clone has it (tracked files, as in the working tree; no node_modules, dist or
// native/target), owned by the user.
{
  mkdirSync(join(root, CHECKOUT));
  const files = execFileSync('git', ['-C', ROOT, 'ls-files', '-z']);
  execFileSync('sh', ['-c', `tar -C "${ROOT}" --null -T - -cf - | tar -C "${join(root, CHECKOUT)}" -xf -`], { input: files });
  const uid = readFileSync(join(root, 'etc/passwd'), 'utf8').match(new RegExp(`^${USER}:x:(\\d+):(\\d+):`, 'm'))!;
  execFileSync('chown', ['-R', `${uid[1]}:${uid[2]}`, join(root, CHECKOUT)]);
}
execFileSync('ip', ['netns', 'add', netns]);
execFileSync('ip', ['link', 'add', `${netns}h`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
execFileSync('ip', ['addr', 'add', `${hostIp}/30`, 'dev', `${netns}h`]);
execFileSync('ip', ['link', 'set', `${netns}h`, 'up']);
execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
execFileSync('iptables', [masquerade[0]!, masquerade[1]!, '-A', ...masquerade.slice(2)]);
// The machine's packets are forwarded by this host: a fresh host does not forward (Podman turns it
// on when it starts its first container and leaves it on; so does this test, as turning it off
// again would cut the containers of the tests that run beside it).
writeFileSync('/proc/sys/net/ipv4/ip_forward', '1\n');

/**
 * Runs a README command as the user in the checkout, in the booted machine, with a clean
 * environment and no terminal (a prompt would fail it, not hang it). Its output goes to the log;
 * resolves with its exit code, the time it took and its output's tail.
 */
function runAsUser(m: Machine, what: string, command: string, timeoutMs: number) {
  appendFileSync(log, `\n===== ${what}: ${command}\n`);
  const p = spawn(
    'nsenter',
    ['-t', String(m.leader), '-m', '-u', '-i', '-n', '-p', '-C', '--', 'env', '-i', 'PATH=/usr/local/bin:/usr/bin:/bin:/usr/games', 'LANG=C.UTF-8', 'NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt',
      '/usr/sbin/runuser', '-u', USER, '--', 'sh', '-c', `cd ${CHECKOUT} && ${command}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const take = (c: Buffer) => {
    appendFileSync(log, c);
    out = (out + c.toString()).slice(-200_000);
  };
  // The last lines, without npm's engine warnings (Debian's Node 18 for the build tools'
  // dependencies that ask for 20), which would hide the error.
  const tail = () => out.split('\n').filter((l) => !/^npm WARN EBADENGINE/.test(l)).slice(-40).join('\n');
  p.stdout.on('data', take);
  p.stderr.on('data', take);
  const started = Date.now();
  const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  const done = new Promise<{ code: number | null; seconds: number; tail: () => string }>((resolve) =>
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, seconds: Math.round((Date.now() - started) / 1000), tail });
    }),
  );
  return { done, tail };
}

const dig = (m: Machine) => () => {
  const r = m.run('dig', '+time=1', '+tries=1', '+short', '@127.0.0.1', 'dns-version.cluster.local', 'TXT');
  return r.code === 0 && /^"/m.test(r.out) ? r.out.trim() : false;
};

t.test("the README's first screen on a fresh Debian 12", async (t) => {
  const m = await bootMachine(t, { rootfs: root, prefix: 'first-screen', netns, volatile: false });
  m.exec('ip', 'addr', 'add', `${guestIp}/30`, 'dev', 'eth0');
  m.exec('ip', 'link', 'set', 'eth0', 'up');
  m.exec('ip', 'route', 'add', 'default', 'via', hostIp);
  t.not(m.run('sh', '-c', 'command -v node || command -v cargo').code, 0, 'neither Node.js nor cargo before');

  const first = await runAsUser(m, 'install command', install, 40 * 60_000).done;
  t.comment(`install command: exit ${first.code} after ${first.seconds} s (log: ${log})`);
  if (!t.equal(first.code, 0, `the install command exits 0: ${install}`)) {
    t.comment(`its output's tail:\n${first.tail()}`);
    t.comment(`the service:\n${m.run('systemctl', 'status', '--no-pager', '-l', UNIT).out}\n${m.run('journalctl', '--no-pager', '-n', '40', '-u', UNIT).out}`);
    return;
  }
  t.equal(m.run('systemctl', 'is-active', UNIT).out.trim(), 'active', 'the service is active under systemd');
  t.match(m.exec('dpkg', '-L', UNIT), /^\/usr\/lib\/podman-swarm-dns\/dist\/podman-swarm-dns\.linux-x64-gnu\.node$/m, 'the installed package carries the native addon');
  t.match(await until('dig @127.0.0.1 dns-version.cluster.local TXT (installed service)', dig(m), 30_000).catch((e: Error) => e.message), /^"/, 'dig, installed by the command, gets an answer from the service');

  // The from-source daemon takes 127.0.0.1:53 too: stop the service first.
  m.exec('systemctl', 'stop', UNIT);
  t.notOk(dig(m)(), 'nothing answers once the service is stopped');
  const second = runAsUser(m, 'from-source command', fromSource, 30 * 60_000);
  let exited: { code: number | null; seconds: number } | null = null;
  void second.done.then((r) => (exited = r));
  const started = Date.now();
  const answer = await until('the from-source daemon to answer dig', async () => {
    if (exited) throw new Error(`the command exited with ${exited.code}`);
    return dig(m)();
  }, 30 * 60_000, 1000).catch((e: Error) => e);
  t.comment(`from-source command: answering after ${Math.round((Date.now() - started) / 1000)} s`);
  if (answer instanceof Error) {
    t.fail(`the from-source command serves DNS: ${fromSource}\n${answer.message}`);
    t.comment(`its output's tail:\n${second.tail()}`);
    return;
  }
  t.match(answer, /^"/, 'the from-source daemon answers dig');
  t.equal(m.run('systemctl', 'is-active', UNIT).out.trim(), 'inactive', '(and the service is still stopped)');
  // Stop it as Ctrl-C would: SIGINT to the daemon (sudo passes it on).
  m.run('sh', '-c', `for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^node dist/cli.js daemon' && kill -INT \${p#/proc/}; done`);
  const end = await Promise.race([second.done, new Promise<null>((r) => setTimeout(() => r(null), 20_000))]);
  t.ok(end, 'the daemon stops on SIGINT');
});
