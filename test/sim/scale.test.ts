import t from 'tap';
import { Simulation } from '../../src/gossip/sim/simulation.js';

// The simulator at scale (issue 4): 1000 complete nodes on a virtual network with latency,
// jitter and packet loss. Asserts convergence; the virtual times and bytes are reported as
// comments (figures for RESULTS.md come from bench/gossip-sim.mjs).

const N = 1000;

t.test(`${N} nodes: an update reaches 99.9%, a crash is detected by all (the partition: partition.test.ts)`, async (t) => {
  const sim = new Simulation({ nodes: N, seed: 2026, network: { latencyMs: 1, jitterMs: 4, loss: 0.01 } });
  await sim.start();
  await sim.run(5000);

  await t.test('an update reaches 99.9% of nodes', async (t) => {
    const src = sim.nodes[17]!;
    const b0 = sim.bytesSent();
    const t0 = sim.clock.now();
    sim.register(src, 'web', '10.0.0.17');
    const v = src.local.state.version;
    const reached = await sim.run(30_000, () => sim.holders(src.id, v) >= Math.ceil(0.999 * N));
    t.ok(reached, '99.9% reached');
    const ms = sim.clock.now() - t0;
    t.comment(`99.9% of ${N} nodes after ${ms.toFixed(0)} ms virtual; ${((sim.bytesSent() - b0) / N / (ms / 1000)).toFixed(0)} B/s per node meanwhile`);
    await sim.run(10_000);
    t.equal(sim.holders(src.id, v), N, 'all nodes, soon after');
  });

  await t.test('a crashed node is detected by all', async (t) => {
    const victim = sim.nodes[500]!;
    sim.register(victim, 'db', '10.0.1.244');
    await sim.run(5000);
    sim.crash(victim);
    const t0 = sim.clock.now();
    const ok = await sim.run(60_000, () => sim.live().every((n) => n.membership.member(victim.id)?.state === 'dead'));
    t.ok(ok, 'all live nodes declare it dead');
    t.comment(`crash detected by all ${N - 1} in ${((sim.clock.now() - t0) / 1000).toFixed(1)} s virtual`);
    t.ok(sim.live().every((n) => n.views!.service('default', 'db') === undefined), 'its endpoint is gone everywhere');
  });

});
