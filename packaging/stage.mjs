#!/usr/bin/env node
// Stages the installed file tree that both packages ship (deb.mjs and rpm.mjs add only their own
// metadata): the daemon bundled into one ESM file with all its npm dependencies (nothing is
// fetched from npm at install time), the native addon when it was built, the unit, the conffile,
// the man page and completion generated from the option table, docs and third-party notices.
//
//   node packaging/stage.mjs [dir]     (default build/stage)
import { $, fs, path } from 'zx';
import { build } from 'esbuild';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { buildPage } from '../src/ui/build.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
export const NAME = PKG.name;
export const LIBDIR = `usr/lib/${NAME}`;
/** The addon issue 5 builds (napi build --platform); optional: without it the daemon uses JS. */
export const NATIVE = 'native/podman-swarm-dns.linux-x64-gnu.node';
/** Licences whose terms a bundled dependency may carry (permissive, notice-only). */
// BlueOak-1.0.0 (sax, via dbus-next's xml2js) is an OSI-approved permissive licence like MIT.
const ALLOWED_LICENSES = new Set(['MIT', 'ISC', 'Apache-2.0', 'BSD-2-Clause', 'BSD-3-Clause', '0BSD', 'BlueOak-1.0.0']);

/** Non-SPDX spellings seen in bundled packages, reviewed by hand. */
const LICENSE_ALIASES = { 'MIT/X11': 'MIT' }; // @nornagon/put (via dbus-next): the MIT text
/** Packages whose package.json names no SPDX licence (all via dbus-next), read by hand. */
const REVIEWED = {
  'jsbi@2.0.5': 'Apache-2.0', // LICENSE is the Apache 2.0 text
  'map-stream@0.1.0': 'MIT', // LICENCE is the MIT text
  'pause-stream@0.0.11': 'MIT OR Apache-2.0', // "licenses": ["MIT", "Apache2"]
};

$.verbose = false;
$.quiet = true; // tool output is shown only when a step fails (zx puts it in the error)

/** Date of the package (for the man page), from SOURCE_DATE_EPOCH or the changelog's top entry. */
export function packageDate() {
  if (process.env.SOURCE_DATE_EPOCH) return new Date(Number(process.env.SOURCE_DATE_EPOCH) * 1000);
  const top = fs.readFileSync(path.join(ROOT, 'packaging/debian/changelog'), 'utf8').match(/^ -- .*>  (.*)$/m);
  if (!top) throw new Error('packaging/debian/changelog: no trailer line with a date');
  return new Date(top[1]);
}

/** The entries of packaging/debian/changelog (the one changelog; rpm.mjs converts it). */
export function changelogEntries() {
  const text = fs.readFileSync(path.join(ROOT, 'packaging/debian/changelog'), 'utf8');
  return [...text.matchAll(/^\S+ \(([^)]+)\)[^\n]*\n\n([\s\S]*?)\n\n -- (.*?>)  (.*)$/gm)].map((m) => ({
    version: m[1],
    body: m[2],
    maintainer: m[3],
    date: new Date(m[4]),
  }));
}

/** Version of the top entry of packaging/debian/changelog; packages refuse to build if it differs. */
export function changelogVersion() {
  const m = fs.readFileSync(path.join(ROOT, 'packaging/debian/changelog'), 'utf8').match(/^\S+ \(([^)]+)\)/);
  return m?.[1];
}

export const hasNative = () => fs.existsSync(path.join(ROOT, NATIVE));

/** Where packages are built; tests pass their own directory. */
export const BUILD = path.join(ROOT, 'build');

export async function stage(dest = path.join(BUILD, 'stage')) {
  if (changelogVersion() !== PKG.version) {
    throw new Error(`packaging/debian/changelog's top entry is ${changelogVersion()}, package.json says ${PKG.version}: add a changelog entry`);
  }
  await fs.remove(dest);
  const lib = path.join(dest, LIBDIR);
  await fs.mkdirp(path.join(lib, 'dist'));

  // One ESM file. Dependencies written as CommonJS call require() for Node built-ins, which an
  // ES module lacks: the banner provides one. The entry's own hashbang is replaced so the
  // daemon runs on the distribution's node (/usr/bin/node), not whatever is first in PATH.
  const bundle = path.join(lib, 'dist', `${NAME}.mjs`);
  const result = await build({
    entryPoints: [path.join(ROOT, 'src/cli.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node18',
    metafile: true,
    legalComments: 'none', // the licences are in THIRD-PARTY-NOTICES instead
    logLevel: 'warning',
    // x11: dbus-next's X11 session-bus autolaunch, never used for the system bus.
    external: ['*.node', 'x11'],
    banner: {
      js: "import { createRequire as __psdnsCreateRequire } from 'node:module';\nconst require = __psdnsCreateRequire(import.meta.url);",
    },
  });
  // All ASCII: V8 keeps the source of the bundle in the heap (lazy functions compile from it), in
  // two bytes a character if a single one is not Latin-1 (3.6 MB instead of 1.8). esbuild escapes
  // strings and regular expressions; what is left is in comments, escaped here the same way.
  const ascii = (text) => text.replace(/[^\x00-\x7f]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
  const code = `#!/usr/bin/node\n${ascii(fs.readFileSync(bundle, 'utf8').replace(/^#!.*\n/, ''))}`;
  fs.writeFileSync(bundle, code, { mode: 0o755 });
  fs.chmodSync(bundle, 0o755);
  // version.ts reads ../package.json next to dist/: ship a minimal one.
  fs.writeJsonSync(path.join(lib, 'package.json'), { name: NAME, version: PKG.version, type: 'module', license: PKG.license, private: true }, { spaces: 2 });
  // The addon goes next to the bundle, where src/native/index.ts looks in a package.
  // Stripped as dh_strip does (debug info is not shipped; lintian and rpmlint ask for it).
  if (hasNative()) {
    const addon = path.join(lib, 'dist', path.basename(NATIVE));
    copy(path.join(ROOT, NATIVE), addon, 0o644);
    await $`strip --strip-unneeded --remove-section=.comment --remove-section=.note ${addon}`;
  }
  // The status page, where src/api/ui.ts looks for it from the bundle: ../ui/www.
  await buildPage(path.join(lib, 'ui/www'));
  await fs.mkdirp(path.join(dest, 'usr/bin'));
  fs.symlinkSync(`../lib/${NAME}/dist/${NAME}.mjs`, path.join(dest, 'usr/bin', NAME));

  // systemd: the unit and its helper, from systemd/ (issue 7).
  const unitDir = path.join(dest, 'usr/lib/systemd/system');
  await fs.mkdirp(unitDir);
  copy(path.join(ROOT, `systemd/${NAME}.service`), path.join(unitDir, `${NAME}.service`), 0o644);
  // The user unit (`systemctl --user enable --now podman-swarm-dns`): the daemon for one user's rootless Podman.
  const userUnitDir = path.join(dest, 'usr/lib/systemd/user');
  await fs.mkdirp(userUnitDir);
  copy(path.join(ROOT, `systemd/${NAME}-user.service`), path.join(userUnitDir, `${NAME}.service`), 0o644);
  if (fs.existsSync(path.join(ROOT, 'systemd/notify-socket-exec'))) {
    copy(path.join(ROOT, 'systemd/notify-socket-exec'), path.join(lib, 'notify-socket-exec'), 0o755);
  }

  // Documents generated from the option table, by the code just bundled (same source as --help).
  const docs = await bundleDocs(path.join(path.dirname(dest), 'docs.mjs'));
  await fs.mkdirp(path.join(dest, `etc/${NAME}`));
  fs.writeFileSync(path.join(dest, `etc/${NAME}/config.yaml`), docs.sampleConfig(), { mode: 0o644 });
  const date = packageDate().toISOString().slice(0, 10);
  await fs.mkdirp(path.join(dest, 'usr/share/man/man8'));
  fs.writeFileSync(path.join(dest, `usr/share/man/man8/${NAME}.8.gz`), gzipSync(docs.manPage(PKG.version, date), { level: 9 }));
  await fs.mkdirp(path.join(dest, 'usr/share/bash-completion/completions'));
  fs.writeFileSync(path.join(dest, 'usr/share/bash-completion/completions', NAME), docs.bashCompletion());

  // The opt-in Podman drop-in: shipped as data, active only once the admin copies it.
  await fs.mkdirp(path.join(dest, `usr/share/${NAME}`));
  copy(path.join(ROOT, 'packaging/files/containers.conf'), path.join(dest, `usr/share/${NAME}/containers.conf`), 0o644);

  const doc = path.join(dest, `usr/share/doc/${NAME}`);
  await fs.mkdirp(doc);
  copy(path.join(ROOT, 'README.md'), path.join(doc, 'README.md'), 0o644);
  fs.writeFileSync(path.join(doc, 'THIRD-PARTY-NOTICES'), thirdPartyNotices(result.metafile));
  return { dest, bundled: bundledPackages(result.metafile) };
}

function copy(from, to, mode) {
  fs.copyFileSync(from, to);
  fs.chmodSync(to, mode);
}

// docs.ts is TypeScript: bundle it on its own (no dependencies) and import it.
async function bundleDocs(out) {
  await build({ entryPoints: [path.join(ROOT, 'src/config/docs.ts')], outfile: out, bundle: true, platform: 'node', format: 'esm', logLevel: 'warning' });
  return import(pathToFileURL(out).href + `?${Date.now()}`);
}

/** npm packages whose code ended up in the bundle, from esbuild's metafile. */
export function bundledPackages(metafile) {
  const dirs = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const m = input.match(/^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//);
    if (m) dirs.add(m[1]);
  }
  return [...dirs].sort().map((dir) => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, dir, 'package.json'), 'utf8'));
    const license = REVIEWED[`${pkg.name}@${pkg.version}`] ?? (typeof pkg.license === 'string' ? pkg.license : pkg.license?.type);
    return { dir, name: pkg.name, version: pkg.version, license };
  });
}

/** Every bundled package with its licence text; fails on a licence outside the allowed set. */
function thirdPartyNotices(metafile) {
  const parts = [
    `${NAME} bundles the following npm packages into ${LIBDIR}/dist/${NAME}.mjs.\n` +
      'Their copyright notices and licences follow.\n',
  ];
  for (const p of bundledPackages(metafile)) {
    const ids = (LICENSE_ALIASES[p.license] ?? p.license ?? '').replace(/[()]/g, '').split(/ OR | AND /);
    if (!p.license || !ids.every((id) => ALLOWED_LICENSES.has(id.trim()))) {
      throw new Error(`${p.name}@${p.version} is licensed "${p.license}", not one of ${[...ALLOWED_LICENSES].join(', ')}: review it before bundling`);
    }
    const file = fs.readdirSync(path.join(ROOT, p.dir)).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
    if (!file) throw new Error(`${p.name}@${p.version}: no LICENSE file to reproduce`);
    const text = fs.readFileSync(path.join(ROOT, p.dir, file), 'utf8').trim();
    parts.push(`${'='.repeat(78)}\n${p.name} ${p.version} (${p.license})\n${'='.repeat(78)}\n\n${text}\n`);
  }
  return parts.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { dest, bundled } = await stage(process.argv[2] && path.resolve(process.argv[2]));
  console.log(`staged ${dest} (${bundled.length} bundled packages)`);
}
