import t from 'tap';
import { Simulation } from '../../src/gossip/sim/simulation.js';

// A partition of 30% of the nodes for 60 s of virtual time, then healed: membership and every
// registry must converge again without restarts (docs/architecture.md#failure-model). 300 nodes
// in CI (under a minute: every member's alive and state is signed and checked, and the
// suspicion and refutation storms on both sides are simulated packet by packet);
// `PARTITION_NODES=1000 npx tap test/sim/partition.test.ts` is the larger run, with its figure in
// bench/RESULTS.md.

const N = Number(process.env.PARTITION_NODES ?? 300);
t.setTimeout(20 * 60_000);

t.test(`${N} nodes: a 30% partition for 60 s heals and all registries converge`, async (t) => {
  const sim = new Simulation({ nodes: N, seed: 2027, network: { latencyMs: 1, jitterMs: 4, loss: 0.01 } });
  await sim.start();
  for (const n of sim.nodes.filter((_, i) => i % 100 === 0)) sim.register(n, `svc${n.index}`, `10.1.${n.index >> 8}.${n.index & 255}`);
  await sim.run(10_000);
  t.ok(sim.converged(), 'converged before the partition');

  const cut = sim.nodes.slice(0, Math.floor(0.3 * N));
  const rest = sim.nodes.slice(cut.length);
  sim.net.partition(cut.map((n) => n.addr));
  await sim.run(60_000);
  t.equal(rest[0]!.membership.member(cut[0]!.id)?.state, 'dead', 'the majority declared the cut nodes dead');
  t.equal(cut[0]!.membership.member(rest[0]!.id)?.state, 'dead', 'and the cut nodes the majority');
  t.equal(rest[0]!.registry.node(cut[1]!.id), undefined, "the cut nodes' endpoints were withdrawn");

  sim.net.heal();
  const t0 = sim.clock.now();
  let converged = false;
  for (let s = 0; s < 300 && !converged; s++) {
    await sim.run(1000);
    converged = sim.converged() && sim.nodes.every((n) => n.membership.size === N);
  }
  t.ok(converged, 'every node sees every node alive and all registries are equal');
  t.comment(`partition of ${cut.length} of ${N} nodes for 60 s: converged ${((sim.clock.now() - t0) / 1000).toFixed(0)} s (virtual) after the heal`);
});
