import t from 'tap';
import { compareStates, mergeState } from '../../src/registry/merge.js';
import { LocalNode } from '../../src/registry/local.js';
import { Registry, type Change } from '../../src/registry/registry.js';
import { compareEndpoints, findByKey, inKeyOrder, keyPosition, serviceRun } from '../../src/registry/steps.js';
import { compareKeys, endpointKey, type NodeState } from '../../src/registry/types.js';
import { ep, node } from '../helpers/registry.js';
import { seeded } from '../../src/gossip/sim/clock.js';

const opts = { localNode: 'a', routableContainerIps: false, defaultMode: 'dnsrr' as const };

t.test('merge is last-writer-wins per node, commutative, associative and idempotent', async (t) => {
  const s1 = node('n', 1, [ep('web', '10.0.0.1')]);
  const s2 = node('n', 2, [ep('web', '10.0.0.2')]);
  const s2b = node('n', 2, [ep('web', '10.0.0.3')]); // same version, other content: tie broken by content
  for (const [a, b] of [[s1, s2], [s2, s2b], [s1, s2b]] as const) {
    t.equal(mergeState(a, b), mergeState(b, a), 'commutative');
    t.equal(mergeState(a, a), a, 'idempotent');
  }
  t.equal(mergeState(mergeState(s1, s2), s2b), mergeState(s1, mergeState(s2, s2b)), 'associative');
  t.equal(mergeState(s1, s2), s2, 'higher version wins');
  t.ok(compareStates(s2, s1) > 0);
  t.equal(compareStates(s2, structuredClone(s2)), 0, 'equal content compares equal');
});

t.test('any delivery order of the same updates gives the same registry', async (t) => {
  const updates = [
    node('a', 1, [ep('web', '10.0.0.1', { id: 'x' })]),
    node('a', 3, [ep('web', '10.0.0.3', { id: 'x' }), ep('db', '10.0.0.9', { id: 'y' })]),
    node('b', 2, [ep('web', '10.0.1.1', { id: 'z' })]),
    node('b', 5, []),
    node('c', 1, [ep('web', '10.0.2.1', { id: 'w' })]),
  ];
  const snapshot = (r: Registry) =>
    JSON.stringify([...r.services()].map((s) => [s.key, s.endpoints.map((e) => `${e.node.id}:${e.endpoint.id}:${e.endpoint.addresses}`)]).sort());
  let expected: string | undefined;
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let round = 0; round < 200; round++) {
    const r = new Registry(opts);
    // Random order, with duplicates (redelivery).
    const order = [...updates, ...updates.filter(() => rand() < 0.3)].sort(() => rand() - 0.5);
    for (const u of order) r.apply(structuredClone(u));
    const snap = snapshot(r);
    expected ??= snap;
    if (snap !== expected) return t.fail(`order ${round} diverged: ${snap} vs ${expected}`);
  }
  t.match(expected, /default\/web/);
  t.notMatch(expected, /10\.0\.1\.1/, 'node b emptied its state at version 5');
});

t.test('many states at once (the state file): the registry they give one by one, in one change', async (t) => {
  const states = [
    node('a', 1, [ep('web', '10.0.0.1', { id: 'x' }), ep('db', '10.0.0.9', { id: 'y' })]),
    node('b', 2, [ep('web', '10.0.1.1', { id: 'z' })]),
    node('b', 1, [ep('web', '10.0.1.7', { id: 'old' })]), // older than b's state before it: ignored
    node('c', 1, [ep('web', '10.0.2.1', { id: 'w' }), ep('cache', '10.0.2.2', { id: 'v' })]),
  ];
  const view = (r: Registry) => JSON.stringify([...r.services()].map((s) => [s.key, s.endpoints.map((e) => `${e.node.id}:${e.endpoint.id}:${e.endpoint.addresses}`).sort()]).sort());
  const one = new Registry(opts);
  for (const s of states) one.apply(structuredClone(s));
  const all = new Registry(opts);
  const changes: Change[] = [];
  all.onChange((c) => changes.push(c));
  t.same(all.applyAll(states.map((s) => structuredClone(s))), ['a', 'b', 'c'], 'the states that replaced what was known');
  t.equal(view(all), view(one), 'the same views');
  t.same([all.serviceCount, all.endpointCount], [one.serviceCount, one.endpointCount]);
  t.same(all.lookupAddress('10.0.2.1'), one.lookupAddress('10.0.2.1'), 'the same reverse index');
  t.equal(changes.length, 1, 'one change');
  t.same([...changes[0]!.services].sort(), ['default/cache', 'default/db', 'default/web']);
  t.same(changes[0]!.nodes, ['a', 'b', 'c']);
  t.same(all.applyAll(states.map((s) => structuredClone(s))), [], 'the same states again: nothing');
  t.equal(changes.length, 1, 'and no change');
});

t.test('views are rebuilt only for touched services; changes report them', async (t) => {
  const r = new Registry(opts);
  const changes: Change[] = [];
  r.onChange((c) => changes.push(c));
  r.apply(node('b', 1, [ep('web', '10.0.0.1', { id: 'w1' }), ep('db', '10.0.0.2', { id: 'd1' })]));
  t.same(changes.at(-1)!.services.sort(), ['default/db', 'default/web']);
  const dbView = r.service('default', 'db');
  r.apply(node('b', 2, [ep('web', '10.0.0.5', { id: 'w1' }), ep('db', '10.0.0.2', { id: 'd1' })]));
  t.same(changes.at(-1)!.services, ['default/web']);
  t.equal(r.service('default', 'db'), dbView, 'the untouched view object is kept');
  t.same(r.service('default', 'web')!.endpoints[0]!.endpoint.addresses, ['10.0.0.5']);
  t.equal(r.apply(node('b', 1, [])), false, 'an older state is ignored');
  t.ok(r.removeNode('b'));
  t.equal(r.service('default', 'web'), undefined);
  t.equal(r.serviceCount, 0);
  t.equal(r.endpointCount, 0);
  t.notOk(r.hasNamespace('default'));
  t.ok(changes.at(-1)!.index > changes[0]!.index, 'the index grows');
});

t.test('a state decoded anew names only the services whose endpoints differ, moved or removed ones included', async (t) => {
  const r = new Registry(opts);
  const changes: Change[] = [];
  r.onChange((c) => changes.push(c));
  const eps = Array.from({ length: 50 }, (_, i) => ep(`s${i}`, `10.0.0.${i}`, { id: `e${i}`, lastSeen: 1 }));
  r.apply(node('b', 1, eps));
  // Every object new (as gossip decodes it), lastSeen moved everywhere: s3 changed, s7's
  // endpoint moved to s8, s9's went away.
  const next = structuredClone(eps).map((e) => ({ ...e, lastSeen: 2 }));
  next[3]!.weight = 50;
  next[7]!.service = 's8';
  next.splice(9, 1);
  r.apply(node('b', 2, next));
  t.same(changes.at(-1)!.services.sort(), ['default/s3', 'default/s7', 'default/s8', 'default/s9']);
  t.equal(r.service('default', 's7'), undefined);
  t.equal(r.service('default', 's9'), undefined);
  t.same(r.service('default', 's8')!.endpoints.map((e) => e.endpoint.id).sort(), ['e7', 'e8']);
  t.equal(r.service('default', 's3')!.endpoints[0]!.endpoint.weight, 50);
  t.equal(r.endpointCount, 49);
  r.apply(node('b', 3, structuredClone(next)));
  t.same(changes.at(-1)!.services, [], 'the same content again: no service named');
  r.apply(node('b', 4, structuredClone(next), { address: '192.0.2.200' }));
  t.equal(changes.at(-1)!.services.length, 48, 'a new node address: all of its services');
});

t.test('reverse index follows the views', async (t) => {
  const r = new Registry(opts);
  r.apply(node('a', 1, [ep('web', ['10.0.0.1', 'fd00::1'], { hostname: 'h1' })]));
  t.same(r.lookupAddress('10.0.0.1'), [{ service: 'default/web', hostname: 'h1' }]);
  t.same(r.lookupAddress('fd00:0::1'), [{ service: 'default/web', hostname: 'h1' }], 'IPv6 spelling does not matter');
  r.apply(node('a', 2, []));
  t.same(r.lookupAddress('10.0.0.1'), []);
  // Two services on one address both answer for it; when one leaves, the other still does.
  r.apply(node('a', 3, [ep('web', '10.0.0.1', { hostname: 'h1' }), ep('db', '10.0.0.1', { hostname: 'h2' })]));
  t.same(r.lookupAddress('10.0.0.1').map((e) => e.service).sort(), ['default/db', 'default/web']);
  r.apply(node('a', 4, [ep('db', '10.0.0.1', { hostname: 'h2' })]));
  t.same(r.lookupAddress('10.0.0.1'), [{ service: 'default/db', hostname: 'h2' }]);
  r.apply(node('a', 5, [ep('db', '10.0.0.1', { hostname: 'h2' }), ep('api', '10.0.0.1', { hostname: 'h3' })]));
  t.same(r.lookupAddress('10.0.0.1').map((e) => e.service).sort(), ['default/api', 'default/db'], 'a second entry again');
  r.apply(node('a', 6, []));
  t.same(r.lookupAddress('10.0.0.1'), []);
});

t.test('other hosts: container IPs only with routable IPs, else host address + published port', async (t) => {
  const container = ep('web', '10.88.0.5', { explicit: false, ports: { http: { port: 80, protocol: 'tcp', hostPort: 8080 } } });
  const unpublished = ep('web', '10.88.0.6', { explicit: false, ports: { http: { port: 80, protocol: 'tcp' } } });
  const r = new Registry(opts);
  r.apply(node('remote', 1, [container, unpublished], { address: '192.0.2.20' }));
  const v = r.service('default', 'web')!;
  const byId = (id: string) => v.endpoints.find((e) => e.endpoint.id === id)!;
  t.same(byId(container.id).reach, { direct: false, addresses: ['192.0.2.20'], ports: { http: { port: 8080, protocol: 'tcp' } } });
  t.equal(byId(unpublished.id).reach, null, 'unreachable without a published port');
  t.same(r.lookupAddress('10.88.0.5'), [], 'no PTR for another host\'s container IP');

  const routed = new Registry({ ...opts, routableContainerIps: true });
  routed.apply(node('remote', 1, [container], { address: '192.0.2.20' }));
  t.same(routed.service('default', 'web')!.endpoints[0]!.reach!.addresses, ['10.88.0.5']);

  const local = new Registry({ ...opts, localNode: 'remote' });
  local.apply(node('remote', 1, [container], { address: '192.0.2.20' }));
  t.same(local.service('default', 'web')!.endpoints[0]!.reach!.ports.http, { port: 80, protocol: 'tcp' }, 'own containers: container port');
});

t.test('service mode: majority wins, disagreement is reported', async (t) => {
  const r = new Registry(opts);
  r.apply(node('a', 1, [ep('web', '10.0.0.1', { mode: 'vip' }), ep('web', '10.0.0.2', { mode: 'vip' }), ep('web', '10.0.0.3')]));
  const v = r.service('default', 'web')!;
  t.equal(v.mode, 'vip');
  t.match(v.problems.join(), /disagree on the mode/);
  // The first endpoint (by node, then id) in the minority: the others' mode still wins.
  r.apply(node('b', 1, [ep('db', '10.0.1.1', { id: 'a', mode: 'dnsrr' }), ep('db', '10.0.1.2', { id: 'b', mode: 'vip' }), ep('db', '10.0.1.3', { id: 'c', mode: 'vip' })]));
  t.equal(r.service('default', 'db')!.mode, 'vip');
  // A tie: the first endpoint's mode, on every host.
  r.apply(node('c', 1, [ep('tie', '10.0.2.1', { id: 'a', mode: 'vip' }), ep('tie', '10.0.2.2', { id: 'b', mode: 'dnsrr' })]));
  t.equal(r.service('default', 'tie')!.mode, 'vip');
  t.match(r.service('default', 'tie')!.problems.join(), /disagree on the mode \(vip, dnsrr\); using vip/);
  // All of one mode: that mode, no problem reported.
  r.apply(node('d', 1, [ep('one', '10.0.3.1', { id: 'a', mode: 'vip' }), ep('one', '10.0.3.2', { id: 'b', mode: 'vip' })]));
  t.equal(r.service('default', 'one')!.mode, 'vip');
  t.same(r.service('default', 'one')!.problems, []);
});

t.test('local node: versions grow, sources merge, health overlays', async (t) => {
  const r = new Registry(opts);
  let clock = 1000;
  const local = new LocalNode(r, { id: 'a', name: 'a', address: '192.0.2.1', incarnation: 0 }, () => clock);
  const v0 = local.state.version;
  local.replaceSource('config', [ep('web', '10.0.0.1', { id: 'c', source: 'config' })]);
  local.upsert(ep('web', '10.0.0.2', { id: 'api1', source: 'api' }));
  t.ok(local.state.version > v0);
  t.equal(r.service('default', 'web')!.endpoints.length, 2);
  local.setHealth(endpointKey({ namespace: 'default', service: 'web', id: 'api1' }), false);
  t.equal(r.service('default', 'web')!.endpoints.find((e) => e.endpoint.id === 'api1')!.endpoint.healthy, false);
  const before = local.state.version;
  clock = 5; // a clock that goes backwards still yields a higher version
  local.remove('api', endpointKey({ namespace: 'default', service: 'web', id: 'api1' }));
  t.ok(local.state.version > before);
  t.equal(local.remove('api', 'default/web/nope'), false);
  t.same(local.endpoints('config').map((e) => e.id), ['c']);
});

t.test('property: the local node\'s sources, replaced, upserted and removed at random, publish what maps by key would', async (t) => {
  const rand = seeded(21);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const r = new Registry(opts);
  const local = new LocalNode(r, { id: 'a', name: 'a', address: '192.0.2.1', incarnation: 0 });
  const sources = ['config', 'api', 'podman'] as const;
  const model = new Map(sources.map((s) => [s, new Map<string, string>()]));
  const key = (ns: string, svc: string, id: string): string => endpointKey({ namespace: ns, service: svc, id });
  const make = (source: (typeof sources)[number]) => {
    const [ns, svc, id] = [pick(['a', 'a-b', 'a0']), pick(['w', 'w-x', 'w0', 'x']), pick(['e', 'e-1', 'e0', 'e.1', 'E'])];
    return ep(svc, pick(['10.0.0.1', '10.0.0.2', '10.0.0.3']), { namespace: ns, id, source });
  };
  const published = (): string => [...new Set(sources.flatMap((s) => [...model.get(s)!.keys()]))].sort(compareKeys)
    .map((k) => { const s = sources.find((s) => model.get(s)!.has(k))!; return `${k} ${s} ${model.get(s)!.get(k)}`; }).join('\n');
  let wrong = 0;
  for (let step = 0; step < 3000; step++) {
    const source = pick(sources);
    const m = model.get(source)!;
    const before = published();
    const op = rand();
    if (op < 0.15) {
      const eps = Array.from({ length: Math.floor(rand() * 12) }, () => make(source));
      const changed = local.replaceSource(source, eps);
      m.clear();
      for (const e of eps) m.set(endpointKey(e), e.addresses[0]!);
      if (changed !== (published() !== before)) wrong++;
    } else if (op < 0.75) {
      const e = make(source);
      local.upsert(e);
      m.set(endpointKey(e), e.addresses[0]!);
    } else {
      const k = m.size > 0 && rand() < 0.8 ? pick([...m.keys()]) : key('a', 'w', 'nope');
      if (local.remove(source, k) !== m.delete(k)) wrong++;
    }
    const got = local.state.endpoints.map((e) => `${endpointKey(e)} ${e.source} ${e.addresses[0]}`).join('\n');
    if (got !== published()) wrong++;
    for (const s of sources) if (local.endpoints(s).map(endpointKey).sort(compareKeys).join() !== [...model.get(s)!.keys()].sort(compareKeys).join()) wrong++;
  }
  t.equal(wrong, 0, '3,000 random writes, the published state and each source as the model has them');
});

t.test('local node: a write that finds everything as it was changes nothing (no version, no registry change)', async (t) => {
  const r = new Registry(opts);
  let clock = 1000;
  const local = new LocalNode(r, { id: 'a', name: 'a', address: '192.0.2.1', incarnation: 0 }, () => clock);
  const podman = (seen: number) => [
    ep('web', '10.88.0.2', { id: 'c1', source: 'podman', lastSeen: seen, ports: { http: { port: 80, protocol: 'tcp', hostPort: 8080 } }, container: { id: 'x1', name: 'c1' } }),
    ep('db', '10.88.0.3', { id: 'c2', source: 'podman', lastSeen: seen, problems: ['bad label'] }),
  ];
  local.replaceSource('podman', podman(clock));
  local.replaceSource('config', [ep('api', '192.0.2.9', { id: 'k', source: 'config', lastSeen: clock })]);
  local.setHealth('default/db/c2', false);
  const changes: Change[] = [];
  r.onChange((c) => changes.push(c));
  const state = local.state;
  const index = r.index;

  // A resync (fresh objects, a later lastSeen), a reload of the same config, an unchanged health
  // result, the same identity, an API write of what is already there.
  clock = 60_000;
  local.replaceSource('podman', structuredClone(podman(clock)));
  local.replaceSource('config', [ep('api', '192.0.2.9', { id: 'k', source: 'config', lastSeen: clock })]);
  local.setHealth('default/db/c2', false);
  local.setIdentity({ id: 'a', name: 'a', address: '192.0.2.1', incarnation: 0 });
  local.upsert(ep('x', '192.0.2.7', { id: 'u', source: 'api' }));
  const afterUpsert = local.state.version;
  local.upsert(ep('x', '192.0.2.7', { id: 'u', source: 'api', lastSeen: clock + 1 }));
  t.equal(local.state.version, afterUpsert, 'the same API registration again: same version');
  changes.length = 0;
  local.replaceSource('podman', podman(clock + 5));
  t.same(changes, [], 'no registry change');
  t.equal(r.index, index + 1, 'the index moved once: for the one real change (the new API endpoint)');
  t.equal(local.state.endpoints.find((e) => e.id === 'c1')!.lastSeen, 1000, 'lastSeen is when the content was first seen');
  t.equal(state.endpoints.find((e) => e.id === 'c1'), local.state.endpoints.find((e) => e.id === 'c1'), 'the unchanged endpoint keeps its object');

  // Any real difference is a change, even deep inside an endpoint.
  const changed = podman(clock);
  changed[0]!.ports.http!.hostPort = 8081;
  const v = local.state.version;
  local.replaceSource('podman', changed);
  t.ok(local.state.version > v, 'a changed host port bumps the version');
  t.same(changes.at(-1)!.services, ['default/web'], 'and names only the service it touched');
  local.setIdentity({ id: 'a', name: 'a', address: '192.0.2.2', incarnation: 0 });
  t.ok(local.state.version > v + 1, 'a new address is a change');
});

t.test('endpoints compared without their keys: the order of the keys, for labels that begin alike', async (t) => {
  const labels = ['a', 'a-b', 'a0', 'ab', 'a-', 'b', 'a-a', 'aa-b', 'z9', '0'];
  const eps = [];
  for (const ns of labels.slice(0, 5)) for (const svc of labels) for (const id of ['x', 'x-y', 'x/y', 'x.y', 'X']) eps.push(ep(svc, '10.0.0.1', { namespace: ns, id }));
  const byKey = eps.slice().sort((a, b) => compareKeys(endpointKey(a), endpointKey(b)));
  const byFields = eps.slice().sort(compareEndpoints);
  t.same(byFields.map(endpointKey), byKey.map(endpointKey), `${eps.length} endpoints in the same order`);
  t.ok(inKeyOrder(byKey));
  t.notOk(inKeyOrder([byKey[1]!, byKey[0]!, ...byKey.slice(2)]));
  for (const ns of labels.slice(0, 5)) {
    for (const svc of labels) t.same(serviceRun(byKey, ns, svc).map(endpointKey), byKey.filter((e) => e.namespace === ns && e.service === svc).map(endpointKey));
  }
  // Found by key without building keys: every key there, and keys that are not (a part cut
  // short, one longer, an empty one) at the place a search of the keys gives.
  const keys = byKey.map(endpointKey);
  let wrong = 0;
  for (const key of [...keys, ...keys.map((k) => k.slice(0, -1)), ...keys.map((k) => k + '-'), 'a/a', 'a', '', 'a0/', 'zz']) {
    const at = keys.filter((k) => compareKeys(k, key) < 0).length;
    if (keyPosition(byKey, key) !== at || findByKey(byKey, key) !== (keys[at] === key ? byKey[at] : undefined)) wrong++;
  }
  t.equal(wrong, 0, 'every key found at its place, in a list of ' + byKey.length);
});

t.test('a state not in key order (a peer not of this version): the views of the same state sorted', async (t) => {
  const view = (r: Registry) => JSON.stringify([...r.services()].map((s) => [s.key, s.endpoints.map((e) => `${e.node.id}:${e.endpoint.id}:${e.endpoint.addresses}`)]).sort());
  const list = (v: number) => [ep('web', `10.0.0.${v}`, { id: 'x' }), ep('db', '10.0.0.9', { id: 'y' }), ep('web', '10.0.0.8', { id: 'a' }), ep('cache', '10.0.0.7', { id: 'z', namespace: 'a-b' }), ep('db', '10.0.0.6', { id: 'b', namespace: 'a' })];
  const sorted = (s: NodeState) => ({ ...s, endpoints: s.endpoints.slice().sort(compareEndpoints) });
  const mixed = new Registry(opts);
  const plain = new Registry(opts);
  for (const s of [node('n', 1, list(1)), node('m', 1, [ep('web', '10.0.1.1', { id: 'q' })]), node('n', 2, list(2)), node('n', 3, list(2).slice(1))]) {
    mixed.apply(s);
    plain.apply(sorted(s));
    t.equal(view(mixed), view(plain), `after ${s.id} version ${s.version}`);
    t.same(mixed.lookupAddress('10.0.0.6'), plain.lookupAddress('10.0.0.6'));
  }
  t.equal(mixed.service('default', 'web')!.endpoints.length, 2, "m's endpoint and n's remaining one");
  mixed.removeNode('n');
  plain.removeNode('n');
  t.equal(view(mixed), view(plain), 'and when the node goes');
  t.same(mixed.lookupAddress('10.0.0.6'), []);
});
