import t from 'tap';
import { encode } from '@msgpack/msgpack';
import { Registry } from '../../src/registry/registry.js';
import { RegistrySync } from '../../src/registry/sync.js';
import { seeded } from '../../src/gossip/sim/clock.js';
import type { NodeState } from '../../src/registry/types.js';
import { ep, node } from '../helpers/registry.js';

// Merge properties of remote node states as gossip delivers them (msgpack-encoded updates, in
// any order, duplicated, batched differently): the registries always end up equal.

const opts = (local: string) => ({ localNode: local, routableContainerIps: false, defaultMode: 'dnsrr' as const });
const update = (s: NodeState) => encode([0, s], { ignoreUndefined: true });
const digest = (r: Registry) => JSON.stringify([...r.nodes()].sort((a, b) => (a.id < b.id ? -1 : 1)));

function randomUpdates(rand: () => number): NodeState[] {
  const out: NodeState[] = [];
  for (const id of ['n1', 'n2', 'n3', 'n4']) {
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
  const good = node('n1', 1, [ep('web', '10.0.0.1')]);
  const bad: unknown[] = [
    { ...good, version: 'x' },
    { ...good, endpoints: [{ ...good.endpoints[0], addresses: ['not-an-ip'] }] },
    { ...good, endpoints: [{ ...good.endpoints[0], service: 'Bad Name!' }] },
    { ...good, endpoints: [{ ...good.endpoints[0], ports: { http: { port: 70000, protocol: 'tcp' } } }] },
    null,
    [1, 2, 3],
  ];
  for (const b of bad) sync.notifyUpdate(encode([0, b]));
  sync.notifyUpdate(new Uint8Array([0xc1, 0xff]));
  t.equal(r.node('n1'), undefined);
  t.equal(invalid, bad.length + 1);
  sync.notifyUpdate(update(good));
  t.ok(r.node('n1'), 'a good state still merges');
  t.throws(() => sync.handleRequest(encode(['nonsense'])), /unknown registry request/);
});

t.test("a node's own state is never taken from the network", async (t) => {
  const r = new Registry(opts('me'));
  const sync = new RegistrySync(r);
  sync.notifyUpdate(update(node('me', 99, [ep('web', '10.0.0.1')])));
  t.equal(r.node('me'), undefined);
});
