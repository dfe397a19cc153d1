#!/usr/bin/env node
// Who asks (issue 19): the cost of finding the uid of the socket a query from this host's own
// address came from (src/dns/querier-owner.ts), which the daemon does for container-name queries
// from the host while rootless users' names are known. A real UDP socket on loopback, with
// --sockets other UDP sockets open beside it (a busier /proc/net/udp); lookups one after another
// (each waits for a read of /proc/net/udp that started after it was asked), then --burst at once
// (they share reads). Prints µs per lookup in sequence and ms for the burst.
//
//   npm run build && node bench/querier-owner.mjs [--sockets 0] [--lookups 2000] [--burst 2000]
import './help.mjs';
import { argv } from 'zx';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const { QuerierOwners } = await import(join(ROOT, 'dist', 'dns', 'querier-owner.js'));
const SOCKETS = Number(argv.sockets ?? 0);
const LOOKUPS = Number(argv.lookups ?? 2000);
const BURST = Number(argv.burst ?? 2000);

const bind = () => new Promise((r) => {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1', () => r(s));
});
const others = [];
for (let i = 0; i < SOCKETS; i++) others.push(await bind());
const s = await bind();
const owners = new QuerierOwners();
const q = { address: '127.0.0.1', port: s.address().port, transport: 'udp' };
const me = process.getuid();
for (let i = 0; i < 100; i++) if ((await owners.uid(q)) !== me) throw new Error('the socket was not found');
let t0 = performance.now();
for (let i = 0; i < LOOKUPS; i++) await owners.uid(q);
const each = ((performance.now() - t0) / LOOKUPS) * 1000;
t0 = performance.now();
const found = await Promise.all(Array.from({ length: BURST }, () => owners.uid(q)));
const burst = performance.now() - t0;
if (found.some((u) => u !== me)) throw new Error('a burst lookup missed the socket');
const lines = readFileSync('/proc/net/udp', 'latin1').split('\n').length - 2;
console.log(`sockets in /proc/net/udp: ${lines}; one lookup after another: ${each.toFixed(0)} µs each; ${BURST} at once: ${burst.toFixed(1)} ms in all; load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
for (const o of [...others, s]) o.close();
