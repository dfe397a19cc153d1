import t from 'tap';
import { decodeMessages, encodeMessages, hexIn, WIRE_VERSION, WireError, type Message } from '../../src/gossip/codec.js';
import { Keyring, REPLAY_WINDOW_MS, Wire } from '../../src/gossip/crypto.js';
import { decodeToken, encodeToken } from '../../src/gossip/token.js';
import { Simulation } from '../../src/gossip/sim/simulation.js';
import { keygen } from '../../src/commands/keygen.js';

// tap's types want an Error for a pattern; a WireError is matched by its reason.
const reason = (r: string | RegExp) => ({ reason: r }) as unknown as Error;
const key = () => Buffer.from(keygen(), 'base64');
const clock = (now = 1_700_000_000_000) => ({ now: () => now, set: (n: number) => (now = n) });
/** Decoded byte fields are Buffers (views of the frame): compared by content. */
const plain = (v: unknown): unknown =>
  v instanceof Uint8Array ? [...v] : Array.isArray(v) ? v.map(plain) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)])) : v;
const proof = { pub: new Uint8Array(32).fill(7), sig: new Uint8Array(64).fill(9) };

const ALL: Message[] = [
  { t: 'ping', seq: 1, target: 'b', from: 'a', fromAddr: '10.0.0.1:7946' },
  { t: 'ack', seq: 2 ** 40, from: 'b' },
  { t: 'indirect', seq: 3, target: 'c', targetAddr: '[fd00::3]:7946', from: 'a', fromAddr: '10.0.0.1:7946' },
  { t: 'alive', id: 'n1', name: 'host-1', addr: '10.0.0.1:7946', inc: 1_700_000_000_123, proof },
  { t: 'suspect', id: 'n1', inc: 4, from: 'n2' },
  { t: 'dead', id: 'n1', inc: 4, from: 'n1', proof },
  { t: 'dead', id: 'n1', inc: 4, from: 'n2' },
  { t: 'push', from: 'n1', data: new Uint8Array([1, 2, 3]) },
  { t: 'ihave', from: 'n1', ids: [0x61316232, -0x3c2c9b2c] },
  { t: 'graft', from: 'n2', ids: [0x61316232] },
  { t: 'prune', from: 'n3' },
  { t: 'pushpull', leg: 1, join: true, digest: new Uint8Array(16), members: [{ id: 'n1', name: 'h', addr: 'h:1', inc: 9, state: 'suspect' }, { id: 'n2', name: 'h2', addr: 'h:2', inc: 1, state: 'alive', proof }], user: new Uint8Array(0) },
  { t: 'pushpull', leg: 4, join: false, digest: new Uint8Array(0), members: [], user: new Uint8Array([5]) },
  { t: 'userreq', data: new Uint8Array([9]) },
  { t: 'error', message: 'no' },
];

t.test('codec: every message type round-trips', async (t) => {
  t.same(decodeMessages(encodeMessages(ALL)), ALL);
});

t.test('codec: malformed bodies are WireErrors, never crashes', async (t) => {
  const bad: Uint8Array[] = [
    new Uint8Array([0xc1]),
    encodeMessages([]).subarray(0, 0),
    Buffer.from([0x91, 0x92, 0x63, 0x01]), // [[99, 1]]: unknown type
    Buffer.from([0x91, 0x92, 0x01, 0xa1, 0x78]), // [[ack, "x"]]: wrong field count/type
  ];
  for (const b of bad) t.throws(() => decodeMessages(b), reason("decode"));
  let crashes = 0;
  const good = encodeMessages(ALL);
  for (let i = 0; i < 3000; i++) {
    const m = Buffer.from(good);
    for (let k = 0; k < 3; k++) m[Math.floor(Math.random() * m.length)] = Math.floor(Math.random() * 256);
    try {
      decodeMessages(m);
    } catch (e) {
      if (!(e instanceof WireError)) crashes++;
    }
  }
  t.equal(crashes, 0, 'mutated bodies only ever raise WireError');
});

t.test('crypto: sealed frames open with the right key only', async (t) => {
  const c = clock();
  const k1 = key();
  const sender = new Wire(new Keyring([k1]), c);
  const frame = sender.seal(ALL);
  t.equal(frame[0], WIRE_VERSION);
  t.same(plain(new Wire(new Keyring([k1]), c).open(frame)), plain(ALL), 'right key');
  t.throws(() => new Wire(new Keyring([key()]), c).open(frame), reason('auth'), 'wrong key');
  for (const i of [1, 5, frame.length - 20, frame.length - 1]) {
    const flipped = Buffer.from(frame);
    flipped[i]! ^= 0x01;
    t.throws(() => new Wire(new Keyring([k1]), c).open(flipped), reason(/auth|version|encrypted|unencrypted/), `bit flipped at byte ${i}`);
  }
  t.throws(() => new Wire(null, c).open(frame), reason('encrypted'), 'a node without a key refuses sealed frames');
  t.throws(() => new Wire(new Keyring([k1]), c).open(new Wire(null, c).seal(ALL)), reason('unencrypted'), 'a keyed node refuses plain frames');
  const v5 = Buffer.from(frame);
  v5[0] = 5;
  t.throws(() => new Wire(new Keyring([k1]), c).open(v5), { reason: 'version', message: /wire version 5, this node speaks 6: the peer runs an older podman-swarm-dns; upgrade it/ } as unknown as Error, 'a peer of the previous version (5: update ids beside each push and in IHAVEs) is refused, saying why');
  const v7 = Buffer.from(frame);
  v7[0] = 7;
  t.throws(() => new Wire(new Keyring([k1]), c).open(v7), { reason: 'version', message: /wire version 7, this node speaks 6: this node runs an older podman-swarm-dns than the peer; upgrade it/ } as unknown as Error, 'and so is a newer one');
});

t.test('crypto: replayed and stale frames are rejected', async (t) => {
  const c = clock();
  const k = key();
  const rx = new Wire(new Keyring([k]), c);
  const frame = new Wire(new Keyring([k]), c).seal([ALL[3]!]);
  t.ok(rx.open(frame));
  t.throws(() => rx.open(frame), reason('replay'), 'same frame twice');
  const old = new Wire(new Keyring([k]), clock(c.now() - REPLAY_WINDOW_MS - 1000)).seal([ALL[3]!]);
  t.throws(() => rx.open(old), reason('replay'), 'captured long ago');
  // Still rejected after the replay window rotates, as long as its timestamp is acceptable.
  const fresh = new Wire(new Keyring([k]), c).seal([ALL[0]!]);
  t.ok(rx.open(fresh));
  c.set(c.now() + REPLAY_WINDOW_MS - 1);
  t.throws(() => rx.open(fresh), reason('replay'));
  // A restart forgets the nonces seen: frames sealed before it are refused all the same.
  const captured = new Wire(new Keyring([k]), c).seal([ALL[0]!]);
  c.set(c.now() + 5000);
  const restarted = new Wire(new Keyring([k]), c);
  t.throws(() => restarted.open(captured), { reason: 'replay', message: /before this node started/ } as unknown as Error, 'captured 5 s before a restart, replayed after it');
  t.ok(restarted.open(new Wire(new Keyring([k]), c).seal([ALL[0]!])), 'fresh frames pass');
});

t.test('crypto: the timestamp rides in the nonce (its low 32 bits), across the wrap and from either side of this clock', async (t) => {
  const k = key();
  const wrap = 2 ** 32 * 400_000;
  const frame = (at: number) => new Wire(new Keyring([k]), clock(at)).seal([ALL[0]!]);
  // A receiver started long before, its clock set to `at` when it opens.
  const rx = (at: number) => {
    const c = clock(wrap - 10 * REPLAY_WINDOW_MS);
    const w = new Wire(new Keyring([k]), c);
    c.set(at);
    return w;
  };
  t.equal(frame(wrap).length, new Wire(null, clock()).seal([ALL[0]!]).length + 12 + 16, 'sealing adds the nonce and the tag, nothing more');
  t.ok(rx(wrap - 10_000).open(frame(wrap - 1)), 'a frame 1 ms before the wrap, opened before it');
  t.ok(rx(wrap + 10_000).open(frame(wrap - 1)), 'and after it (low bits 2^32 − 1, the clock\'s 9,999)');
  t.ok(rx(wrap - 10_000).open(frame(wrap + 5)), 'a frame after the wrap, on a clock 10 s behind, before it');
  t.throws(() => rx(wrap + REPLAY_WINDOW_MS + 1000).open(frame(wrap - 1)), reason('replay'), 'one older than the window, across the wrap, is refused');
  t.throws(() => rx(wrap - REPLAY_WINDOW_MS - 1000).open(frame(wrap + 1)), reason('replay'), 'and one further ahead');
  const tampered = Buffer.from(frame(wrap));
  tampered[2 + 3]! ^= 0x01;
  t.throws(() => rx(wrap).open(tampered), reason('auth'), 'a timestamp changed in the nonce fails authentication');
});

t.test('keyring: rotation accepts every key and seals with the first', async (t) => {
  const c = clock();
  const [oldKey, newKey] = [key(), key()];
  const oldOnly = new Wire(new Keyring([oldKey]), c);
  const rotating = new Wire(new Keyring([newKey, oldKey]), c);
  t.ok(rotating.open(oldOnly.seal(ALL)), 'old key still accepted');
  t.throws(() => oldOnly.open(rotating.seal(ALL)), reason('auth'), 'sends with the new key');
  t.throws(() => Keyring.parse('not-a-key\n', 'k'), /k line 1: not a base64 32-byte key/);
  t.throws(() => Keyring.parse('# only a comment\n', 'k'), /no key/);
  t.equal(Keyring.parse(`# c\n${newKey.toString('base64')}\n\n${oldKey.toString('base64')}\n`).keys.length, 2);
});

t.test('join token round-trips and rejects damage', async (t) => {
  const k = key();
  const tok = encodeToken({ seeds: ['10.0.0.1:7946', '[fd00::1]:7946'], key: k });
  t.same(decodeToken(tok), { seeds: ['10.0.0.1:7946', '[fd00::1]:7946'], key: k });
  t.throws(() => decodeToken('hello'), /not a join token/);
  t.throws(() => decodeToken(`${tok.slice(0, 20)}`), /damaged|no usable/);
});

t.test('forged, replayed and garbage packets sent to a node are dropped and counted', async (t) => {
  const sim = new Simulation({ nodes: 3, key: key(), seed: 5 });
  await sim.start();
  await sim.run(3000);
  const [a, b] = sim.nodes as [NonNullable<(typeof sim.nodes)[0]>, NonNullable<(typeof sim.nodes)[0]>];
  // Capture a real packet a sends to b, then replay it; forge one with another key.
  let captured: Uint8Array | null = null;
  const send = a.transport.sendPacket.bind(a.transport);
  a.transport.sendPacket = (to, data) => {
    if (to === b.addr && !captured) captured = data;
    send(to, data);
  };
  await sim.run(2000);
  t.ok(captured, 'captured a packet');
  const before = { ...b.membership.stats.rejected };
  b.transport.deliverPacket(captured!, a.addr);
  b.transport.deliverPacket(new Wire(new Keyring([key()]), sim.clock).seal([{ t: 'dead', id: a.id, inc: 99, from: 'evil' }]), 'evil:1');
  b.transport.deliverPacket(new Uint8Array([WIRE_VERSION, 1, 2, 3]), 'evil:1');
  b.transport.deliverPacket(new Wire(null, sim.clock).seal([{ t: 'dead', id: a.id, inc: 99, from: 'evil' }]), 'evil:1');
  t.equal(b.membership.stats.rejected.replay - before.replay, 1, 'replay counted');
  t.equal(b.membership.stats.rejected.auth - before.auth, 2, 'forged and garbage counted as authentication failures');
  t.equal(b.membership.stats.rejected.unencrypted - before.unencrypted, 1, 'unencrypted counted');
  await sim.run(1000);
  t.equal(b.membership.member(a.id)?.state, 'alive', 'the forged death changed nothing');
});

t.test('a push whose data the delegate cannot name (no update in it) is dropped and counted, the node unharmed', async (t) => {
  const k = key();
  const sim = new Simulation({ nodes: 2, key: k, seed: 6 });
  await sim.start();
  await sim.run(2000);
  const [a, b] = sim.nodes as [NonNullable<(typeof sim.nodes)[0]>, NonNullable<(typeof sim.nodes)[0]>];
  const before = { rejected: b.membership.stats.rejected.decode, remembered: b.membership.tree.remembered };
  b.transport.deliverPacket(new Wire(new Keyring([k]), sim.clock).seal([{ t: 'push', from: a.id, data: new Uint8Array([9, 9, 9]) }]), a.addr);
  t.equal(b.membership.stats.rejected.decode - before.rejected, 1, 'counted as not decodable');
  t.equal(b.membership.tree.remembered, before.remembered, 'nothing remembered under any id');
  sim.register(a, 'web', '10.5.0.1');
  await sim.run(3000);
  t.ok(sim.converged(), 'updates still flow');
});

t.test('codec: tree and probe messages name members by 8 bytes of their id', async (t) => {
  const id = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
  const msgs: Message[] = [
    { t: 'ping', seq: 1, target: id, from: id, fromAddr: '10.0.0.1:7946' },
    { t: 'ack', seq: 1, from: id },
    { t: 'ihave', from: id, ids: [0x01ff8078] },
  ];
  const back = decodeMessages(encodeMessages(msgs));
  t.same(back, [
    { t: 'ping', seq: 1, target: id.slice(0, 16), from: id.slice(0, 16), fromAddr: '10.0.0.1:7946' },
    { t: 'ack', seq: 1, from: id.slice(0, 16) },
    { t: 'ihave', from: id.slice(0, 16), ids: [0x01ff8078] },
  ], 'the first 16 hex digits come back; short ids come back as they went');
  const full = encodeMessages([{ t: 'ack', seq: 1, from: id }]).length;
  const named = encodeMessages([{ t: 'ack', seq: 1, from: 'x'.repeat(32) }]).length;
  t.equal(named - full, 24, 'a hex id costs 10 bytes where its text took 34');
});

t.test('codec: names read as hex (senders, node ids) come back right when others share their last bytes', async (t) => {
  const a = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const b = Uint8Array.from([9, 9, 9, 9, 5, 6, 7, 8]);
  t.equal(hexIn(a, 0, 8), '0102030405060708');
  t.equal(hexIn(b, 0, 8), '0909090905060708', 'the same last four bytes, another name');
  t.equal(hexIn(a, 0, 8), '0102030405060708');
  const id = Uint8Array.from({ length: 22 }, (_, i) => (i < 18 ? 255 - i : 5 + i - 18));
  t.equal(hexIn(id, 6, 16), 'f9f8f7f6f5f4f3f2f1f0efee05060708', 'sixteen bytes ending as a shorter name does');
  t.equal(hexIn(a, 0, 8), '0102030405060708');
});
