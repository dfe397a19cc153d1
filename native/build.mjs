#!/usr/bin/env node
// Builds the addon with cargo (offline: the crate has no registry dependencies) and copies it to
// native/podman-swarm-dns.linux-x64-gnu.node, where src/native/ looks for it.
// - cargo present and the crate does not build: exit 1 (a broken crate must not give a green
//   build whose native tests then skip).
// - no cargo: a loud warning and exit 0, the daemon then runs its JS DNS path (see README,
//   "Native fast path") — unless --strict or PODMAN_SWARM_DNS_REQUIRE_NATIVE=1 (set by .ci/run
//   on a machine with cargo), which make that an error too.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, `podman-swarm-dns.${process.platform}-${process.arch}-gnu.node`);
const strict = process.argv.includes('--strict') || process.env.PODMAN_SWARM_DNS_REQUIRE_NATIVE === '1';

const cargo = process.env.CARGO ?? 'cargo';
const probe = spawnSync(cargo, ['--version'], { encoding: 'utf8' });
if (probe.status !== 0) {
  const msg = `native addon NOT built: ${cargo} not found (install Debian's cargo, or rustup); the daemon will use its JS DNS path and the native tests will skip`;
  console.error(`*** ${msg}`);
  process.exit(strict ? 1 : 0);
}
const r = spawnSync(cargo, ['build', '--release', '--offline', '--manifest-path', join(here, 'Cargo.toml')], { stdio: 'inherit' });
if (r.status !== 0) {
  console.error(`*** native addon build failed (see above): fix the crate in native/, or build without it by removing ${cargo} from PATH`);
  process.exit(1);
}
const built = join(here, 'target', 'release', 'libpodman_swarm_dns_native.so');
if (!existsSync(built)) {
  console.error(`*** ${built} missing after cargo build`);
  process.exit(1);
}
// Never overwrite the addon in place: a running daemon has it mapped, and changing the pages under
// it crashes that daemon (SIGSEGV). A copy under a temporary name in the same directory, renamed
// over the target, gives the new build a new inode and leaves the old one to whoever maps it.
const tmp = `${target}.${process.pid}.tmp`;
copyFileSync(built, tmp);
renameSync(tmp, target);
console.error(`native addon: ${target}`);
