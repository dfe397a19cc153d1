import t from 'tap';
import { seeded } from '../../src/gossip/sim/clock.js';
import { DELTA, isWholeUpdate, NOTICE, updateIdOf, updateIn, updateOut } from '../../src/sync/update.js';

// The raw layout of a registry update (src/sync/update.ts): what the gossip layer pushes, and
// the update id it reads from it (pushes carry no id of their own).

const sig = new Uint8Array(64).fill(7);
const hash = (x: number): Uint8Array => new Uint8Array(32).fill(x);
const hex = 'ab'.repeat(16);

t.test('a delta and a notice round-trip; they share their update id, another version does not', async (t) => {
  const body = new Uint8Array([0x92, 0x90, 0x90]);
  const delta = updateOut({ type: DELTA, id: hex, version: 1_765_000_000_123, back: 60_000 }, sig, body);
  const notice = updateOut({ type: NOTICE, id: hex, version: 1_765_000_000_123, back: 60_000 }, hash(1), hash(2), sig);
  t.same(updateIn(delta), { type: DELTA, id: hex, version: 1_765_000_000_123, back: 60_000, sig, body });
  t.same(updateIn(notice), { type: NOTICE, id: hex, version: 1_765_000_000_123, back: 60_000, stateHash: hash(1), bodyHash: hash(2), sig });
  t.equal(delta.length, 1 + 17 + 6 + 3 + 64 + body.length, 'type, 16-byte node id, a wall-clock version in 6 bytes, back in 3, the signature, the body: nothing else');
  t.equal(updateIdOf(delta), updateIdOf(notice), 'one version, one update id');
  t.equal(updateIdOf(delta)!.length, 17 + 6, 'the id is the node and the version');
  t.not(updateIdOf(updateOut({ type: DELTA, id: hex, version: 1_765_000_000_124, back: 1 }, sig, body)), updateIdOf(delta));
  t.not(updateIdOf(updateOut({ type: DELTA, id: 'cd'.repeat(16), version: 1_765_000_000_123, back: 1 }, sig, body)), updateIdOf(delta));
  t.ok(isWholeUpdate(updateOut({ type: DELTA, id: hex, version: 5, back: 0 }, sig, body)), 'back 0: a delta from nothing');
  t.notOk(isWholeUpdate(delta));
  t.notOk(isWholeUpdate(notice), 'a notice is no whole state');
});

t.test('node ids that are not derived travel as text; the largest version round-trips', async (t) => {
  const u = updateOut({ type: DELTA, id: 'relay-ü', version: 2 ** 53 - 1, back: 2 ** 53 - 2 }, sig, new Uint8Array(0));
  t.same(updateIn(u), { type: DELTA, id: 'relay-ü', version: 2 ** 53 - 1, back: 2 ** 53 - 2, sig, body: new Uint8Array(0) });
});

t.test('anything else is null, never a throw', async (t) => {
  const good = updateOut({ type: NOTICE, id: hex, version: 99, back: 1 }, hash(1), hash(2), sig);
  t.equal(updateIn(good.subarray(0, good.length - 1)), null, 'a notice cut short');
  t.equal(updateIn(new Uint8Array([...good, 0])), null, 'a notice with a byte more');
  t.equal(updateIn(new Uint8Array([2, ...good.subarray(1)])), null, 'an unknown type');
  t.equal(updateIn(new Uint8Array([0, 16, 1, 2])), null, 'a node id cut short');
  t.equal(updateIdOf(new Uint8Array([0, 16, ...new Uint8Array(16), 0x80, 0])), null, 'a version not in its shortest form');
  t.equal(updateIdOf(new Uint8Array([0, 16, ...new Uint8Array(16), ...new Uint8Array(9).fill(0xff)])), null, 'a version over 8 bytes');
  const rand = seeded(3);
  for (let i = 0; i < 20_000; i++) {
    const b = new Uint8Array(Array.from({ length: Math.floor(rand() * 120) }, () => Math.floor(rand() * 256)));
    if (b.length > 1) b[0] = Math.floor(rand() * 3);
    if (b.length > 2 && rand() < 0.5) b[1] = 16;
    try {
      updateIn(b);
      updateIdOf(b);
      isWholeUpdate(b);
    } catch (e) {
      return t.fail(`input ${i} threw: ${(e as Error).message}`);
    }
  }
  t.pass('20,000 random inputs');
});
