import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ROOT } from '../helpers/daemon.js';
import { bootMachine, nspawnUsable, type Machine } from '../helpers/nspawn.js';
import { waiter } from '../helpers/until.js';

const until = waiter(20_000);

// The README's install path on a clean Debian bookworm (no Node.js): `apt-get install ./x.deb`
// pulls nodejs (18) from Debian; booted under systemd, `systemctl enable --now podman-swarm-dns`
// gets to active and READY on Debian's Node 18; an endpoint registered over the API answers
// `resolvectl query`; remove stops it and keeps the config, purge removes it, reinstall works.
//
// The clean rootfs is cached (test/helpers/bookworm-clean-rootfs.sh) and never changed: an
// overlay mount takes the install, which runs in a non-booted nspawn on the host network so apt
// can reach Debian; the boot then has a private network.

const skip = nspawnUsable() ?? (spawnSync('sh', ['-c', 'command -v dpkg-deb']).status !== 0 ? 'dpkg-deb is not installed' : null);
if (skip) {
  t.comment(`skipped: ${skip}`);
  process.exit(0);
}

const UNIT = 'podman-swarm-dns';
const PKGDIR = '/mnt/k8pkg';

const work = mkdtempSync(join(tmpdir(), 'psdns-k8-deb-'));
const out = join(work, 'out');
const upper = join(work, 'upper');
const ovlwork = join(work, 'ovlwork');
const root = join(work, 'root');
t.teardown(() => {
  spawnSync('umount', ['-l', root]);
  rmSync(work, { recursive: true, force: true });
});

const deb = execFileSync(process.execPath, [join(ROOT, 'packaging/deb.mjs'), `--out=${out}`], { encoding: 'utf8' }).trim().split('\n').at(-1)!;
const inside = `${PKGDIR}/${basename(deb)}`;
const clean = execFileSync(join(ROOT, 'test/helpers/bookworm-clean-rootfs.sh'), { encoding: 'utf8', timeout: 15 * 60_000, stdio: ['ignore', 'pipe', 'inherit'] }).trim();
for (const d of [upper, ovlwork, root]) mkdirSync(d, { recursive: true });
execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${clean},upperdir=${upper},workdir=${ovlwork}`, root]);

// Commands inside get a clean environment, as from a root shell there (not the test runner's
// NODE_OPTIONS, which point into this checkout).
const ENV = ['env', '-i', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8', 'DEBIAN_FRONTEND=noninteractive'];
const exec = (m: Machine, ...cmd: string[]): string => m.exec(ENV[0]!, ...ENV.slice(1), ...cmd);
const run = (m: Machine, ...cmd: string[]) => m.run(ENV[0]!, ...ENV.slice(1), ...cmd);

/** The API of the daemon inside, with Node (the clean system has no curl); root reads the token the daemon made. */
function register(m: Machine, id: string, address: string): void {
  const js = `const token=require('fs').readFileSync('/var/lib/podman-swarm-dns/api-token','utf8').trim();fetch('http://127.0.0.1:8080/api/v1/services/default/web/endpoints',{method:'POST',headers:{authorization:'Bearer '+token},body:JSON.stringify({id:'${id}',address:'${address}'})}).then(r=>{if(r.status!==201)process.exit(1)},()=>process.exit(1))`;
  exec(m, 'node', '--no-warnings', '-e', js);
}

const resolves = (m: Machine, name: string, address: string) => () => {
  const r = run(m, 'resolvectl', 'query', '--cache=no', name);
  return r.code === 0 && r.out.includes(`${name}: ${address}`) ? r.out : false;
};

t.test('apt-get install ./podman-swarm-dns_*.deb on a clean bookworm pulls nodejs from Debian', async (t) => {
  t.equal(spawnSync('test', ['-e', join(root, 'usr/bin/node')]).status, 1, 'no Node.js before');
  const name = `k8-inst-${process.pid}`;
  t.teardown(() => rmSync(`/run/systemd/nspawn/propagate/${name}`, { recursive: true, force: true }));
  const r = spawnSync(
    'systemd-nspawn',
    ['-q', '-D', root, '--machine', name, '--register=no', '--keep-unit', '--resolv-conf=replace-host', `--bind-ro=${out}:${PKGDIR}`, '--pipe', '--',
      'sh', '-c', `apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${inside} && node --version`],
    { encoding: 'utf8', timeout: 10 * 60_000 },
  );
  t.equal(r.status, 0, 'apt-get install succeeded');
  t.match(r.stdout, /Setting up nodejs \(18\./, 'nodejs 18 came from Debian');
  t.match(r.stdout, /Setting up podman-swarm-dns \(/);
  t.match(r.stdout, /^v18\.\d+\.\d+$/m, "Debian's node is 18");
  if (r.status !== 0) t.comment(r.stdout + r.stderr);
  // The install ran with the host's resolv.conf; give resolved its stub back for the boot.
  rmSync(join(root, 'etc/resolv.conf'), { force: true });
  symlinkSync('../run/systemd/resolve/stub-resolv.conf', join(root, 'etc/resolv.conf'));
});

t.test('booted: enable --now → READY on Node 18; resolvectl answers; remove, purge, reinstall', async (t) => {
  const m = await bootMachine(t, { rootfs: root, prefix: 'k8-deb', bindRo: [[out, PKGDIR]] });
  const show = (p: string) => exec(m, 'systemctl', 'show', '-p', p, '--value', UNIT).trim();
  t.equal(run(m, 'systemctl', 'is-enabled', UNIT).out.trim(), 'disabled', 'installed, not enabled');
  t.equal(run(m, 'systemctl', 'is-active', UNIT).out.trim(), 'inactive', 'not started on install');
  t.same(readdirSync(join(m.root, 'etc/podman-swarm-dns')), ['config.yaml']);

  // Type=notify: enable --now returns once the daemon sent READY=1.
  exec(m, 'systemctl', 'enable', '--now', UNIT);
  t.equal(show('ActiveState'), 'active');
  t.equal(show('SubState'), 'running');
  t.match(show('StatusText'), /DNS on 10\.223\.0\.10:53/, 'STATUS= from the daemon');
  const pid = show('MainPID');
  t.match(exec(m, 'cat', `/proc/${pid}/cmdline`).split('\0').join(' '), /^\/usr\/bin\/node \/usr\/bin\/podman-swarm-dns daemon/, 'the main process is the daemon on /usr/bin/node');
  t.match(exec(m, '/usr/bin/node', '--version'), /^v18\./, 'that node is Debian\'s 18');
  t.match(exec(m, 'podman-swarm-dns', 'status'), /./, 'the CLI reaches it over the API socket');

  register(m, 'web1', '10.0.0.6');
  t.match(await until('resolvectl query', resolves(m, 'web.default.cluster.local', '10.0.0.6')), /link: pswarm0/, 'answered through pswarm0');

  exec(m, 'apt-get', 'remove', '-y', '-q', UNIT);
  t.equal(run(m, 'systemctl', 'is-active', UNIT).out.trim(), 'inactive', 'remove stops it');
  t.not(run(m, 'ip', 'link', 'show', 'pswarm0').code, 0, 'and its link is gone');
  t.same(readdirSync(join(m.root, 'etc/podman-swarm-dns')), ['config.yaml'], 'remove keeps the config');

  exec(m, 'apt-get', 'purge', '-y', '-q', UNIT);
  for (const gone of ['/etc/podman-swarm-dns', '/var/lib/podman-swarm-dns', `/etc/systemd/system/multi-user.target.wants/${UNIT}.service`, `/etc/systemd/system/${UNIT}.service`]) {
    t.not(run(m, 'test', '-e', gone).code, 0, `purge removed ${gone}`);
  }

  exec(m, 'apt-get', 'install', '-y', '-q', '--no-install-recommends', inside);
  t.same(readdirSync(join(m.root, 'etc/podman-swarm-dns')), ['config.yaml'], 'reinstall brings the config back');
  exec(m, 'systemctl', 'enable', '--now', UNIT);
  t.equal(show('ActiveState'), 'active', 'and it runs again');
  register(m, 'web2', '10.0.0.8');
  await until('resolvectl query after reinstall', resolves(m, 'web.default.cluster.local', '10.0.0.8'));
  t.pass('resolvectl answers after the reinstall');
});
