import t from 'tap';
import { ChangeIndex, RECENT_CHANGES } from '../../src/api/blocking.js';
import { MAX_ENDPOINTS, MAX_SERVICES, overview } from '../../src/api/overview.js';
import { Registry } from '../../src/registry/registry.js';
import { ep, node } from '../helpers/registry.js';

// What the status page reads: the ring of recent registry changes and the overview, both bounded
// however large the registry or however many the changes.

const registry = () => new Registry({ localNode: 'me', routableContainerIps: false, defaultMode: 'dnsrr' });

t.test('recent changes: the last 100, newest first, a bounded list of services each', async (t) => {
  const r = registry();
  const changes = new ChangeIndex(r, () => 1_000);
  t.teardown(() => changes.close());
  for (let v = 1; v <= 150; v++) r.apply(node('me', v, [ep('web', '10.0.0.1', { id: 'w', weight: 1 + (v % 50) })]));
  const recent = changes.recent();
  t.equal(recent.length, RECENT_CHANGES);
  t.equal(recent[0]!.index, r.index, 'newest first');
  t.ok(recent.every((c, i) => i === 0 || c.index < recent[i - 1]!.index));
  t.same(recent[0]!.services, [{ key: 'default/web', endpoints: 1, healthy: 1 }]);
  t.same(recent[0]!.nodes, ['me']);

  // One node state that touches 30 services: 20 named, the rest counted.
  r.apply(node('me', 151, Array.from({ length: 30 }, (_, i) => ep(`s${i}`, '10.0.0.2', { id: 'x' }))));
  const wide = changes.recent()[0]!;
  t.equal(wide.services.length, 20);
  t.equal(wide.more, 30 + 1 - 20, 'web (removed) and the 30 new ones, less those named');
  t.ok(changes.recent().some((c) => c.services.some((s) => s.key === 'default/web' && 'removed' in s)), 'a removed service says so');
});

t.test('overview: at most MAX_SERVICES services and MAX_ENDPOINTS endpoints each, search over all', async (t) => {
  const r = registry();
  const eps = [
    ...Array.from({ length: MAX_SERVICES + 100 }, (_, i) => ep(`svc-${String(i).padStart(4, '0')}`, '10.0.0.1', { id: 'a' })),
    ...Array.from({ length: MAX_ENDPOINTS + 50 }, (_, i) => ep('big', `10.1.${i >> 8}.${i & 255}`, { id: `b${i}` })),
    ep('sick', '10.2.0.1', { id: 's1', healthy: false, health: 'tcp' }),
  ];
  r.apply(node('me', 1, eps));
  r.apply(node('other', 1, [ep('sick', '192.0.2.9', { id: 's2', healthy: false, health: 'tcp' })]));
  const status = { health: { checked: 1, unhealthy: [{ endpoint: 'default/sick/s1', reason: 'tcp 10.2.0.1:80: ECONNREFUSED' }] } };
  const src = { registry: r, status, members: undefined, lb: null, dns: [], changes: [] };

  const all = overview(src, '') as { services: Array<{ name: string; endpoints: number; endpoints_shown: unknown[] }>; services_total: number; members: unknown[] };
  t.equal(all.services.length, MAX_SERVICES);
  t.equal(all.services_total, MAX_SERVICES + 102);
  t.equal(all.members.length, 2, 'members from the registry when gossip is off');

  const big = (overview(src, 'default/big') as typeof all).services;
  t.equal(big.length, 1, 'the search finds a service past the first MAX_SERVICES');
  t.equal(big[0]!.endpoints, MAX_ENDPOINTS + 50);
  t.equal(big[0]!.endpoints_shown.length, MAX_ENDPOINTS);

  const sick = (overview(src, 'sick') as unknown as { services: Array<{ endpoints_shown: Array<{ id: string; reason: string | null }> }> }).services[0]!;
  t.same(sick.endpoints_shown.map((e) => [e.id, e.reason]), [['s1', 'tcp 10.2.0.1:80: ECONNREFUSED'], ['s2', 'reported unhealthy by its node']]);
});
