#!/usr/bin/env node
// Builds the addon with cargo (offline: the crate has no registry dependencies) and copies it to
// native/podman-swarm-dns.linux-x64-gnu.node, where src/native/ looks for it. Without cargo it
// says so and exits 0: the daemon then runs its JS path (see README, "Native fast path").
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, `podman-swarm-dns.${process.platform}-${process.arch}-gnu.node`);
const strict = process.argv.includes('--strict');

const cargo = process.env.CARGO ?? 'cargo';
const probe = spawnSync(cargo, ['--version'], { encoding: 'utf8' });
if (probe.status !== 0) {
  const msg = `native addon NOT built: ${cargo} not found (install Debian's cargo, or rustup); the daemon will use its JS DNS path and the native tests will skip`;
  console.error(`*** ${msg}`);
  process.exit(strict ? 1 : 0);
}
const r = spawnSync(cargo, ['build', '--release', '--offline', '--manifest-path', join(here, 'Cargo.toml')], { stdio: 'inherit' });
if (r.status !== 0) {
  console.error('*** native addon build failed (see above); the daemon will use its JS DNS path');
  process.exit(strict ? 1 : 0);
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
