import t from 'tap';
import { Simulation } from '../../src/gossip/sim/simulation.js';
import type { Endpoint } from '../../src/registry/types.js';

// The simulator with real state (issue 16): every host starts with 50 container endpoints, its
// sync layer plugged in through the gossip Delegate. A container started on one host reaches the
// node state every other host holds, with or without the DNS views built from it, and the
// simulator counts the whole states that moved for it (bench/sim-state.mjs measures at scale).

const EPS = 50;
const ep = (host: number, k: number, at: number): Endpoint => ({
  id: `c${host}-${k}`, namespace: 'default', service: `svc${(host * EPS + k) % 100}`, hostname: `c${host}-${k}`, addresses: [`10.88.${host}.${k}`],
  explicit: true, ports: { http: { port: 8080, protocol: 'tcp' } }, weight: 10, health: 'none', healthy: true, source: 'podman', lastSeen: at,
});

for (const views of [false, true]) {
  t.test(`20 hosts × ${EPS} endpoints (${views ? 'with' : 'without'} DNS views): a started container reaches every host`, async (t) => {
    const sim = new Simulation({ nodes: 20, seed: 16, views, network: { latencyMs: 1, jitterMs: 4, loss: 0.01 }, endpoints: (i) => Array.from({ length: EPS }, (_, k) => ep(i, k, 0)) });
    await sim.start();
    t.ok(sim.converged(), 'the converged start gives every host every state');
    t.equal(sim.nodes[7]!.registry.node(sim.nodes[3]!.id)?.endpoints.length, EPS, 'with its 50 endpoints');
    // Changes happen between whole milliseconds of virtual time, as a churned container's would.
    await sim.run(2000.5);
    const src = sim.nodes[3]!;
    const w0 = sim.counters.wholeStates;
    src.local.upsert(ep(3, EPS, sim.clock.now()));
    const v = src.local.state.version;
    t.ok(await sim.run(10_000, () => sim.holders(src.id, v) === 20), 'every host holds the new state within 10 s');
    t.ok(sim.nodes.every((n) => n.registry.node(src.id)!.endpoints.some((e) => e.id === `c3-${EPS}`)), 'with the new endpoint');
    if (views) t.ok(sim.nodes.every((n) => n.views!.service('default', `svc${(3 * EPS + EPS) % 100}`)!.endpoints.some((e) => e.endpoint.hostname === `c3-${EPS}` && e.reach !== null)), "and in every host's DNS view, reachable");
    else t.equal(sim.nodes[0]!.views, undefined, 'no views kept');
    t.equal(sim.counters.wholeStates - w0, 0, 'the change travelled as a delta: no whole state moved');
    t.equal(sim.counters.refused, 0, 'no host refused an update');
  });
}
