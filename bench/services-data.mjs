// The services of the start benchmarks (memory.mjs, start-profile.mjs): `services` services of
// `endpoints` endpoints each, as the three places a daemon starts with them hold them.
import { SNAPSHOT_FORMAT, toRow } from '../dist/state/snapshot.js';

/** Endpoint j of service i: a unique address in 10.64.0.0/10, hostname h<j>. */
export const address = (endpoints, i, j) => {
  const n = i * endpoints + j + 1;
  return `10.${64 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
};

/** The config file's `services:` list (this node's own endpoints). */
export function configFile({ services, endpoints }) {
  const lines = ['services:'];
  for (let i = 0; i < services; i++) {
    lines.push(`  - name: s${i}`, '    endpoints:');
    for (let j = 0; j < endpoints; j++) lines.push(`      - {address: ${address(endpoints, i, j)}, hostname: h${j}}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * api-endpoints.json: the API registrations of a previous run (this node's own), in the order
 * they were registered; with BENCH_API_ORDER=key in key order, as this version writes the file.
 */
export function apiFile({ services, endpoints }) {
  const list = [];
  for (let i = 0; i < services; i++) {
    for (let j = 0; j < endpoints; j++) {
      list.push({ namespace: 'default', service: `s${i}`, id: `h${j}`, address: address(endpoints, i, j), hostname: `h${j}`, ports: {}, weight: 10, health: 'none', registered: 1_700_000_000_000 });
    }
  }
  const key = (e) => [e.namespace, e.service, e.id].join('/');
  if (process.env.BENCH_API_ORDER === 'key') list.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return JSON.stringify({ format: 1, endpoints: list }, null, 2);
}

/**
 * The persisted registry (`state`): the endpoints spread over `nodes` other hosts (as gossip
 * brought them), in the format this version writes, or in `format` 1 (endpoint objects), the
 * one builds before it read.
 */
export function snapshotFile({ services, endpoints, nodes: count }, format = SNAPSHOT_FORMAT) {
  const nodes = Array.from({ length: count }, (_, k) => ({
    id: `bench-node-${String(k).padStart(4, '0')}`, name: `host${k}`, address: `192.0.2.${(k % 250) + 1}`, incarnation: 1, version: 1_700_000_000_000, endpoints: [],
  }));
  for (let i = 0; i < services; i++) {
    for (let j = 0; j < endpoints; j++) {
      const node = nodes[(i * endpoints + j) % count];
      node.endpoints.push({
        id: `h${j}`, namespace: 'default', service: `s${i}`, hostname: `h${j}`, addresses: [address(endpoints, i, j)], explicit: true, ports: {},
        weight: 10, health: 'none', healthy: true, source: 'api', lastSeen: 1_700_000_000_000,
      });
    }
  }
  const key = (e) => `${e.namespace}/${e.service}/${e.id}`;
  for (const n of nodes) n.endpoints.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  const savedAt = new Date().toISOString();
  if (format === 1) return JSON.stringify({ format, saved_at: savedAt, nodes, members: [] });
  const lines = [JSON.stringify({ format, saved_at: savedAt, members: [] }), ...nodes.map((n) => JSON.stringify({ ...n, endpoints: n.endpoints.map(toRow) }))];
  return `${lines.join('\n')}\n`;
}
