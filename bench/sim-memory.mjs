#!/usr/bin/env node
// Memory of the simulator after every host changed once (issue 16 item 5, the proofs' memory in
// bench/RESULTS.md): N hosts × 50 endpoints start converged, every host upserts one endpoint at the
// same moment, T ms of virtual time pass, then heap, RSS and ArrayBuffers are printed after a GC,
// with the CPU time of the burst, the whole states moved and the (host, node) pairs up to date.
//
//   npm run build && N=300 T=20000 node --expose-gc bench/sim-memory.mjs
import { Simulation } from '../dist/gossip/sim/simulation.js';
const ENDPOINTS=50;
const hex = (n, len) => n.toString(16).padStart(len, '0').slice(-len);
function endpoint(host, seq, N, now) {
  const service = `svc${(host * ENDPOINTS + seq) % Math.max(1, Math.floor((N * ENDPOINTS) / 10))}`;
  const name = `${service}-${host}-${seq}`;
  return { id: name, namespace: 'default', service, hostname: name,
    addresses: [`10.${88 + ((host >> 8) & 63)}.${host & 255}.${seq & 255}`], explicit: false,
    ports: { http: { port: 8080, protocol: 'tcp', hostPort: 20000 + (seq & 8191) } }, weight: 10, health: 'tcp', healthy: true, source: 'podman',
    container: { id: hex(host, 8) + hex(seq, 8) + 'c0ffee'.repeat(8), name, network: 'podman' }, lastSeen: now };
}
const N=Number(process.env.N??1000);
const m = (l) => { global.gc(); const u = process.memoryUsage(); console.log(l, 'heap MB', (u.heapUsed/1e6).toFixed(0), 'rss', (u.rss/1e6).toFixed(0), 'ext', (u.external/1e6).toFixed(0), 'ab', (u.arrayBuffers/1e6).toFixed(0)); };
m('begin');
const sim = new Simulation({ nodes: N, seed: 1, views: false, network: { latencyMs: 1, jitterMs: 4, loss: 0.01 },
    endpoints: (i) => Array.from({ length: ENDPOINTS }, (_, k) => endpoint(i, k, N, 0)) });
m('built');
let c0=process.cpuUsage();
await sim.start();
let c=process.cpuUsage(c0); console.log('start cpu', (c.user+c.system)/1e6);
m('started');
await sim.run(2000);
m('ran 2s');
// every node changes once
for (const h of sim.nodes) h.local.upsert(endpoint(h.index, ENDPOINTS+1, N, 0));
c0=process.cpuUsage();
await sim.run(Number(process.env.T ?? 20000));
c=process.cpuUsage(c0); console.log('churn-all cpu', (c.user+c.system)/1e6, 'refused', sim.counters.refused, 'whole', sim.counters.wholeStates);
let held=0; for (const h of sim.nodes) for (const x of sim.nodes) if (h.registry.node(x.id)?.version === x.local.state.version) held++;
console.log('held current', held, 'of', N*N);
m('after all changed');
