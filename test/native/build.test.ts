import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/daemon.js';

// native/build.mjs, what `npm run build` runs first: a crate that does not build fails the build
// (it used to exit 0, and the native tests then skipped); no cargo is a warning, or an error when
// the addon is required. Run on a copy of the script next to a real, broken crate.

const cargo = process.env.CARGO ?? 'cargo';
const present = spawnSync(cargo, ['--version']).status === 0;

function brokenCrate(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-build-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(join(ROOT, 'native', 'build.mjs'), join(dir, 'build.mjs'));
  writeFileSync(join(dir, 'Cargo.toml'), '[package]\nname = "broken"\nversion = "0.0.0"\nedition = "2018"\n\n[lib]\ncrate-type = ["cdylib"]\n');
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'lib.rs'), 'pub fn broken( {\n');
  return join(dir, 'build.mjs');
}

function run(script: string, env: Record<string, string>) {
  const e = { ...process.env, ...env };
  if (!('PODMAN_SWARM_DNS_REQUIRE_NATIVE' in env)) delete e.PODMAN_SWARM_DNS_REQUIRE_NATIVE;
  return spawnSync(process.execPath, [script], { encoding: 'utf8', env: e });
}

t.test('cargo present, crate broken: the build fails and says so', { skip: present ? false : `${cargo} not found` }, async (t) => {
  const r = run(brokenCrate(t), {});
  t.equal(r.status, 1);
  t.match(r.stderr, /native addon build failed \(see above\)/);
});

t.test('no cargo: a warning and exit 0; with the addon required, exit 1', async (t) => {
  const script = brokenCrate(t);
  const plain = run(script, { CARGO: '/nonexistent/cargo' });
  t.equal(plain.status, 0);
  t.match(plain.stderr, /native addon NOT built: \/nonexistent\/cargo not found/);
  t.equal(run(script, { CARGO: '/nonexistent/cargo', PODMAN_SWARM_DNS_REQUIRE_NATIVE: '1' }).status, 1);
});
