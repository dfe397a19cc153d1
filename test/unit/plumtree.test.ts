import t from 'tap';
import { decodeMessages, encodeMessages } from '../../src/gossip/codec.js';
import { encode } from '@msgpack/msgpack';
import { MAX_IDS, SHORT_ID_BYTES, shortId as s, Tree, type TreeConfig, type TreeHost } from '../../src/gossip/plumtree.js';
import { VirtualClock } from '../../src/gossip/sim/clock.js';

// The broadcast tree's rules on their own (src/gossip/plumtree.ts), on a virtual clock: what a
// node sends for each input. The simulator (test/sim/state.test.ts) runs the tree between hosts.

/** The sizes these tests are written for (the defaults are TREE). */
const TREE: TreeConfig = { eagerPeers: 3, lazyPeers: 3, ihaveInterval: 100, graftTimeout: 250, keep: 10_000 };

type Sent = ['push', string, string] | ['ihave', string, number[]] | ['graft', string, number[]] | ['prune', string];

function tree(o: { members?: string[]; cfg?: Partial<TreeConfig>; news?: (data: Uint8Array) => boolean } = {}) {
  const clock = new VirtualClock();
  const members = new Set(o.members ?? ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8']);
  const sent: Sent[] = [];
  const delivered: string[] = [];
  const host: TreeHost = {
    clock,
    sample: (k, skip) => [...members].filter((m) => !skip(m)).slice(0, k),
    deliver: (data, from) => {
      delivered.push(`${new TextDecoder().decode(data)}<${from}`);
      return o.news ? o.news(data) : true;
    },
    push: (to, id) => void sent.push(['push', to, id]),
    ihave: (to, ids) => void sent.push(['ihave', to, ids]),
    graft: (to, ids) => void sent.push(['graft', to, ids]),
    prune: (to) => void sent.push(['prune', to]),
  };
  const tr = new Tree(host, { ...TREE, ...o.cfg });
  tr.refill();
  const take = (): Sent[] => sent.splice(0);
  return { tr, clock, members, take, delivered };
}
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

t.test('a new update is pushed to the eager peers at once and announced to the lazy ones, batched', async (t) => {
  const { tr, take } = tree();
  t.same([...tr.eager], ['p1', 'p2', 'p3'], 'eager: the first eagerPeers sampled');
  t.same([...tr.lazy], ['p4', 'p5', 'p6'], 'lazy: the next lazyPeers');
  tr.onPush('u1', bytes('u1'), 'p2');
  t.same(take(), [], 'the delegate did not pass it on (yet): nothing sent');
  tr.broadcast('u1', bytes('u1'));
  tr.broadcast('u2', bytes('u2'));
  t.same(take(), [['push', 'p1', 'u1'], ['push', 'p3', 'u1'], ['push', 'p1', 'u2'], ['push', 'p2', 'u2'], ['push', 'p3', 'u2']], 'pushed to every eager peer but the one it came from');
  tr.broadcast('u2', bytes('u2'));
  t.same(take(), [], 'once per id');
  tr.tick();
  t.same(take(), [['ihave', 'p4', [s('u1'), s('u2')]], ['ihave', 'p5', [s('u1'), s('u2')]], ['ihave', 'p6', [s('u1'), s('u2')]]], 'one IHAVE per lazy peer per round, with both ids');
  tr.tick();
  t.same(take(), [], 'nothing new: no IHAVE');
});

t.test('in a small cluster (no lazy peers) the ids are announced to the eager peers, so a lost push is grafted', async (t) => {
  const { tr, take } = tree({ members: ['p1', 'p2'] });
  t.same([...tr.eager], ['p1', 'p2']);
  t.equal(tr.lazy.size, 0);
  tr.onPush('u1', bytes('u1'), 'p1');
  tr.broadcast('u1', bytes('u1'));
  t.same(take(), [['push', 'p2', 'u1']]);
  tr.tick();
  t.same(take(), [['ihave', 'p2', [s('u1')]]], 'announced to the eager peer it was pushed to, not to the one it came from');
});

t.test('a duplicate prunes the peer it came from; a PRUNE makes the edge lazy on this side too', async (t) => {
  const { tr, take, delivered } = tree();
  tr.onPush('u1', bytes('u1'), 'p1');
  tr.onPush('u1', bytes('u1'), 'p2');
  t.same(delivered, ['u1<p1'], 'the delegate sees the first copy only');
  t.same(take(), [['prune', 'p2']], 'the second sender is told to stop');
  t.notOk(tr.eager.has('p2'), 'and is no longer eager');
  t.ok(tr.lazy.has('p2'), 'but lazy (it still hears of updates)');
  t.equal(tr.stats.duplicates, 1);
  tr.onPrune('p3');
  t.notOk(tr.eager.has('p3'), 'a peer that pruned us is not pushed to');
  t.ok(tr.lazy.has('p3'), 'it is announced to');
  tr.broadcast('u9', bytes('u9'));
  t.same(take(), [['push', 'p1', 'u9']], 'pushes go to what is left of the eager set');
  tr.onPush('u9', bytes('u9'), 'p1');
  t.same(take(), [], 'the last eager peers are kept: a duplicate from one is not pruned (crossing updates would split the tree)');
  t.ok(tr.eager.has('p1'));
});

t.test('a copy the delegate finds old news (it came by push-pull) prunes its sender too', async (t) => {
  const { tr, take } = tree({ news: () => false });
  tr.onPush('u1', bytes('u1'), 'p1');
  t.same(take(), [['prune', 'p1']]);
  t.notOk(tr.eager.has('p1'));
});

t.test('a sender of a new update becomes eager (the tree edge works both ways)', async (t) => {
  const { tr } = tree();
  tr.onPush('u1', bytes('u1'), 'p5');
  t.ok(tr.eager.has('p5'), 'p5 is eager now');
  t.notOk(tr.lazy.has('p5'), 'and not lazy');
});

t.test('an announced id that does not arrive is grafted from its announcer, then from the next', async (t) => {
  const { tr, clock, take } = tree();
  tr.onIHave([s('u1'), s('u2')], 'p5');
  tr.onIHave([s('u1')], 'p6');
  clock.runUntil(TREE.graftTimeout - 1);
  tr.onPush('u2', bytes('u2'), 'p1');
  t.same(take(), [], 'nothing grafted before the timeout');
  clock.runUntil(TREE.graftTimeout);
  t.same(take(), [['graft', 'p5', [s('u1')]]], 'u1 (still missing) grafted from the first announcer; u2 arrived meanwhile');
  t.ok(tr.eager.has('p5'), 'the announcer is eager again');
  clock.runUntil(2 * TREE.graftTimeout);
  t.same(take(), [['graft', 'p6', [s('u1')]]], 'still missing: the second announcer is asked');
  tr.onPush('u1', bytes('u1'), 'p6');
  clock.runUntil(10 * TREE.graftTimeout);
  t.same(take(), [], 'received: no more grafts');
  t.equal(tr.waiting, 0, 'nothing waited for');
  tr.onIHave([s('u1')], 'p7');
  clock.runUntil(20 * TREE.graftTimeout);
  t.same(take(), [], 'an IHAVE for an id held costs nothing');
});

t.test('a GRAFT is answered with the update when held, with nothing when not', async (t) => {
  const { tr, take } = tree();
  tr.onPush('u1', bytes('u1'), 'p1');
  tr.broadcast('u1', bytes('u1'));
  take();
  tr.onGraft([s('u1'), s('forged'), s('u0')], 'p5');
  t.same(take(), [['push', 'p5', 'u1']], 'only the held update is sent');
  t.ok(tr.eager.has('p5'), 'and the grafting peer is eager');
  tr.onPush('u3', bytes('u3'), 'p1');
  tr.onGraft([s('u3')], 'p6');
  t.same(take(), [], 'an update received but not passed on (the delegate held it back) is not sent');
});

t.test('a dead member leaves both sets and is replaced from the membership', async (t) => {
  const { tr, members } = tree();
  members.delete('p2');
  tr.remove('p2');
  t.notOk(tr.eager.has('p2'));
  t.equal(tr.eager.size + tr.lazy.size, TREE.eagerPeers + TREE.lazyPeers, 'the sets are full again');
  t.ok(tr.eager.has('p7'), 'with a new member, eager');
  members.delete('p5');
  tr.remove('p5');
  t.notOk(tr.lazy.has('p5'));
  t.ok(tr.eager.has('p8') || tr.lazy.has('p8'), 'replaced too');
  tr.remove('p1');
  tr.remove('p3');
  t.ok(tr.eager.size + tr.lazy.size <= TREE.eagerPeers + TREE.lazyPeers, 'never more than the membership has');
});

t.test('bounds: forged ids and floods cost a bounded amount', async (t) => {
  const { tr, clock, take } = tree();
  for (let p = 0; p < 100; p++) {
    const ids = Array.from({ length: 200 }, (_, i) => s(`f${p}-${i}`));
    tr.onIHave(ids, `x${p}`);
  }
  t.ok(tr.waiting <= 4096, `ids waited for are bounded (${tr.waiting})`);
  const cap = 2 * (TREE.eagerPeers + TREE.lazyPeers);
  t.ok(tr.eager.size + tr.lazy.size <= cap, 'announcers do not grow the peer sets without bound');
  clock.runUntil(10 * TREE.graftTimeout);
  const grafts = take().filter((s) => s[0] === 'graft').length;
  t.ok(grafts <= 4096 * 4, `each waited-for id is grafted at most a few times (${grafts})`);
  t.equal(tr.waiting, 0, 'and then forgotten');
  for (let i = 0; i < 30_000; i++) tr.onPush(`g${i}`, bytes('x'), `y${i % 50}`);
  t.ok(tr.remembered <= 20_000, `ids remembered are bounded (${tr.remembered})`);
  t.ok(tr.eager.size + tr.lazy.size <= cap, 'senders do not grow the peer sets without bound');
  clock.runUntil(clock.now() + TREE.keep + 1);
  tr.tick();
  t.equal(tr.remembered, 0, 'and forgotten after `keep`');
  for (let i = 0; i < 5000; i++) tr.broadcast(`h${i}`, bytes('x'));
  take();
  tr.tick();
  const ihaves = take().filter((s): s is ['ihave', string, number[]] => s[0] === 'ihave');
  t.ok(ihaves.every(([, , ids]) => ids.length <= MAX_IDS), 'an IHAVE carries at most MAX_IDS ids');
  t.ok(ihaves.reduce((n, [, , ids]) => n + ids.length, 0) <= 1024 * tr.lazy.size, 'ids waiting to be announced are bounded');
});

t.test('codec: IHAVE and GRAFT over the id limits are refused, not handled', async (t) => {
  const many = Array.from({ length: MAX_IDS + 1 }, (_, i) => s(`i${i}`));
  t.throws(() => decodeMessages(encodeMessages([{ t: 'ihave', from: 'a', ids: many }])), { reason: 'decode', message: /ihave ids/ });
  t.throws(() => decodeMessages(encode([[11, 'a', new Uint8Array(SHORT_ID_BYTES + 1)]])), { reason: 'decode', message: /graft ids/ }, 'a GRAFT whose ids are not whole short ids');
  t.same(decodeMessages(encodeMessages([{ t: 'ihave', from: 'a', ids: many.slice(1) }])), [{ t: 'ihave', from: 'a', ids: many.slice(1) }]);
  const size = (n: number): number => encodeMessages([{ t: 'ihave', from: 'a', ids: many.slice(0, n) }]).length;
  t.equal(size(32) - size(31), SHORT_ID_BYTES, `an id costs ${SHORT_ID_BYTES} bytes`);
});

/** Two ids whose short ids are the same (a birthday search: FNV-1a is 32 bits). */
function collision(): [string, string] {
  const bySum = new Map<number, string>();
  for (let i = 0; ; i++) {
    const id = `c${i}`;
    const other = bySum.get(s(id));
    if (other !== undefined) return [other, id];
    bySum.set(s(id), id);
  }
}

t.test('short ids that collide: the IHAVE is taken for the update held, a push is never taken for another', async (t) => {
  const [a, b] = collision();
  t.equal(s(a), s(b), `${a} and ${b} collide`);
  const { tr, clock, take, delivered } = tree();
  tr.onPush(a, bytes(a), 'p1');
  tr.broadcast(a, bytes(a));
  take();
  tr.onIHave([s(b)], 'p5');
  clock.runUntil(10 * TREE.graftTimeout);
  t.same(take(), [], 'an announcement of b looks like one of a, held: not grafted (b is lost here only if its push is lost too, until push-pull)');
  tr.onPush(b, bytes(b), 'p2');
  t.same(delivered, [`${a}<p1`, `${b}<p2`], 'the push of b is delivered: pushes are told apart by the whole id');
  t.equal(tr.stats.duplicates, 0, 'and not taken for a duplicate');
  tr.broadcast(b, bytes(b));
  take();
  tr.onGraft([s(a)], 'p6');
  t.same(take(), [['push', 'p6', b]], 'a GRAFT of the short id is answered with the one held last under it');
});

t.test('an id is not announced to a peer known to hold it: one that announced it, or pushed a copy', async (t) => {
  const { tr, take } = tree();
  t.same([...tr.lazy], ['p4', 'p5', 'p6']);
  tr.onPush('u1', bytes('u1'), 'p1');
  tr.broadcast('u1', bytes('u1'));
  tr.onIHave([s('u1')], 'p5');
  tr.onPush('u1', bytes('u1'), 'p6');
  take();
  tr.tick();
  t.same(take(), [['ihave', 'p4', [s('u1')]]], 'only p4 is told: p5 announced it, p6 pushed a copy');
});

t.test('holders heard of before the update is passed on count too (a delta held back for a gap, passed on later)', async (t) => {
  const { tr, take } = tree({ news: () => false });
  tr.onPush('u1', bytes('u1'), 'p1');
  tr.onIHave([s('u1')], 'p5');
  tr.tick();
  take();
  tr.onIHave([s('u1')], 'p6');
  tr.broadcast('u1', bytes('u1'));
  take();
  tr.tick();
  t.same(take(), [['ihave', 'p4', [s('u1')]]], 'p5 and p6 are not told');
});

t.test('in a small cluster (ids announced to eager peers) each id is announced in two rounds, then no more', async (t) => {
  const { tr, take } = tree({ members: ['p1', 'p2'] });
  tr.broadcast('u1', bytes('u1'));
  take();
  tr.tick();
  t.same(take(), [['ihave', 'p1', [s('u1')]], ['ihave', 'p2', [s('u1')]]], 'first round');
  tr.tick();
  t.same(take(), [['ihave', 'p1', [s('u1')]], ['ihave', 'p2', [s('u1')]]], 'again: with one or two announcers a lost IHAVE would leave a lost push unrepaired');
  tr.tick();
  t.same(take(), [], 'then no more');
});
