#!/usr/bin/env node
// One service's names compiled into the native answer table, as its endpoint count grows: every
// endpoint has its own hostname, half on this node and half on another (prefer-local on, so each
// name also gets its this-host-first variant). Compile time of the whole table (it holds little
// else) should grow linearly with the endpoints.
//
//   npm run build && node bench/host-names.mjs [--sizes 250,500,1000,2000,4000] [--rounds 3]
import './help.mjs';
import { argv } from 'zx';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const { Registry } = await import(`${ROOT}/dist/registry/registry.js`);
const { compileTable } = await import(`${ROOT}/dist/native/table.js`);
const SIZES = String(argv.sizes ?? '250,500,1000,2000,4000').split(',').map(Number);
const ROUNDS = Number(argv.rounds ?? 3);

const endpoint = (i) => ({
  id: `e${i}`, namespace: 'default', service: 'big', hostname: `h${i}`, addresses: [`10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`],
  explicit: true, ports: { http: { port: 80, protocol: 'tcp' } }, weight: 10, health: 'none', healthy: true, source: 'api', lastSeen: 0,
});

console.log('| endpoints | table compile (ms, best of rounds) | ms per endpoint |');
console.log('|---:|---:|---:|');
for (const n of SIZES) {
  const r = new Registry({ localNode: 'me', routableContainerIps: false, defaultMode: 'dnsrr' });
  const all = Array.from({ length: n }, (_, i) => endpoint(i));
  r.apply({ id: 'me', name: 'me', address: '192.0.2.1', incarnation: 0, version: 1, endpoints: all.slice(0, n >> 1) });
  r.apply({ id: 'other', name: 'other', address: '192.0.2.2', incarnation: 0, version: 1, endpoints: all.slice(n >> 1) });
  const settings = { domain: 'cluster.local', ttl: 5, negativeTtl: 5, nameserver: '10.223.0.10', serial: 1, failOpen: false, preferLocal: true };
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const t0 = performance.now();
    compileTable({ zone: { settings, source: r, rotation: () => 0 }, services: r.services(), clients: [] });
    best = Math.min(best, performance.now() - t0);
  }
  console.log(`| ${n} | ${best.toFixed(1)} | ${(best / n).toFixed(3)} |`);
}
