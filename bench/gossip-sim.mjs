#!/usr/bin/env node
// Gossip at scale in the deterministic simulator (SPEC §15 "Gossip scale"): N complete nodes
// (membership + registry sync, the daemon's code) on a virtual network (1–5 ms latency, 1% packet
// loss). For each N: steady-state bytes per node per second, an update's time to reach 99.9% and
// 100% of nodes (virtual time) and the bytes per node per second meanwhile, and the time until a
// crashed node is declared dead by every other node.
//
//   npm run build && node bench/gossip-sim.mjs [--sizes 10,100,1000] [--seed 1] [--steady 200]
import './help.mjs';
import { argv } from 'zx';
import { Simulation } from '../dist/gossip/sim/simulation.js';
import { writePlot } from './plot.mjs';
import { simPlots } from './plots.mjs';

const SIZES = String(argv.sizes ?? '10,100,1000').split(',').map(Number);
const SEED = Number(argv.seed ?? 1);
const STEADY_S = Number(argv.steady ?? 200);
const rows = [];

// The analytic model behind Serf's convergence simulator: every node that has the update sends
// it to `fanout` random nodes per gossip interval (while its retransmits last); the fraction
// reached grows as f' = 1 − (1 − f)·exp(−fanout·f·(1 − loss)). Time to 99.9%, in ms.
function serfModel(N, { fanout = 3, intervalMs = 200, loss = 0.01 } = {}) {
  let f = 1 / N;
  let t = 0;
  while (f < 0.999 && t < 60_000) {
    f = 1 - (1 - f) * Math.exp(-fanout * f * (1 - loss));
    t += intervalMs;
  }
  return t;
}

for (const N of SIZES) {
  const real0 = Date.now();
  const sim = new Simulation({ nodes: N, seed: SEED, network: { latencyMs: 1, jitterMs: 4, loss: 0.01 } });
  await sim.start();
  await sim.run(5000);
  // Steady state over 200 s: probes, and at least one round of the TCP push-pull anti-entropy
  // (every 30 s, 180 s at 1000 nodes), whose full member lists dominate in large clusters.
  let b = sim.bytesSent();
  await sim.run(STEADY_S * 1000);
  const steady = (sim.bytesSent() - b) / N / STEADY_S;

  const src = sim.nodes[Math.floor(N / 3)];
  b = sim.bytesSent();
  const t0 = sim.clock.now();
  sim.register(src, 'web', '10.0.0.1');
  const v = src.local.state.version;
  await sim.run(60_000, () => sim.holders(src.id, v) >= Math.ceil(0.999 * N));
  const t999 = sim.clock.now() - t0;
  await sim.run(60_000, () => sim.holders(src.id, v) >= N);
  const t100 = sim.clock.now() - t0;
  const window = Math.max(t100, 2000);
  await sim.run(Math.max(0, t0 + window - sim.clock.now()));
  const during = (sim.bytesSent() - b) / N / (window / 1000);

  await sim.run(5000);
  const victim = sim.nodes[N - 1];
  sim.crash(victim);
  const c0 = sim.clock.now();
  await sim.run(120_000, () => sim.live().every((n) => n.membership.member(victim.id)?.state === 'dead'));
  const dead = sim.clock.now() - c0;
  const gone = sim.live().every((n) => !n.registry.node(victim.id));
  rows.push({ N, t999, t100, during, steady, dead, gone, real: (Date.now() - real0) / 1000 });
  console.error(`N=${N} done in ${((Date.now() - real0) / 1000).toFixed(1)} s real`);
}

console.log('| N | update → 99.9% (virtual ms) | Serf model → 99.9% (ms) | → 100% | B/s per node while spreading | B/s per node steady (200 s, push-pull included) | crash → dead on all (s) | endpoints gone on all | real time (s) |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---|---:|');
for (const r of rows) {
  console.log(`| ${r.N} | ${r.t999.toFixed(0)} | ${serfModel(r.N)} | ${r.t100.toFixed(0)} | ${r.during.toFixed(0)} | ${r.steady.toFixed(0)} | ${(r.dead / 1000).toFixed(1)} | ${r.gone ? 'yes' : 'no'} | ${r.real.toFixed(0)} |`);
}
const charts = simPlots(rows.map((r) => ({ n: r.N, p999: r.t999, all: r.t100, serf: serfModel(r.N), spreading: r.during, steady: r.steady })));
console.log(`\nCharts: ${['convergence', 'bandwidth'].map((k) => writePlot(`sim-${k}`, charts[k])).join(', ')}`);
