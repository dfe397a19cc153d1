import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, startDaemon } from '../helpers/daemon.js';
import { digShort } from '../helpers/dns.js';

// `npm run package:deb` / `package:rpm` for real: both packages build and pass lintian/rpmlint,
// hold exactly the expected files with the expected metadata and maintainer scripts, the rpm
// installs into a scratch root and erases, and the packaged bundle runs the daemon.
// (Installing the .deb on a clean Debian under systemd: deb-bookworm.test.ts.)

const missing = ['dpkg-deb', 'lintian', 'rpmbuild', 'rpmlint'].filter((b) => spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0);
if (process.getuid?.() !== 0 || missing.length) {
  t.comment(`skipped: ${missing.length ? `${missing.join(', ')} not installed` : 'needs root (rpm -i into a scratch root)'}`);
  process.exit(0);
}

const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
const V = PKG.version;
const NATIVE = existsSync(join(ROOT, 'native/podman-swarm-dns.linux-x64-gnu.node'));
const out = mkdtempSync(join(tmpdir(), 'psdns-k8-pkg-'));
t.teardown(() => rmSync(out, { recursive: true, force: true }));
const sh = (cmd: string, ...args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
// The npm scripts' commands (package:deb / package:rpm), building into a temp dir. They print
// the linter's report, then the package's path.
const build = (kind: 'deb' | 'rpm'): string =>
  sh(process.execPath, join(ROOT, `packaging/${kind}.mjs`), '--lint', `--out=${out}`).trim().split('\n').at(-1)!;

// What both packages install (the .deb keeps units under /lib, Debian bookworm's place).
const COMMON = [
  '/etc/podman-swarm-dns/',
  '/etc/podman-swarm-dns/config.yaml',
  '/usr/bin/podman-swarm-dns',
  '/usr/lib/podman-swarm-dns/',
  '/usr/lib/podman-swarm-dns/dist/',
  '/usr/lib/podman-swarm-dns/dist/podman-swarm-dns.mjs',
  ...(NATIVE ? ['/usr/lib/podman-swarm-dns/dist/podman-swarm-dns.linux-x64-gnu.node'] : []),
  '/usr/lib/podman-swarm-dns/notify-socket-exec',
  '/usr/lib/podman-swarm-dns/package.json',
  '/usr/lib/podman-swarm-dns/ui/',
  '/usr/lib/podman-swarm-dns/ui/www/',
  '/usr/lib/podman-swarm-dns/ui/www/app.js',
  '/usr/lib/podman-swarm-dns/ui/www/index.html',
  '/usr/lib/podman-swarm-dns/ui/www/style.css',
  '/usr/share/bash-completion/completions/podman-swarm-dns',
  '/usr/share/doc/podman-swarm-dns/README.md',
  '/usr/share/doc/podman-swarm-dns/THIRD-PARTY-NOTICES',
  '/usr/share/man/man8/podman-swarm-dns.8.gz',
  '/usr/share/podman-swarm-dns/',
  '/usr/share/podman-swarm-dns/containers.conf',
];

t.test('the .deb: files, metadata, conffile, maintainer scripts; lintian clean', async (t) => {
  const deb = build('deb');
  t.equal(deb, join(out, `podman-swarm-dns_${V}_${NATIVE ? 'amd64' : 'all'}.deb`));

  // dpkg-deb -c: "mode owner/group size date time ./path[ -> target]"
  const listing = sh('dpkg-deb', '-c', deb).trim().split('\n').map((l) => l.split(/\s+/));
  const paths = listing.map((f) => f[5]!.replace(/^\./, '')).filter((p) => p !== '/');
  const dirsOnly = new Set(['/etc/', '/lib/', '/lib/systemd/', '/usr/', '/usr/bin/', '/usr/lib/', '/usr/share/', '/usr/share/bash-completion/', '/usr/share/doc/', '/usr/share/man/', '/usr/share/man/man8/']);
  const expected = [...COMMON, '/lib/systemd/system/', '/lib/systemd/system/podman-swarm-dns.service', '/usr/lib/systemd/', '/usr/lib/systemd/user/', '/usr/lib/systemd/user/podman-swarm-dns.service', '/usr/share/doc/podman-swarm-dns/', '/usr/share/doc/podman-swarm-dns/changelog.gz', '/usr/share/doc/podman-swarm-dns/copyright', '/usr/share/bash-completion/completions/'];
  t.same(paths.filter((p) => !dirsOnly.has(p)).sort(), expected.sort(), 'dpkg-deb -c lists exactly the expected files');
  for (const f of listing) t.equal(f[1], 'root/root', `${f[5]} owned by root`);
  const mode = (p: string) => listing.find((f) => f[5] === `.${p}`)![0];
  t.equal(mode('/usr/lib/podman-swarm-dns/dist/podman-swarm-dns.mjs'), '-rwxr-xr-x');
  t.equal(mode('/usr/lib/podman-swarm-dns/notify-socket-exec'), '-rwxr-xr-x');
  t.equal(mode('/etc/podman-swarm-dns/config.yaml'), '-rw-r--r--');
  t.match(listing.find((f) => f[5] === './usr/bin/podman-swarm-dns')!.slice(5).join(' '), './usr/bin/podman-swarm-dns -> ../lib/podman-swarm-dns/dist/podman-swarm-dns.mjs');

  const field = (name: string) => sh('dpkg-deb', '-f', deb, name).trim();
  t.equal(field('Package'), 'podman-swarm-dns');
  t.equal(field('Version'), V, 'version from package.json');
  t.equal(field('Architecture'), NATIVE ? 'amd64' : 'all');
  // With the addon, dpkg-shlibdeps adds its libraries (libc6 (>= 2.x), ...).
  t.match(field('Depends'), NATIVE ? /^nodejs \(>= 18\), procps, iproute2, libc6 \(>= 2\.\d+\)/ : /^nodejs \(>= 18\), procps, iproute2$/);
  t.equal(field('Recommends'), 'podman');
  t.match(field('Maintainer'), /<.+@.+>/);

  const ctrl = join(out, 'ctrl');
  sh('dpkg-deb', '-e', deb, ctrl);
  t.equal(readFileSync(join(ctrl, 'conffiles'), 'utf8'), '/etc/podman-swarm-dns/config.yaml\n');
  const md5 = readFileSync(join(ctrl, 'md5sums'), 'utf8');
  t.match(md5, /^[0-9a-f]{32} {2}usr\/lib\/podman-swarm-dns\/dist\/podman-swarm-dns\.mjs$/m);
  t.notMatch(md5, /etc\/podman-swarm-dns/, 'conffiles are not in md5sums');
  const postinst = readFileSync(join(ctrl, 'postinst'), 'utf8');
  t.match(postinst, /deb-systemd-helper update-state 'podman-swarm-dns.service'/);
  t.match(postinst, /systemctl --system daemon-reload/);
  t.notMatch(postinst, /deb-systemd-invoke (start|restart) /, 'not started on install');
  t.match(readFileSync(join(ctrl, 'prerm'), 'utf8'), /"\$1" = remove .*\n\s*deb-systemd-invoke stop 'podman-swarm-dns.service'/);
  const postrm = readFileSync(join(ctrl, 'postrm'), 'utf8');
  t.match(postrm, /"\$1" = "purge"[\s\S]*deb-systemd-helper purge 'podman-swarm-dns.service'[\s\S]*rm -rf \/etc\/podman-swarm-dns/);
  for (const s of ['postinst', 'prerm', 'postrm']) t.equal(spawnSync('sh', ['-n', join(ctrl, s)]).status, 0, `${s} is valid sh`);
});

t.test('the .rpm: files, metadata, scriptlets; rpmlint clean; installs and erases in a scratch root', async (t) => {
  const rpm = build('rpm');
  t.equal(rpm, join(out, `podman-swarm-dns-${V}-1.${NATIVE ? 'x86_64' : 'noarch'}.rpm`));
  const q = (...a: string[]) => sh('rpm', '-qp', ...a, rpm).trim();
  const expected = [...COMMON.map((p) => p.replace(/\/$/, '')), '/usr/lib/systemd/system/podman-swarm-dns.service', '/usr/lib/systemd/user/podman-swarm-dns.service', '/usr/share/licenses/podman-swarm-dns/LICENSE'];
  t.same(q('-l').split('\n').sort(), expected.sort(), 'rpm -qlp lists exactly the expected files');
  t.same(q('--configfiles').split('\n'), ['/etc/podman-swarm-dns/config.yaml']);
  t.equal(q('--qf', '%{VERSION}-%{RELEASE} %{ARCH}'), `${V}-1 ${NATIVE ? 'x86_64' : 'noarch'}`);
  const requires = q('--requires').split('\n');
  t.ok(requires.includes('nodejs >= 18'), 'Requires nodejs >= 18');
  t.ok(requires.includes('/usr/bin/perl'), 'Requires perl (notify-socket-exec)');
  t.ok(requires.includes('/usr/sbin/ip'), 'Requires ip (the daemon makes its link with it)');
  t.same(q('--recommends').split('\n'), ['podman']);
  t.match(q('--changelog'), new RegExp(`^\\* \\w{3} \\w{3} \\d\\d \\d{4} .+ - ${V.replace(/\./g, '\\.')}-1$`, 'm'));

  // The scriptlets do what %systemd_post/%systemd_preun/%systemd_postun_with_restart do: preset
  // on first install, stop+disable on erase (not on upgrade), daemon-reload, try-restart on upgrade.
  const scripts = q('--scripts');
  t.match(scripts, /postinstall scriptlet[\s\S]*(systemctl --no-reload preset podman-swarm-dns\.service|systemd-update-helper install-system-units podman-swarm-dns\.service)/);
  t.match(scripts, /preuninstall scriptlet[\s\S]*\$1 -eq 0[\s\S]*(systemctl --no-reload disable --now podman-swarm-dns\.service|systemd-update-helper remove-system-units podman-swarm-dns\.service)/);
  t.match(scripts, /postuninstall scriptlet[\s\S]*(daemon-reload[\s\S]*\$1 -ge 1[\s\S]*try-restart podman-swarm-dns\.service|systemd-update-helper mark-restart-system-units podman-swarm-dns\.service)/);

  // Scratch root with its own database; the root has no /bin/sh, so scriptlets are not run
  // there (they are reviewed above).
  const root = join(out, 'rpmroot');
  sh('rpm', '-i', '--nodeps', '--noscripts', '--root', root, '--dbpath', '/var/lib/rpm', rpm);
  t.match(sh('rpm', '-q', '--root', root, '--dbpath', '/var/lib/rpm', 'podman-swarm-dns'), `podman-swarm-dns-${V}-1`);
  for (const p of expected) t.ok(existsSync(join(root, p)), `${p} installed`);
  // The installed entry point runs (through its symlink, finding package.json beside dist/).
  t.equal(sh(process.execPath, join(root, 'usr/bin/podman-swarm-dns'), '--version').trim(), V);
  sh('rpm', '-e', '--nodeps', '--noscripts', '--root', root, '--dbpath', '/var/lib/rpm', 'podman-swarm-dns');
  t.notOk(existsSync(join(root, 'usr/bin/podman-swarm-dns')), 'erased');
  t.notOk(existsSync(join(root, 'etc/podman-swarm-dns/config.yaml')), 'an unchanged config goes with it');
  t.equal(spawnSync('rpm', ['-q', '--root', root, '--dbpath', '/var/lib/rpm', 'podman-swarm-dns']).status, 1, 'no longer in the database');
});

t.test('the packaged bundle, with the packaged config, runs the daemon', async (t) => {
  const stage = join(out, 'rpm/stage');
  const bundle = join(stage, 'usr/lib/podman-swarm-dns/dist/podman-swarm-dns.mjs');
  t.match(readFileSync(bundle, 'utf8').split('\n')[0], '#!/usr/bin/node', 'runs on the distribution\'s node');
  const config = readFileSync(join(stage, 'etc/podman-swarm-dns/config.yaml'), 'utf8').replace(
    /^services:$/m,
    'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.7',
  );
  const d = await startDaemon(t, { cli: bundle, config });
  t.same(await digShort(d.dnsPort, 'web.default.cluster.local'), ['10.0.0.7']);
  const page = await fetch(`${d.api}/ui/`);
  t.equal(page.status, 200, 'the status page is packaged where the bundle looks for it');
  t.match(await page.text(), /<script type="module" src="app.js">/);
  t.equal((await fetch(`${d.api}/ui/app.js`)).status, 200);
  const help = sh(process.execPath, bundle, 'daemon', '--help');
  t.match(help, /--upstream-dns/);
  t.equal(await d.stop(), 0);
});
