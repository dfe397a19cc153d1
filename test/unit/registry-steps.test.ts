import t from 'tap';
import { Registry } from '../../src/registry/registry.js';
import { LocalNode } from '../../src/registry/local.js';
import { stepBetween, stepState } from '../../src/registry/steps.js';
import { compareKeys, endpointKey, type Endpoint, type NodeState } from '../../src/registry/types.js';
import { apply, diff, stateHash } from '../../src/sync/delta.js';
import { seeded } from '../../src/gossip/sim/clock.js';
import { ep, node } from '../helpers/registry.js';

// A change costs what it touches: a one-endpoint change of a node with many endpoints is found,
// indexed, encoded and hashed from the keys it changed (registry/steps.ts), not by walking the
// node's whole endpoint list; and what is built that way is exactly what a build from scratch gives.

const opts = (local: string) => ({ localNode: local, routableContainerIps: false, defaultMode: 'dnsrr' as const });
const canon = (v: unknown): string => JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
const views = (r: Registry): string => canon([...r.services()].sort((a, b) => compareKeys(a.key, b.key)));
/** The same state as new objects: nothing recorded about how it was made. */
const fresh = (s: NodeState): NodeState => JSON.parse(JSON.stringify(s)) as NodeState;
const sorted = (eps: Endpoint[]): Endpoint[] => [...eps].sort((a, b) => compareKeys(endpointKey(a), endpointKey(b)));

/** A node with `n` endpoints in `n / 10` services, as its owner keeps them (sorted by key). */
function bigNode(id: string, n: number): NodeState {
  const eps: Endpoint[] = [];
  for (let i = 0; i < n; i++) eps.push(ep(`s${Math.floor(i / 10)}`, `10.1.${i >> 8}.${i & 255}`, { id: `e${i}` }));
  return node(id, 1, sorted(eps));
}

/** `s` with its endpoint list behind a proxy that counts the positions read. */
function counted(s: NodeState): { state: NodeState; reads: () => number } {
  let reads = 0;
  const endpoints = new Proxy(s.endpoints, {
    get(target, p, receiver) {
      if (typeof p === 'string' && /^\d+$/.test(p)) reads++;
      return Reflect.get(target, p, receiver);
    },
  });
  return { state: { ...s, endpoints }, reads: () => reads };
}

t.test('a one-endpoint change of a node with 20,000 endpoints reads a few dozen of them, to index, encode and hash it', async (t) => {
  const before = bigNode('n1', 20_000);
  const r = new Registry(opts('local'));
  r.apply(before);
  stateHash(before);
  const changes = new Map<string, Endpoint | undefined>();
  const added = ep('s777', '10.9.9.9', { id: 'new' });
  changes.set(endpointKey(added), added);
  let probe: ReturnType<typeof counted> | undefined;
  const after = stepState(before, changes, (endpoints) => (probe = counted(node('n1', 2, endpoints))).state);
  const seen: string[][] = [];
  r.onChange((c) => seen.push(c.services));
  t.ok(r.apply(after), 'the registry takes the new version');
  const d = diff(before, after);
  const hash = stateHash(after);
  t.ok(probe!.reads() < 200, `endpoints read: ${probe!.reads()} of 20,001`);
  t.same(seen, [['default/s777']], 'the change names the one service');
  t.same(d.put.map((e) => e.id), ['new'], 'the delta holds the one endpoint');
  t.same(d.del, []);
  t.equal(r.service('default', 's777')!.endpoints.length, 11, 'the service has its new endpoint');
  t.same(hash, stateHash(fresh(after)), 'the state hash is the one a whole computation gives');
});

t.test('the local node: one API write into 10,000 config endpoints records one key and one service', async (t) => {
  const r = new Registry(opts('local'));
  const local = new LocalNode(r, { id: 'local', name: 'local', address: '192.0.2.1', incarnation: 0 });
  local.replaceSource('config', bigNode('local', 10_000).endpoints.map((e) => ({ ...e, source: 'config' as const })));
  const before = local.state;
  const changes: string[][] = [];
  r.onChange((c) => changes.push(c.services));
  const added = ep('s42', '10.9.9.9', { id: 'api1', source: 'api' });
  local.upsert(added);
  const step = stepBetween(before, local.state)!;
  t.same(step.keys, [endpointKey(added)], 'the step names the one endpoint');
  t.same([...step.services], ['default/s42'], 'and its service');
  t.same(changes, [['default/s42']], 'the registry change names only that service');
  t.equal(local.find('default', 's42', 'api1'), added, 'the endpoint is found by key');
  t.equal(local.serviceEndpoints('default', 's42').length, 11, 'the service has 10 config endpoints and the API one');
  t.equal(local.state.endpoints.length, 10_001);
});

t.test('property: states, views, deltas and hashes built from steps are the ones built from scratch', async (t) => {
  const rand = seeded(16);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  for (let round = 0; round < 40; round++) {
    const r = new Registry(opts('local'));
    const receiver = new Registry(opts('other'));
    const local = new LocalNode(r, { id: 'local', name: 'local', address: '192.0.2.1', incarnation: 0 }, () => 1000 + round);
    const keys = Array.from({ length: 1 + Math.floor(rand() * 120) }, (_, i) => ({ service: `s${Math.floor(rand() * 12)}`, id: `e${i}` }));
    const make = (source: 'config' | 'api' | 'podman', k: { service: string; id: string }): Endpoint =>
      ep(k.service, `10.2.${Math.floor(rand() * 4)}.${Math.floor(rand() * 250)}`, { id: k.id, source, weight: 1 + Math.floor(rand() * 3) });
    // The receiver starts from the owner's first version, as the first delta would leave it.
    let held: NodeState = local.state;
    receiver.apply(held);
    for (let step = 0; step < 30; step++) {
      const before = local.state;
      const what = rand();
      if (what < 0.4) local.upsert(make(pick(['api', 'podman', 'config']), pick(keys)));
      else if (what < 0.55) local.remove(pick(['api', 'podman', 'config']), endpointKey({ namespace: 'default', ...pick(keys) }));
      else if (what < 0.75) local.setHealthMany(keys.filter(() => rand() < 0.2).map((k) => [endpointKey({ namespace: 'default', ...k }), rand() < 0.5] as const));
      else local.replaceSource(pick(['config', 'podman']), keys.filter(() => rand() < 0.3).map((k) => make('podman', k)));
      const now = local.state;
      const label = `round ${round} step ${step}`;
      // The list is sorted by key, without repeats, and holds what the registry and a copy hold.
      const ks = now.endpoints.map(endpointKey);
      if (ks.some((k, i) => i > 0 && compareKeys(ks[i - 1]!, k) >= 0)) return t.fail(`${label}: not sorted by key`);
      const scratch = new Registry(opts('local'));
      scratch.apply(fresh(now));
      if (views(r) !== views(scratch)) return t.fail(`${label}: the views differ from a registry built from scratch`);
      if (canon(stateHash(now)) !== canon(stateHash(fresh(now)))) return t.fail(`${label}: the state hash differs from a whole computation`);
      if (now === before) continue;
      // The owner's delta (from its recorded step) and one found by comparing the lists are the
      // same; a receiver applies it to the state it holds and gets the owner's state, hash included.
      const d = diff(before, now);
      if (canon(d) !== canon(diff(fresh(before), now))) return t.fail(`${label}: the delta from the step differs from the compared one`);
      const next = apply(held, d);
      if (canon(next) !== canon(now)) return t.fail(`${label}: the delta does not rebuild the state`);
      if (canon(stateHash(next)) !== canon(stateHash(now))) return t.fail(`${label}: the receiver's hash differs`);
      receiver.apply(next);
      held = next;
    }
    const scratch = new Registry(opts('other'));
    scratch.apply(fresh(held));
    if (views(receiver) !== views(scratch)) return t.fail(`round ${round}: the receiver's views differ from a registry built from scratch`);
  }
  t.pass('40 rounds of 30 writes');
});

t.test('a state its owner did not sort: a delta on it hashes as a whole computation does', async (t) => {
  const held = node('n1', 1, bigNode('n1', 300).endpoints.reverse());
  stateHash(held);
  const added = ep('s3', '10.9.9.9', { id: 'e0000' });
  const d = { id: 'n1', name: held.name, address: held.address, incarnation: 0, base: 1, version: 2, put: [added], del: ['default/s29/e299', 'default/s0/e1'] };
  const next = apply(held, d);
  t.same(stateHash(next), stateHash(fresh(next)), 'the same hash as from scratch');
});

t.test('many changes at once (more than PATCH_MAX): the list made in one merge, sorted, as a sort from scratch gives', async (t) => {
  const before = bigNode('n1', 2_000);
  const rand = seeded(11);
  const changes = new Map<string, Endpoint | undefined>();
  for (let k = 0; k < 300; k++) {
    const old = before.endpoints[Math.floor(rand() * before.endpoints.length)]!;
    if (rand() < 0.5) changes.set(endpointKey(old), undefined); // removed
    else changes.set(endpointKey(old), { ...old, weight: 20 }); // changed
    const added = ep(`s${Math.floor(rand() * 400)}`, '10.8.0.1', { id: `new${k}` });
    changes.set(endpointKey(added), added); // added, in services old and new
  }
  const expected = new Map(before.endpoints.map((e) => [endpointKey(e), e]));
  for (const [key, e] of changes) {
    if (e) expected.set(key, e);
    else expected.delete(key);
  }
  const want = [...expected.keys()].sort(compareKeys);
  const after = stepState(before, changes, (endpoints) => node('n1', 2, endpoints));
  t.same(after.endpoints.map(endpointKey), want, 'every endpoint once, sorted by key');
  t.ok(after.endpoints.every((e) => e === expected.get(endpointKey(e))), 'the changed and kept objects themselves');
  const step = stepBetween(before, after)!;
  const services = new Set([...changes].flatMap(([key, e]) => [key.split('/').slice(0, 2).join('/'), ...(e ? [`${e.namespace}/${e.service}`] : [])]));
  t.same([...step.services].sort(), [...services].sort(), 'the step names the services of every changed key');
  // A list its owner did not sort (a peer's state is not checked for order): sorted all the same.
  const shuffled = node('n1', 1, [...before.endpoints].reverse());
  const fromShuffled = stepState(shuffled, changes, (endpoints) => node('n1', 2, endpoints));
  t.same(fromShuffled.endpoints.map(endpointKey), want, 'from an unsorted list: the same sorted list');
});

t.test('the first fill of an empty node publishes what the key-by-key path does', async (t) => {
  const list = [
    ep('b', '10.0.0.2', { id: 'x', source: 'api' }),
    ep('a', '10.0.0.1', { id: 'y', source: 'api', healthy: false }), // health is the checker's: published healthy
    ep('b', '10.0.0.3', { id: 'x', source: 'api' }), // the same key again: the last counts
    ep('a', '10.0.0.4', { id: 'z', source: 'podman' }), // another source named: taken as this one's
  ];
  const fast = new LocalNode(new Registry(opts('local')), { id: 'local', name: 'local', address: '192.0.2.1', incarnation: 0 }, () => 1000);
  t.ok(fast.replaceSource('api', list));
  // The same list where another source already holds an endpoint: looked up key by key.
  const slowRegistry = new Registry(opts('local'));
  const slow = new LocalNode(slowRegistry, { id: 'local', name: 'local', address: '192.0.2.1', incarnation: 0 }, () => 1000);
  slow.upsert(ep('c', '10.0.0.9', { id: 'w', source: 'config' }));
  slow.replaceSource('api', list);
  slow.remove('config', 'default/c/w');
  t.same(fast.state.endpoints, slow.state.endpoints);
  t.same(fast.state.endpoints.map((e) => [endpointKey(e), e.addresses[0], e.healthy, e.source]), [
    ['default/a/y', '10.0.0.1', true, 'api'], ['default/a/z', '10.0.0.4', true, 'api'], ['default/b/x', '10.0.0.3', true, 'api'],
  ]);
  const scratch = new Registry(opts('local'));
  scratch.apply(fresh(fast.state));
  t.equal(views(slowRegistry), views(scratch), 'the registry sees the same services');
  // A peer that holds nothing rebuilds it from the first delta, hash included.
  const d = diff(undefined, fast.state);
  t.same(canon(apply(undefined, d)), canon(fast.state));
  // Nothing new: no version; one more endpoint: the key-by-key path, one change.
  const version = fast.state.version;
  t.notOk(fast.replaceSource('api', list));
  t.equal(fast.state.version, version);
  fast.upsert(ep('d', '10.0.0.5', { id: 'v', source: 'api' }));
  t.equal(fast.state.endpoints.length, 4);
});
