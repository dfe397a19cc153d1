#!/usr/bin/env node
// Bytes of what the registry sync hands the membership for one churned change: the update of a
// started container (one endpoint added) and of a stopped one (one removed), on a host holding
// 50 Podman endpoints, and that host's whole state as push-pull sends it. The daemon's own
// LocalNode and RegistrySync from dist/ (npm run build first), the wall clock for versions as
// the daemon has it.
//
//   node bench/delta-size.mjs [--endpoints 50] [--runs 20]
import './help.mjs';
import { encode } from '@msgpack/msgpack';
import { argv } from 'zx';
import { Registry } from '../dist/registry/registry.js';
import { LocalNode } from '../dist/registry/local.js';
import { RegistrySync } from '../dist/sync/registry-sync.js';
import { NodeIdentity } from '../dist/gossip/identity.js';
import { containerEndpoint } from './common.mjs';

const ENDPOINTS = Number(argv.endpoints ?? 50);
const RUNS = Number(argv.runs ?? 20);
const endpoint = (host, seq, now) => containerEndpoint(host, seq, ENDPOINTS, 5000, now);

const sizes = { start: [], stop: [], whole: [] };
for (let run = 0; run < RUNS; run++) {
  const host = 100 + run * 37;
  const identity = NodeIdentity.generate();
  const registry = new Registry({ localNode: identity.id, routableContainerIps: false, defaultMode: 'dnsrr' });
  let clock = Date.now();
  const now = () => clock;
  const local = new LocalNode(registry, { id: identity.id, name: `host-${host}`, address: `192.168.${host >> 8}.${host & 255}`, incarnation: clock }, now);
  const sync = new RegistrySync(registry, now, {}, { identity });
  const sent = [];
  sync.attach({
    maxUserUpdate: 1400, broadcast: (_k, data) => sent.push(data), request: () => Promise.reject(new Error('none')), pushPull: () => Promise.resolve(),
    member: () => undefined, all: () => [], rand: Math.random, now, after: () => undefined,
  });
  local.replaceSource('podman', Array.from({ length: ENDPOINTS }, (_, k) => endpoint(host, k, clock - 3_600_000)));
  clock += 60_000;
  sent.length = 0;
  local.upsert(endpoint(host, ENDPOINTS + run, clock));
  sizes.start.push(sent.at(-1).length);
  clock += 60_000;
  const e = local.endpoints('podman')[run % ENDPOINTS];
  local.remove('podman', `${e.namespace}/${e.service}/${e.id}`);
  sizes.stop.push(sent.at(-1).length);
  // Push-pull's leg 3 to a side that holds nothing (one bucket, which differs): the whole state.
  sizes.whole.push(sync.pushPullFinish(encode([1, new Uint8Array([0, 0]), []]), false).length);
}
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const show = (xs) => `mean ${mean(xs).toFixed(1)} (min ${Math.min(...xs)}, max ${Math.max(...xs)})`;
console.log(`update of a started container (bytes): ${show(sizes.start)}`);
console.log(`update of a stopped container (bytes): ${show(sizes.stop)}`);
console.log(`churned change, start and stop alike (bytes): ${((mean(sizes.start) + mean(sizes.stop)) / 2).toFixed(1)}`);
console.log(`push-pull leg with this host's whole state, ${ENDPOINTS} endpoints (bytes): ${show(sizes.whole)}`);
