#!/usr/bin/env node
// Gossip carrying real registry state, in the deterministic simulator (issue 16): N hosts, each
// running the daemon's membership and registry sync code (through the gossip Delegate, as
// src/gossip/sim/sync.ts plugs it in), 50 Podman-like endpoints per host, and churn of one
// container start or stop per host per minute (each host at its own random phase). Hosts keep the
// node states their sync merges but not the DNS views (memory). Network: 1–5 ms latency, 1% packet
// loss, memberlist LAN timings. After a warm-up with churn, over a steady window it reports:
//   - update → 99.9% of hosts (virtual ms): p50 / p99 / max over the changes made in the window,
//     and how many did not get there within 30 s;
//   - bytes per second per host (everything sent: probes, gossip, fetches, push-pull), and the
//     same by message kind;
//   - whole node states sent per change (in update packets, fetch answers and push-pull);
//   - updates a host's sync refused (malformed, unsigned, out of bounds: 0 in a sound run);
//   - copies of each update a host received (eager pushes received / those that were news: 1.0
//     is a perfect tree), and per change: IHAVE ids sent, GRAFTs and PRUNEs (broadcast tree,
//     src/gossip/plumtree.ts);
//   - real CPU time (user + system) per simulated second; the converged start's and the whole
//     run's CPU and real time; RSS at the end.
//
// The hosts share the work they would all do alike on the same bytes (decoding a delta, applying
// it to the same state and checking its signature, encoding the update that passes it on:
// src/gossip/sim/sync.ts SharedWork), so the
// CPU figure counts that once per delta, not once per host; --no-shared turns that off. The node
// flags: GC on the main thread only (helper threads cost more CPU in all on a shared machine), and
// a young generation large enough that a packet in flight (a few virtual ms: at 5,000 hosts that
// is thousands of packets) dies young instead of being copied out of it.
//
//   npm run build && node --single-threaded-gc --max-semi-space-size=256 --initial-old-space-size=12000 --max-old-space-size=16000 bench/sim-state.mjs
//     [--sizes 1000,5000] [--endpoints 50] [--churn 60] [--warm 30] [--steady 60] [--seed 1] [--no-shared] [--key]
import './help.mjs';
import { argv } from 'zx';
import { Simulation } from '../dist/gossip/sim/simulation.js';
import { seeded } from '../dist/gossip/sim/clock.js';
import { containerEndpoint } from './common.mjs';

const SIZES = String(argv.sizes ?? '1000').split(',').map(Number);
const ENDPOINTS = Number(argv.endpoints ?? 50);
const CHURN_S = Number(argv.churn ?? 60);
const WARM_S = Number(argv.warm ?? 30);
const STEADY_S = Number(argv.steady ?? 60);
const SEED = Number(argv.seed ?? 1);
/** --key: seal every packet and frame with AES-256-GCM as the daemon does with --gossip-key-file (38 bytes a packet). */
const KEY = argv.key ? Buffer.alloc(32, 7) : undefined;
/** --no-shared: every host does all of its own work (no SharedProofs memo; see src/gossip/sim/sync.ts). */
const SHARED = argv.shared !== false;
const GIVE_UP_MS = 30_000;
// Node's slab for small Buffers (the gossip codec encodes into it): 64 KB instead of 8 KB, so
// thousands of hosts' packets take fewer new ArrayBuffers. The daemon keeps Node's default.
Buffer.poolSize = 64 * 1024;

/** ~10 endpoints per service. */
const endpoint = (host, seq, N, now) => containerEndpoint(host, seq, ENDPOINTS, Math.max(1, Math.floor((N * ENDPOINTS) / 10)), now);

const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : NaN);
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const rows = [];

for (const N of SIZES) {
  const real0 = Date.now();
  const cpu0 = cpu();
  const sim = new Simulation({
    nodes: N, seed: SEED, views: false, sharedWork: SHARED, network: { latencyMs: 1, jitterMs: 4, loss: 0.01 }, key: KEY,
    endpoints: (i) => Array.from({ length: ENDPOINTS }, (_, k) => endpoint(i, k, N, 0)),
  });
  await sim.start();
  const startReal = (Date.now() - real0) / 1000;
  const startCpu = cpu() - cpu0;
  console.error(`N=${N}: started (converged) in ${startReal.toFixed(1)} s real, ${startCpu.toFixed(1)} s CPU`);

  // Changes in flight: owner id → [{ v, t0, seen (bitmap by host), count }].
  const target = Math.ceil(0.999 * N);
  const pending = new Map();
  const done = [];
  let measuring = false;
  const finish = (c, ms) => {
    const list = pending.get(c.owner);
    list.splice(list.indexOf(c), 1);
    if (!list.length) pending.delete(c.owner);
    if (c.measured) done.push(ms);
  };
  for (const h of sim.nodes) {
    h.registry.onChange((change) => {
      for (const id of change.nodes) {
        const list = pending.get(id);
        const s = list && h.registry.node(id);
        if (!s) continue;
        let reached;
        for (const c of list) {
          if (c.v > s.version || c.seen[h.index]) continue;
          c.seen[h.index] = 1;
          if (++c.count >= target) (reached ??= []).push(c);
        }
        // Finished after the walk (finish takes them out of the list).
        if (reached) for (const c of reached) finish(c, sim.clock.now() - c.t0);
      }
    });
  }
  let changes = 0;
  // The churn's own random stream: the same changes at the same times whatever the simulated
  // protocol draws from the simulation's (a change there does not move every host's churn).
  const churnRandom = seeded(SEED * 31 + 7);
  const churn = (h, step) => {
    sim.clock.after(CHURN_S * 1000, () => churn(h, step + 1));
    const eps = h.local.endpoints('podman');
    if (step % 2 === 0 && eps.length) {
      const e = eps[Math.floor(churnRandom() * eps.length)];
      h.local.remove('podman', `${e.namespace}/${e.service}/${e.id}`);
    } else {
      h.local.upsert(endpoint(h.index, ENDPOINTS + step, N, sim.clock.now()));
    }
    if (measuring) changes++;
    const c = { owner: h.id, v: h.local.state.version, t0: sim.clock.now(), seen: new Uint8Array(N), count: 1, measured: measuring };
    c.seen[h.index] = 1;
    if (!pending.has(h.id)) pending.set(h.id, []);
    pending.get(h.id).push(c);
  };
  // Each host at a random phase of its minute, half of them with a start first: a window then
  // holds starts and stops alike, as a cluster that has run a while does (all stops otherwise).
  for (const h of sim.nodes) {
    const first = churnRandom() < 0.5 ? 0 : 1;
    sim.clock.after(churnRandom() * CHURN_S * 1000, () => churn(h, first));
  }

  const progress = (what) => console.error(`N=${N}: ${what}, ${((Date.now() - real0) / 1000).toFixed(0)} s real, ${(cpu() - cpu0).toFixed(0)} s CPU, ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB (since the start)`);
  for (let s = 0; s < WARM_S; s++) {
    await sim.run(1000);
    progress(`warm-up ${s + 1}/${WARM_S} s virtual`);
  }
  measuring = true;
  const b0 = sim.bytesSent();
  const w0 = sim.counters.wholeStates;
  const x0 = sim.counters.refused;
  const tree = () => {
    const t = { received: 0, fresh: 0, ihaveIds: 0, ihavesSent: 0, graftsSent: 0, prunesSent: 0 };
    for (const h of sim.nodes) for (const k of Object.keys(t)) t[k] += h.membership.tree.stats[k];
    return t;
  };
  const kinds = () => {
    const k = {};
    for (const h of sim.nodes) for (const [kind, n] of Object.entries(h.membership.stats.sentBy)) k[kind] = (k[kind] ?? 0) + n;
    return k;
  };
  const k0 = kinds();
  const t0 = tree();
  const c0 = cpu();
  for (let s = 0; s < STEADY_S; s++) {
    await sim.run(1000);
    progress(`window ${s + 1}/${STEADY_S} s virtual`);
  }
  const bytes = (sim.bytesSent() - b0) / N / STEADY_S;
  const whole = (sim.counters.wholeStates - w0) / Math.max(1, changes);
  const refused = sim.counters.refused - x0;
  const t1 = tree();
  const k1 = kinds();
  // Bytes per host per second by kind (Membership.stats.sentBy), largest first.
  const byKind = Object.fromEntries(Object.keys(k1).map((k) => [k, (k1[k] - (k0[k] ?? 0)) / N / STEADY_S]).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]));
  const perChange = (k) => (t1[k] - t0[k]) / Math.max(1, changes);
  const copies = (t1.received - t0.received) / Math.max(1, t1.fresh - t0.fresh);
  const ihaveIds = perChange('ihaveIds');
  const ihaves = perChange('ihavesSent');
  const grafts = perChange('graftsSent');
  const prunes = perChange('prunesSent');
  const cpuPerS = (cpu() - c0) / STEADY_S;
  measuring = false;
  // Let the window's last changes finish (or give up on them).
  for (let s = 0; s < GIVE_UP_MS / 1000 && [...pending.values()].some((l) => l.some((c) => c.measured)); s++) await sim.run(1000);
  const lost = [...pending.values()].flat().filter((c) => c.measured).length;
  done.sort((a, b) => a - b);
  const row = { N, changes, p50: pct(done, 0.5), p99: pct(done, 0.99), max: done[done.length - 1], lost, bytes, whole, refused, copies, ihaveIds, ihaves, grafts, prunes, byKind, cpuPerS, startReal, startCpu, real: (Date.now() - real0) / 1000, cpu: cpu() - cpu0, rss: process.memoryUsage().rss / 1e6 };
  rows.push(row);
  console.error(`N=${N}: ${JSON.stringify(row)}`);
}

console.log('Bytes per host per second by kind (`-user`: the delegate\'s bytes inside; `frame`: packet framing and sealing):');
for (const r of rows) console.log(`  ${r.N} hosts: ${Object.entries(r.byKind).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}`);
console.log(`| hosts | changes in ${STEADY_S} s | update → 99.9% p50 / p99 / max (virtual ms) | not there in 30 s | B/s per host | whole states sent per change | updates refused | copies received per host | per change: IHAVE ids (packets) / GRAFTs / PRUNEs | CPU s per simulated s | converged start: CPU s / real s | whole run: CPU s / real s | RSS (MB) |`);
console.log('|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.N} | ${r.changes} | ${r.p50?.toFixed(0)} / ${r.p99?.toFixed(0)} / ${r.max?.toFixed(0)} | ${r.lost} | ${r.bytes.toFixed(0)} | ${r.whole.toFixed(2)} | ${r.refused} | ${r.copies.toFixed(2)} | ${r.ihaveIds.toFixed(0)} (${r.ihaves.toFixed(0)}) / ${r.grafts.toFixed(1)} / ${r.prunes.toFixed(1)} | ${r.cpuPerS.toFixed(2)} | ${r.startCpu.toFixed(1)} / ${r.startReal.toFixed(0)} | ${r.cpu.toFixed(0)} / ${r.real.toFixed(0)} | ${r.rss.toFixed(0)} |`);
}
