import t from 'tap';
import { alivePayload } from '../../src/gossip/codec.js';
import { bucketCount, bucketOf, bucketsFor, Digest, entryHash, indexesIn, indexesOut } from '../../src/gossip/digest.js';
import { Simulation, type SimNode } from '../../src/gossip/sim/simulation.js';

// Push-pull with bucketed digests: two members holding the same members (and node states)
// exchange one hash per bucket, not their lists; where a bucket differs, only its entries move,
// and what moves is still checked (a forged alive is refused, as in a whole list).

t.test('digest: equal entries give equal hashes; one change makes exactly its bucket differ', async (t) => {
  t.equal(bucketsFor(1), 1);
  t.equal(bucketsFor(40), 16);
  t.equal(bucketsFor(1000), 256);
  t.equal(bucketsFor(10_000_000), 4096, 'bounded');
  const ids = Array.from({ length: 100 }, (_, i) => `node-${i}`);
  const build = (changed?: string) => {
    const d = new Digest(32);
    // Insertion order does not matter (XOR).
    for (const id of [...ids].reverse()) d.add(id, entryHash(`${id}|${id === changed ? 2 : 1}`));
    return d;
  };
  const a = build();
  const b = new Digest(32);
  for (const id of ids) b.add(id, entryHash(`${id}|1`));
  t.same(a.differing(b.hashes), new Set(), 'same entries, any order: nothing differs');
  t.same(build('node-7').differing(a.hashes), new Set([bucketOf('node-7', 32)]), "one entry changed: only its bucket");
  t.equal(bucketCount(a.hashes), 32);
  t.equal(bucketCount(new Uint8Array(24)), null, 'not a power of two of hashes');
  t.equal(bucketCount(new Uint8Array(0)), null);
  t.same(indexesIn(indexesOut([3, 31]), 32), new Set([3, 31]));
  t.equal(indexesIn(indexesOut([32]), 32), null, 'a bucket out of range');
  t.equal(indexesIn(new Uint8Array(3), 32), null, 'an odd length');
});

/** Bytes both sides sent for push-pull (member part and delegate part) during `fn`. */
async function pushPullBytes(sim: Simulation, fn: () => Promise<void>): Promise<number> {
  const sum = () => sim.nodes.reduce((s, n) => s + (n.membership.stats.sentBy.pushpull ?? 0) + (n.membership.stats.sentBy['pushpull-user'] ?? 0), 0);
  const before = sum();
  await fn();
  return sum() - before;
}

async function pushPull(sim: Simulation, a: SimNode, b: SimNode): Promise<void> {
  let done = false;
  const p = a.membership.pushPull(b.addr, false).finally(() => (done = true));
  await sim.run(1000, () => done);
  await p;
}

t.test('membership push-pull: hashes only when nothing differs; the differing members move and forged ones are refused', async (t) => {
  const sim = new Simulation({ nodes: 40, seed: 5 });
  await sim.start();
  await sim.run(3000);
  const [a, b, x, y] = sim.nodes as [SimNode, SimNode, SimNode, SimNode];
  // One member's whole entry is ~150 bytes; the lists alone would be 2 × 40 of them.
  const quiet = await pushPullBytes(sim, () => pushPull(sim, a, b));
  t.ok(quiet < 1000, `the same members and states on both sides: ${quiet} bytes for the whole exchange`);

  // a holds x at a newer incarnation (signed by x) and y at a newer one signed by a, not by y.
  const incX = b.membership.member(x.id)!.inc;
  const incY = b.membership.member(y.id)!.inc;
  // Put in a's table as they are (a member's own table is not checked again).
  const hold = (n: SimNode, inc: number, signer: SimNode): void => {
    const m = { id: n.id, name: n.name, addr: n.addr, inc };
    Object.assign(a.membership.member(n.id)!, { inc, proof: signer.identity.prove(alivePayload(m)) });
  };
  hold(x, incX + 5, x);
  hold(y, incY + 5, a);
  const rejected = b.membership.stats.rejected.signature;
  const moved = await pushPullBytes(sim, () => pushPull(sim, a, b));
  t.ok(b.membership.member(x.id)!.inc >= incX + 5, 'b took x at the incarnation x signed');
  t.equal(b.membership.member(y.id)!.inc, incY, 'b kept y: the newer entry was not signed by y');
  t.equal(b.membership.stats.rejected.signature, rejected + 1, 'and counted it');
  t.ok(moved < 40 * 150, `only the differing buckets moved: ${moved} bytes, less than one whole member list`);
});

t.test('push-pull with a member that knows nothing (a join) sends everything; the cluster converges', async (t) => {
  const sim = new Simulation({ nodes: 24, seed: 6, converged: false });
  for (const n of sim.nodes) sim.register(n, `svc${n.index}`, `10.5.0.${n.index + 1}`);
  await sim.start();
  await sim.run(45_000);
  t.ok(sim.converged(), 'every registry holds every state');
  for (const n of sim.nodes) t.equal(n.membership.size, 24, `${n.name} knows every member`);
});
