import t from 'tap';
import { encode } from '@msgpack/msgpack';
import { Registry } from '../../src/registry/registry.js';
import { RegistrySync, signState } from '../../src/registry/sync.js';
import { NodeIdentity } from '../../src/gossip/identity.js';
import { seeded } from '../../src/gossip/sim/clock.js';
import type { NodeState } from '../../src/registry/types.js';
import { ep, node } from '../helpers/registry.js';

// Merge properties of remote node states as gossip delivers them (msgpack-encoded updates, in
// any order, duplicated, batched differently): the registries always end up equal. Every
// state is signed by its node's key, as the daemon gossips it.

const opts = (local: string) => ({ localNode: local, routableContainerIps: false, defaultMode: 'dnsrr' as const });
const keys = new Map<string, NodeIdentity>();
/** A node id and its key, by a short name. */
const idOf = (name: string): string => {
  let k = keys.get(name);
  if (!k) keys.set(name, (k = NodeIdentity.generate()));
  return k.id;
};
const keyOf = (id: string) => [...keys.values()].find((k) => k.id === id)!;
const update = (s: NodeState, by = keyOf(s.id)) => encode([0, ...signState(by, s)]);
const digest = (r: Registry) => JSON.stringify([...r.nodes()].sort((a, b) => (a.id < b.id ? -1 : 1)));

function randomUpdates(rand: () => number): NodeState[] {
  const out: NodeState[] = [];
  for (const id of ['n1', 'n2', 'n3', 'n4'].map(idOf)) {
    const versions = 1 + Math.floor(rand() * 5);
    for (let v = 1; v <= versions; v++) {
      const eps = Array.from({ length: Math.floor(rand() * 3) }, (_, i) => ep(rand() < 0.5 ? 'web' : 'db', `10.0.${v}.${i + 1}`, { id: `${id}-${i}` }));
      // The owner is the only writer: one content per (node, version).
      out.push(node(id, v, eps));
    }
  }
  return out;
}

function shuffle<T>(a: T[], rand: () => number): T[] {
  const b = [...a];
  for (let i = b.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [b[i], b[j]] = [b[j]!, b[i]!];
  }
  return b;
}

t.test('property: any order, duplication or grouping of updates gives the same registry', async (t) => {
  const rand = seeded(42);
  for (let round = 0; round < 200; round++) {
    const updates = randomUpdates(rand);
    const results = new Set<string>();
    for (let k = 0; k < 4; k++) {
      const r = new Registry(opts('local'));
      const sync = new RegistrySync(r);
      // Duplicates (idempotence) and a random order (commutativity).
      const order = shuffle([...updates, ...updates.filter(() => rand() < 0.3)], rand);
      for (const u of order) sync.notifyUpdate(update(u));
      results.add(digest(r));
    }
    // Associativity: merge two halves in separate registries, then one into the other by push-pull.
    const [left, right] = [new Registry(opts('x')), new Registry(opts('y'))];
    const [ls, rs] = [new RegistrySync(left), new RegistrySync(right)];
    const order = shuffle(updates, rand);
    order.forEach((u, i) => (i % 2 ? ls : rs).notifyUpdate(update(u)));
    const answer = rs.pushPullAnswer(ls.pushPullRequest());
    const rest = ls.pushPullFinish(answer);
    if (rest) rs.handleRequest(rest);
    results.add(digest(left));
    results.add(digest(right));
    if (results.size !== 1) {
      t.fail(`round ${round}: registries differ`);
      return;
    }
  }
  t.pass('200 rounds of random updates converge');
});

t.test('bad remote states are ignored, never crash', async (t) => {
  const r = new Registry(opts('local'));
  let invalid = 0;
  const sync = new RegistrySync(r, Date.now, { invalid: () => invalid++ });
  const good = node(idOf('n1'), 1, [ep('web', '10.0.0.1')]);
  const bad: unknown[] = [
    { ...good, version: 'x' },
    { ...good, endpoints: [{ ...good.endpoints[0], addresses: ['not-an-ip'] }] },
    { ...good, endpoints: [{ ...good.endpoints[0], service: 'Bad Name!' }] },
    { ...good, endpoints: [{ ...good.endpoints[0], ports: { http: { port: 70000, protocol: 'tcp' } } }] },
    null,
    [1, 2, 3],
  ];
  for (const b of bad) sync.notifyUpdate(encode([0, ...signState(keyOf(good.id), b as NodeState)]));
  sync.notifyUpdate(new Uint8Array([0xc1, 0xff]));
  sync.notifyUpdate(encode([0, good]));
  t.equal(r.node(good.id), undefined);
  t.equal(invalid, bad.length + 2, 'malformed states, undecodable bytes and an unsigned state are all ignored');
  sync.notifyUpdate(update(good));
  t.ok(r.node(good.id), 'a good state still merges');
  t.throws(() => sync.handleRequest(encode(['nonsense'])), /unknown registry request/);
});

t.test("a node's own state is never taken from the network", async (t) => {
  const r = new Registry(opts(idOf('me')));
  const sync = new RegistrySync(r);
  sync.notifyUpdate(update(node(idOf('me'), 99, [ep('web', '10.0.0.1')])));
  t.equal(r.node(idOf('me')), undefined);
});

t.test('a state is merged only when signed by the key its node id stands for', async (t) => {
  const r = new Registry(opts('local'));
  const rejected: string[] = [];
  const sync = new RegistrySync(r, Date.now, { rejected: (e) => rejected.push(e.reason) });
  const victim = node(idOf('victim'), 5, [ep('web', '10.0.0.5')]);
  sync.notifyUpdate(update(victim));
  t.same(r.node(victim.id)?.endpoints.map((e) => e.addresses[0]), ['10.0.0.5']);
  // A member with the cluster key but its own signing key: a state under the victim's id.
  const hijack = node(victim.id, 2 ** 53 - 1, [ep('web', '10.6.6.6')]);
  sync.notifyUpdate(update(hijack, keyOf(idOf('rogue'))));
  // The same at a plausible version.
  sync.notifyUpdate(update({ ...hijack, version: 6 }, keyOf(idOf('rogue'))));
  t.same(rejected, ['signature', 'signature'], 'both refused as not signed by the victim');
  // Even the owner cannot jump its version near 2^53 (it would freeze the state forever).
  sync.notifyUpdate(update(hijack));
  t.same(rejected, ['signature', 'signature', 'bounds']);
  t.equal(r.node(victim.id)?.version, 5, "the victim's state is intact");
  sync.notifyUpdate(update({ ...victim, version: 6, endpoints: [ep('web', '10.0.0.6')] }));
  t.equal(r.node(victim.id)?.version, 6, "and the victim's next update still merges");
});

t.test('states over the endpoint limit are refused and counted', async (t) => {
  const r = new Registry(opts('local'));
  const rejected: string[] = [];
  const sync = new RegistrySync(r, Date.now, { rejected: (e) => rejected.push(e.reason) }, { maxEndpoints: 3 });
  const eps = (n: number) => Array.from({ length: n }, (_, i) => ep('web', `10.0.1.${i + 1}`, { id: `w${i}` }));
  sync.notifyUpdate(update(node(idOf('big'), 1, eps(4))));
  t.equal(r.node(idOf('big')), undefined);
  t.same(rejected, ['limit']);
  sync.notifyUpdate(update(node(idOf('big'), 2, eps(3))));
  t.equal(r.node(idOf('big'))?.endpoints.length, 3, 'at the limit is fine');
});
