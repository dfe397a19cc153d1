import t from 'tap';
import pino from 'pino';
import { LbManager, LB_DEFAULTS } from '../../src/lb/manager.js';
import { vipAssigner } from '../../src/lb/setup.js';
import { parseCidr } from '../../src/net/cidr.js';
import type { SocketStore } from '../../src/net/sockets.js';
import { LocalNode } from '../../src/registry/local.js';
import { Registry } from '../../src/registry/registry.js';
import { ep } from '../helpers/registry.js';
import { waiter } from '../helpers/until.js';

const until = waiter(10_000);

// The load balancer keeps at most its budget of descriptors in systemd's store (the rest of the
// store is for the DNS and API sockets, kept after it): listeners beyond it still serve, their
// sockets are not kept, said once; a listener that goes frees its share. Real UDP listeners on
// loopback VIPs; the store is an in-memory one (systemd's needs a unit, see
// test/integration/lb-socket-adoption.test.ts and test/e2e/restart.test.ts).

t.test('VIP sockets beyond the store budget are served but not kept; a removed listener frees its share', async (t) => {
  const kept = new Map<string, number[]>();
  const store: SocketStore = { take: () => [], keep: (name, fds) => void kept.set(name, fds), forget: (name) => void kept.delete(name) };
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
  const registry = new Registry({ localNode: 'a', routableContainerIps: false, defaultMode: 'vip' });
  registry.setVipAssigner(vipAssigner(parseCidr('127.73.0.0/16')!, false));
  const local = new LocalNode(registry, { id: 'a', name: 'a', address: '127.0.0.1', incarnation: 0 });
  const service = (name: string, port: number) => ep(name, '127.0.0.1', { id: name, ports: { u: { port, protocol: 'udp' } }, source: 'config' });
  const base = 40000 + Math.floor(Math.random() * 20000);
  local.replaceSource('config', [service('s1', base), service('s2', base + 1), service('s3', base + 2)]);
  const opts = { policy: 'round-robin' as const, preferLocal: false, failOpen: false, idleTimeoutMs: 60_000, udpIdleTimeoutMs: 30_000, udpMaxSessions: 100, maxConnections: 100, proxyProtocol: false, ingress: [], hostAddress: '127.0.0.1', ejectMs: LB_DEFAULTS.ejectMs, connectTimeoutMs: LB_DEFAULTS.connectTimeoutMs };
  // Two descriptors: two of the three one-socket UDP listeners.
  const lb = new LbManager(registry, opts, null, log, store, 2);
  t.teardown(() => lb.stop());
  await lb.start();
  t.equal([...lb.listeners()].length, 3, 'all three listeners serve');
  t.equal(kept.size, 2, 'two kept');
  t.equal(lines.filter((l) => /not kept across restarts/.test(l)).length, 1, 'the third is said once');

  // Remove a service whose socket is kept, add a new one: the new one's is kept in its place.
  const all = [service('s1', base), service('s2', base + 1), service('s3', base + 2)];
  const gone = all.find((e) => [...kept.keys()].some((n) => n.endsWith(`/${e.ports.u!.port}`)))!;
  const left = all.filter((e) => e !== gone);
  local.replaceSource('config', left);
  await until(`${gone.service} to be gone`, () => [...lb.listeners()].length === 2);
  t.equal(kept.size, 1, 'the removed listener was dropped from the store');
  local.replaceSource('config', [...left, service('s4', base + 3)]);
  await until('s4 to serve', () => [...lb.listeners()].length === 3);
  t.equal(kept.size, 2, 'two kept again');
  t.ok([...kept.keys()].some((n) => n.endsWith(`/${base + 3}`)), 'the freed share went to the new listener');
  t.equal(lines.filter((l) => /not kept across restarts/.test(l)).length, 1, 'still said once');
});
