#!/usr/bin/env node
// Builds build/podman-swarm-dns_<version>_<arch>.deb with dpkg-deb from the staged tree
// (stage.mjs) plus Debian's metadata: control, conffiles, md5sums, the maintainer scripts in
// packaging/debian/, copyright and changelog. `npm run package:deb`. lintian checks the result
// when it is installed (`--lint`: always, failing without it); `--out=DIR` builds in DIR.
import { $, fs, path } from 'zx';
import { createHash } from 'node:crypto';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { BUILD, LIBDIR, NAME, NATIVE, PKG, ROOT, hasNative, packageDate, stage } from './stage.mjs';

$.verbose = false;
$.quiet = true; // tool output is shown only when a step fails (zx puts it in the error)

export const CONFFILES = [`/etc/${NAME}/config.yaml`];

export async function buildDeb({ out: outDir = BUILD, lint = false } = {}) {
  const work = path.join(outDir, 'deb');
  const { dest: root } = await stage(path.join(work, 'root'));
  const deb = path.join(root, 'DEBIAN');
  const docDir = path.join(root, `usr/share/doc/${NAME}`);

  // A native package (no Debian revision): its changelog is changelog.gz.
  fs.writeFileSync(path.join(docDir, 'changelog.gz'), gzipSync(fs.readFileSync(path.join(ROOT, 'packaging/debian/changelog')), { level: 9 }));
  fs.copyFileSync(path.join(ROOT, 'packaging/debian/copyright'), path.join(docDir, 'copyright'));

  // Debian bookworm's packages keep units in /lib/systemd/system (its systemd and
  // deb-systemd-helper look there on merged and unmerged /usr alike); the rpm keeps /usr/lib.
  // User units stay in /usr/lib/systemd/user, where bookworm's user manager looks.
  await fs.mkdirp(path.join(root, 'lib/systemd'));
  await fs.move(path.join(root, 'usr/lib/systemd/system'), path.join(root, 'lib/systemd/system'));

  // Without the addon the package is pure JavaScript and fits any architecture.
  const arch = hasNative() ? (await $`dpkg --print-architecture`).stdout.trim() : 'all';
  const maintainer = fs.readFileSync(path.join(ROOT, 'packaging/debian/changelog'), 'utf8').match(/^ -- (.*>)  /m)[1];

  await fs.mkdirp(deb);
  for (const script of ['postinst', 'prerm', 'postrm']) {
    fs.copyFileSync(path.join(ROOT, 'packaging/debian', script), path.join(deb, script));
    fs.chmodSync(path.join(deb, script), 0o755);
  }
  fs.writeFileSync(path.join(deb, 'conffiles'), CONFFILES.map((f) => `${f}\n`).join(''));
  fs.writeFileSync(path.join(deb, 'md5sums'), md5sums(root));
  fs.writeFileSync(
    path.join(deb, 'control'),
    [
      `Package: ${NAME}`,
      `Version: ${PKG.version}`,
      `Architecture: ${arch}`,
      `Maintainer: ${maintainer}`,
      `Installed-Size: ${installedSizeKiB(root)}`,
      // procps: the unit's ExecReload runs /bin/kill. iproute2: the daemon makes its link
      // pswarm0, which holds the cluster DNS address, with ip (minimal systems lack it).
      `Depends: ${['nodejs (>= 18)', 'procps', 'iproute2', ...(await nativeDepends(root))].join(', ')}`,
      'Recommends: podman',
      'Section: net',
      'Priority: optional',
      'Homepage: https://github.com/podman-swarm-dns/podman-swarm-dns',
      `Description: ${PKG.description.replace(/^Service/, 'service')}`,
      ' Every host runs one small daemon that answers',
      ' <service>.<namespace>.cluster.local (A, AAAA, SRV and PTR records, with',
      ' Kubernetes-compatible names) for the endpoints it knows, forwards every',
      ' other name to the upstream servers, and offers the same data over an HTTP',
      ' API, with no central server. Runs under systemd as podman-swarm-dns.service',
      ' (not enabled on install: systemctl enable --now podman-swarm-dns).',
      '',
    ].join('\n'),
  );

  // Reproducible: file times from the changelog's date (dpkg-deb honours SOURCE_DATE_EPOCH).
  const epoch = String(Math.floor(packageDate().getTime() / 1000));
  const out = path.join(outDir, `${NAME}_${PKG.version}_${arch}.deb`);
  await $({ env: { ...process.env, SOURCE_DATE_EPOCH: epoch } })`dpkg-deb --root-owner-group -Zxz --build ${root} ${out}`;
  if (lint) await lintian(out);
  return out;
}

/**
 * lintian, failing on errors and warnings; nothing is suppressed. Informational tags are shown
 * but accepted: package-supports-alternative-init-but-no-init.d-script (the daemon is a systemd
 * Type=notify service; there is no sysvinit script to ship) and, with the addon,
 * hardening-no-fortify-functions (it is Rust: no C library calls for _FORTIFY_SOURCE to check).
 */
export async function lintian(deb) {
  const r = await $`lintian --fail-on error,warning --tag-display-limit 0 ${deb}`.nothrow();
  process.stdout.write(r.stdout + r.stderr.replace(/^running with root privileges is not recommended!\n/m, ''));
  if (r.exitCode !== 0) throw new Error(`lintian failed on ${deb}`);
  return r.stdout;
}

/** The addon's shared-library dependencies (libc6, ...), from dpkg-shlibdeps as dh_shlibdeps does. */
async function nativeDepends(root) {
  if (!hasNative()) return [];
  // dpkg-shlibdeps wants to run in a source tree: give it a minimal one.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'psdns-shlibdeps-'));
  try {
    fs.mkdirSync(path.join(tmp, 'debian'));
    fs.writeFileSync(path.join(tmp, 'debian/control'), `Source: ${NAME}\n\nPackage: ${NAME}\nArchitecture: any\n`);
    const addon = path.join(root, LIBDIR, 'dist', path.basename(NATIVE));
    const r = await $({ cwd: tmp })`dpkg-shlibdeps -O ${addon}`;
    const m = r.stdout.match(/^shlibs:Depends=(.*)$/m);
    return m ? m[1].split(', ') : [];
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function md5sums(root) {
  const lines = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, e.name);
      const rel = path.relative(root, full);
      if (rel === 'DEBIAN') continue;
      if (e.isDirectory()) walk(full);
      // Conffiles are tracked by dpkg itself and are not listed (as dh_md5sums does).
      else if (e.isFile() && !CONFFILES.includes(`/${rel}`)) {
        lines.push(`${createHash('md5').update(fs.readFileSync(full)).digest('hex')}  ${rel}\n`);
      }
    }
  };
  walk(root);
  return lines.join('');
}

function installedSizeKiB(root) {
  let bytes = 0;
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else bytes += e.isFile() ? fs.statSync(full).size : 0;
    }
  };
  walk(root);
  return Math.ceil(bytes / 1024);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outArg = process.argv.find((a) => a.startsWith('--out='));
  const out = await buildDeb({ lint: process.argv.includes('--lint') || (await $`command -v lintian`.nothrow()).exitCode === 0, ...(outArg && { out: path.resolve(outArg.slice(6)) }) });
  console.log(out);
}
