import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/daemon.js';
import { REQUIRE_NATIVE } from '../helpers/native.js';

// The Rust unit tests of native/ (`cargo test`: the relay's state machine on loopback sockets,
// see native/src/testutil.rs for where they live), run as part of `npm test`. Without cargo they
// skip, unless PODMAN_SWARM_DNS_REQUIRE_NATIVE=1 (.ci/run on a machine with cargo).

const cargo = process.env.CARGO ?? 'cargo';
const present = spawnSync(cargo, ['--version']).status === 0;
if (!present && REQUIRE_NATIVE) throw new Error(`PODMAN_SWARM_DNS_REQUIRE_NATIVE=1 but ${cargo} is not found`);

t.test('cargo test passes in native/', { skip: present ? false : `${cargo} not found: the crate's own tests cannot run`, timeout: 600_000 }, async (t) => {
  const r = spawnSync(cargo, ['test', '--offline', '--manifest-path', join(ROOT, 'native', 'Cargo.toml')], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const out = `${r.stdout}${r.stderr}`;
  const summary = out.match(/test result: .*/g) ?? [];
  t.equal(r.status, 0, `cargo test: ${summary.join('; ') || 'no test result'}${r.status === 0 ? '' : `\n${out.slice(-6000)}`}`);
  t.ok(summary.some((s) => /ok\. [1-9]\d* passed/.test(s)), 'some tests ran');
});
