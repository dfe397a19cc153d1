import t from 'tap';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log.js';
import { LocalNode } from '../../src/registry/local.js';
import { NAMED_PER_CHANGE, logServiceChanges } from '../../src/registry/change-log.js';
import { Registry } from '../../src/registry/registry.js';
import type { Endpoint } from '../../src/registry/types.js';

// One line per changed service, but a change of thousands of services (a start from a large
// config or state file) writes a bounded number of lines.

const ep = (i: number): Endpoint => ({
  id: 'e', namespace: 'default', service: `s${i}`, hostname: 'e', addresses: [`10.0.${i >> 8}.${i & 255}`], explicit: true,
  ports: {}, weight: 10, health: 'none', healthy: true, source: 'config', lastSeen: 1,
});

function setup(): { local: LocalNode; lines: string[] } {
  const lines: string[] = [];
  const out = new Writable({ write: (chunk, _enc, cb) => (lines.push(...String(chunk).split('\n').filter(Boolean).map((l) => JSON.parse(l).msg)), cb()) });
  const registry = new Registry({ localNode: 'me', routableContainerIps: false, defaultMode: 'dnsrr' });
  const local = new LocalNode(registry, { id: 'me', name: 'me', address: '192.0.2.1', incarnation: 0 });
  logServiceChanges(registry, createLogger('info', out));
  return { local, lines };
}

t.test('a small change names each service', async (t) => {
  const { local, lines } = setup();
  local.replaceSource('config', [ep(1), ep(2)]);
  await new Promise((r) => setImmediate(r));
  t.same(lines, ['service default/s1: 1 endpoint (1 healthy)', 'service default/s2: 1 endpoint (1 healthy)']);
});

t.test('5,000 services in one change: the first ones named, then one line for the rest', async (t) => {
  const { local, lines } = setup();
  local.replaceSource('config', Array.from({ length: 5000 }, (_, i) => ep(i)));
  await new Promise((r) => setImmediate(r));
  t.equal(lines.length, NAMED_PER_CHANGE + 1);
  t.match(lines[0], /^service default\/s\d+: 1 endpoint \(1 healthy\)$/);
  t.equal(lines[NAMED_PER_CHANGE], `and ${5000 - NAMED_PER_CHANGE} more services changed (5000 in one change)`);
  lines.length = 0;
  local.replaceSource('config', []);
  await new Promise((r) => setImmediate(r));
  t.equal(lines.length, NAMED_PER_CHANGE + 1, 'removing them: as bounded');
  t.match(lines[0], /removed$/);
});
