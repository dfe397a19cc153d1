#!/usr/bin/env node
// Builds build/podman-swarm-dns-<version>-1.<arch>.rpm with rpmbuild from the staged tree
// (stage.mjs) and packaging/rpm/podman-swarm-dns.spec.in. `npm run package:rpm`. rpmlint (with
// packaging/rpm/rpmlint.toml) checks the result when it is installed (`--lint`: always, failing
// without it); `--out=DIR` builds in DIR.
import { $, fs, path } from 'zx';
import { fileURLToPath } from 'node:url';
import { BUILD, NAME, PKG, ROOT, changelogEntries, hasNative, stage } from './stage.mjs';

$.verbose = false;
$.quiet = true; // tool output is shown only when a step fails (zx puts it in the error)

export async function buildRpm({ out: outDir = BUILD, lint = false } = {}) {
  const work = path.join(outDir, 'rpm');
  await fs.remove(work);
  const { dest } = await stage(path.join(work, 'stage'));
  // Fedora's place for licence texts (%license).
  await fs.mkdirp(path.join(dest, `usr/share/licenses/${NAME}`));
  fs.copyFileSync(path.join(ROOT, 'LICENSE'), path.join(dest, `usr/share/licenses/${NAME}/LICENSE`));

  const arch = hasNative() ? (await $`rpm --eval %{_arch}`).stdout.trim() : 'noarch';
  const entries = changelogEntries();
  const spec = fs
    .readFileSync(path.join(ROOT, 'packaging/rpm/podman-swarm-dns.spec.in'), 'utf8')
    .replaceAll('@VERSION@', PKG.version)
    .replaceAll('@ARCH@', arch)
    .replaceAll('@STAGE@', dest)
    .replaceAll('@MAINTAINER@', entries[0].maintainer)
    .replace('@CHANGELOG@', entries.map(rpmChangelogEntry).join('\n'));
  const specFile = path.join(work, `${NAME}.spec`);
  fs.writeFileSync(specFile, spec);

  const epoch = String(Math.floor(entries[0].date.getTime() / 1000));
  const defines = [
    ['_topdir', work],
    ['_rpmdir', work],
    // Where rpmbuild puts the result: flat, named as rpm names packages.
    ['_build_name_fmt', '%%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm'],
    // Reproducible: file times and build time from the changelog (rpm >= 4.14).
    ['source_date_epoch_from_changelog', '1'],
    ['use_source_date_epoch_as_buildtime', '1'],
    ['clamp_mtime_to_source_date_epoch', '1'],
  ].flatMap(([k, v]) => ['--define', `${k} ${v}`]);
  await $({ env: { ...process.env, SOURCE_DATE_EPOCH: epoch } })`rpmbuild -bb --nodeps ${defines} ${specFile}`;
  const built = path.join(work, `${NAME}-${PKG.version}-1.${arch}.rpm`);
  const out = path.join(outDir, path.basename(built));
  await fs.move(built, out, { overwrite: true });
  if (lint) await rpmlint(out);
  return out;
}

/** rpmlint with packaging/rpm/rpmlint.toml (each filtered message says why there). */
export async function rpmlint(rpm) {
  const r = await $`rpmlint -c ${path.join(ROOT, 'packaging/rpm/rpmlint.toml')} ${rpm}`.nothrow();
  process.stdout.write(r.stdout + r.stderr);
  // rpmlint exits 64 on errors, 66 on too many warnings; a clean run prints "0 errors, 0 warnings".
  if (r.exitCode !== 0 || !/ 0 errors, 0 warnings/.test(r.stdout)) throw new Error(`rpmlint failed on ${rpm}`);
  return r.stdout;
}

/** One Debian changelog entry as an rpm %changelog entry. */
function rpmChangelogEntry(e) {
  const d = e.date;
  const day = d.toLocaleDateString('en-US', { weekday: 'short', timeZone: 'UTC' });
  const mon = d.toLocaleDateString('en-US', { month: 'short', timeZone: 'UTC' });
  const head = `* ${day} ${mon} ${String(d.getUTCDate()).padStart(2, '0')} ${d.getUTCFullYear()} ${e.maintainer} - ${e.version}-1`;
  const body = e.body
    .split('\n')
    .map((l) => l.replace(/^ {2}\* /, '- ').replace(/^ {4}/, '  '))
    .join('\n');
  return `${head}\n${body}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outArg = process.argv.find((a) => a.startsWith('--out='));
  const out = await buildRpm({ lint: process.argv.includes('--lint') || (await $`command -v rpmlint`.nothrow()).exitCode === 0, ...(outArg && { out: path.resolve(outArg.slice(6)) }) });
  console.log(out);
}
