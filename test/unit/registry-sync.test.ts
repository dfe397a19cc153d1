import t from 'tap';
import { decode, encode } from '@msgpack/msgpack';
import { Registry } from '../../src/registry/registry.js';
import { LocalNode } from '../../src/registry/local.js';
import { isWholeUpdate, RegistrySync, signState, type SyncTransport } from '../../src/sync/registry-sync.js';
import { DELTA, NOTICE, updateIn, updateOut } from '../../src/sync/update.js';
import { encodeBody, encodeCanonical, encodeHeader, encodeState, sha256 } from '../../src/sync/delta.js';
import { endpointOut, idOut, StringsOut } from '../../src/sync/compact.js';
import { NodeIdentity } from '../../src/gossip/identity.js';
import type { Member } from '../../src/gossip/membership.js';
import { seeded } from '../../src/gossip/sim/clock.js';
import type { Endpoint, NodeState } from '../../src/registry/types.js';
import { ep, node } from '../helpers/registry.js';
import { pushPullSyncs } from '../helpers/sync.js';

// Merge properties of remote node states as gossip delivers them: owners publish signed deltas,
// receivers get them in any order, duplicated, with gaps, and exchange whole states by
// push-pull; the registries always end up equal to the owners' states, never half-applied.
// The syncs are joined by an in-memory bus (the SyncTransport the membership provides in the
// daemon): broadcasts are collected, requests answered by the addressed sync.

const opts = (local: string) => ({ localNode: local, routableContainerIps: false, defaultMode: 'dnsrr' as const });
const keys = new Map<string, NodeIdentity>();
/** A node id and its key, by a short name. */
const idOf = (name: string): string => {
  let k = keys.get(name);
  if (!k) keys.set(name, (k = NodeIdentity.generate()));
  return k.id;
};
const keyOf = (id: string) => [...keys.values()].find((k) => k.id === id)!;
/** A member as the membership knows it: with the key of its signed alive, when it has one. */
const memberOf = (id: string): Member => {
  const k = [...keys.values()].find((x) => x.id === id);
  return { id, name: id, addr: id, inc: 0, state: 'alive', since: 0, ...(k ? { proof: { pub: k.publicKey, sig: new Uint8Array(64) } } : {}) };
};
/** JSON with object keys sorted: a state decoded from the wire has its fields in another order. */
const canon = (v: unknown): string => JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
const digest = (r: Registry) => canon([...r.nodes()].sort((a, b) => (a.id < b.id ? -1 : 1)));
const stateJson = (s: NodeState | undefined) => canon(s ?? null);

/** The in-memory network of syncs: node id = address. */
class Bus {
  readonly syncs = new Map<string, RegistrySync>();
  readonly sent = new Map<string, Uint8Array[]>();
  readonly requests: Array<{ from: string; to: string; data: unknown }> = [];
  readonly timers: Array<() => void> = [];
  /** The syncs' clock (ms); tests move it on. */
  clock = 0;
  /** With a set, hostUp() says whether a node's host is still there (a node id is its address here); without, it cannot tell. */
  hostsUp: Set<string> | undefined;
  constructor(readonly maxUserUpdate = 1200) {}

  transport(self: string, rand: () => number = Math.random): SyncTransport {
    const member = (id: string): Member | undefined => (this.syncs.has(id) || [...keys.values()].some((k) => k.id === id) ? memberOf(id) : undefined);
    return {
      maxUserUpdate: this.maxUserUpdate,
      broadcast: (_key, data) => this.sent.get(self)!.push(data),
      request: async (addr, data) => {
        this.requests.push({ from: self, to: addr, data: decode(data) });
        return this.syncs.get(addr)!.handleRequest(data);
      },
      pushPull: async (addr) => {
        const a = this.syncs.get(self)!;
        const b = this.syncs.get(addr)!;
        pushPullSyncs(a, b);
      },
      member,
      all: () => [...this.syncs.keys()].map((id) => member(id)!),
      rand,
      now: () => this.clock,
      after: (_ms, fn) => void this.timers.push(fn),
      ...(this.hostsUp ? { hostUp: async (addr: string) => this.hostsUp!.has(addr) } : {}),
    };
  }

  add(id: string, sync: RegistrySync): RegistrySync {
    this.syncs.set(id, sync);
    this.sent.set(id, []);
    sync.attach(this.transport(id));
    return sync;
  }

  /** A receiving node without a key of its own. */
  receiver(name: string): { r: Registry; sync: RegistrySync } {
    const r = new Registry(opts(name));
    return { r, sync: this.add(name, new RegistrySync(r)) };
  }

  /** An owner whose LocalNode changes produce deltas; versions 1, 2, 3, … */
  owner(name: string): { id: string; local: LocalNode; states: NodeState[]; updates: Uint8Array[] } {
    const id = idOf(name);
    const r = new Registry(opts(id));
    const local = new LocalNode(r, { id, name, address: '192.0.2.1', incarnation: 0 }, () => 0);
    this.add(id, new RegistrySync(r, Date.now, {}, { identity: keyOf(id) }));
    const states = [local.state];
    r.onChange(() => states.push(local.state));
    return { id, local, states, updates: this.sent.get(id)! };
  }

  /** Runs the timers queued so far (repairs retried later). */
  async settle(): Promise<void> {
    for (let i = 0; i < 20 && this.timers.length; i++) this.timers.splice(0).forEach((f) => f());
    await new Promise((r) => setImmediate(r));
  }
}

/** A random change of an owner's endpoints: one added, changed or removed. */
function change(o: { local: LocalNode }, rand: () => number): void {
  const k = Math.floor(rand() * 6);
  const svc = k % 2 ? 'web' : 'db';
  if (rand() < 0.3 && o.local.remove('api', `default/${svc}/e${k}`)) return;
  o.local.upsert(ep(svc, `10.0.${k}.${1 + Math.floor(rand() * 200)}`, { id: `e${k}`, lastSeen: Math.floor(rand() * 1000) }));
}

function shuffle<T>(a: T[], rand: () => number): T[] {
  const b = [...a];
  for (let i = b.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [b[i], b[j]] = [b[j]!, b[i]!];
  }
  return b;
}

/** Owners with a few changes each; their deltas, in publishing order. */
function scenario(bus: Bus, rand: () => number, owners = 3, maxChanges = 6) {
  const os = Array.from({ length: owners }, (_, i) => bus.owner(`o${i}-${rand()}`));
  for (const o of os) for (let c = 0, n = 1 + Math.floor(rand() * maxChanges); c < n; c++) change(o, rand);
  return os;
}

t.test('property: deltas in any order, duplicated, give the same registry as the whole states', async (t) => {
  const rand = seeded(42);
  for (let round = 0; round < 100; round++) {
    const bus = new Bus();
    const owners = scenario(bus, rand);
    const whole = new Registry(opts('whole'));
    for (const o of owners) whole.apply(o.local.state);
    const deltas = owners.flatMap((o) => o.updates);
    for (let k = 0; k < 3; k++) {
      const { r, sync } = bus.receiver(`r${round}-${k}`);
      for (const u of shuffle([...deltas, ...deltas.filter(() => rand() < 0.3)], rand)) sync.notifyUpdate(u);
      if (digest(r) !== digest(whole)) return t.fail(`round ${round}: a receiver differs from the owners' states`);
    }
    t.equal(bus.requests.length, 0, 'no whole state was asked for');
  }
  t.pass('100 rounds converge');
});

t.test('property: a state built from deltas passes on by push-pull, from host to host, and checks out', async (t) => {
  const rand = seeded(7);
  for (let round = 0; round < 50; round++) {
    const bus = new Bus();
    const owners = scenario(bus, rand);
    const [a, b, c] = ['a', 'b', 'c'].map((n) => bus.receiver(`${n}${round}`));
    for (const u of shuffle(owners.flatMap((o) => o.updates), rand)) a!.sync.notifyUpdate(u);
    // Associativity: part of the news reaches c directly, the rest through a → b → c.
    for (const u of owners.flatMap((o) => o.updates).filter(() => rand() < 0.3)) c!.sync.notifyUpdate(u);
    const pp = (x: RegistrySync, y: RegistrySync) => {
      bus.clock += 10_000; // the deltas are old news by now: push-pull sends whole states
      pushPullSyncs(x, y);
    };
    pp(b!.sync, a!.sync);
    pp(c!.sync, b!.sync);
    if (new Set([a, b, c].map((x) => digest(x!.r))).size !== 1) return t.fail(`round ${round}: registries differ after push-pull`);
    if (digest(a!.r) !== digest(owners.reduce((r, o) => (r.apply(o.local.state), r), new Registry(opts('w'))))) return t.fail(`round ${round}: not the owners' states`);
  }
  t.pass('50 rounds');
});

t.test('property: a delta missing an earlier version is never applied half-way; the state is repaired from the peer that passed it on', async (t) => {
  const rand = seeded(99);
  for (let round = 0; round < 100; round++) {
    const bus = new Bus();
    const [o] = scenario(bus, rand, 1, 8);
    if (o!.updates.length < 2) continue;
    const lost = Math.floor(rand() * (o!.updates.length - 1));
    const relay = bus.receiver(`relay${round}`);
    for (const u of o!.updates) relay.sync.notifyUpdate(u);
    const { r, sync } = bus.receiver(`r${round}`);
    // Every delta but one, as the relay passed them on, in any order.
    const seen = new Set<string>();
    for (const u of shuffle(bus.sent.get(`relay${round}`)!.filter((_, i) => i !== lost), rand)) {
      sync.notifyUpdate(u, `relay${round}`);
      seen.add(stateJson(r.node(o!.id)));
    }
    const real = new Set(o!.states.map(stateJson).concat(stateJson(undefined)));
    if (![...seen].every((s) => real.has(s))) return t.fail(`round ${round}: a state the owner never had`);
    if (stateJson(r.node(o!.id)) !== stateJson(o!.states[lost - 1])) return t.fail(`round ${round}: not stopped at the version before the gap`);
    if (bus.requests.length !== 0) return t.fail('asked before the repair ran');
    await bus.settle();
  }
  t.pass('100 rounds: only states the owner had');
});

t.test('a periodic push-pull leaves out a state whose delta is still being gossiped; a join or a later push-pull sends it', async (t) => {
  const bus = new Bus();
  const o = bus.owner('fresh-owner');
  o.local.upsert(ep('web', '10.0.0.1', { id: 'w0' }));
  const a = bus.receiver('a');
  const b = bus.receiver('b');
  for (const u of o.updates) a.sync.notifyUpdate(u);
  b.sync.notifyUpdate(o.updates[0]!);
  const pp = (join: boolean) => {
    pushPullSyncs(b.sync, a.sync, join);
  };
  pp(false);
  t.equal(b.r.node(o.id)?.version, o.states[0]!.version, 'b got a moment ago: not sent whole');
  pp(true);
  t.equal(stateJson(b.r.node(o.id)), stateJson(o.local.state), 'a join sends it');
  const c = bus.receiver('c');
  c.sync.notifyUpdate(o.updates[0]!);
  bus.clock += 6000;
  pushPullSyncs(c.sync, a.sync);
  t.equal(stateJson(c.r.node(o.id)), stateJson(o.local.state), 'so does a push-pull once it is 5 s old');
});

t.test('a gap triggers one repair from the relay; then the receiver has the latest state', async (t) => {
  const bus = new Bus();
  const o = bus.owner('gap-owner');
  for (let i = 0; i < 4; i++) o.local.upsert(ep('web', `10.0.0.${i + 1}`, { id: `w${i}` }));
  const relay = bus.receiver('relay');
  for (const u of o.updates) relay.sync.notifyUpdate(u);
  const passed = bus.sent.get('relay')!;
  t.equal(passed.length, o.updates.length, 'the relay passed every delta on');
  const { r, sync } = bus.receiver('late');
  sync.notifyUpdate(passed[0]!, 'relay');
  sync.notifyUpdate(passed[3]!, 'relay');
  t.equal(stateJson(r.node(o.id)), stateJson(o.states[0]), 'the delta after the gap waits');
  await bus.settle();
  t.same(bus.requests.map((q) => [q.from, q.to, (q.data as unknown[])[0]]), [['late', 'relay', 2]], 'one state request, to the relay');
  t.equal(stateJson(r.node(o.id)), stateJson(o.local.state), 'repaired to the latest state');
  t.equal(sync.stats.repairs, 1);
  // The deltas it held back were never passed on: it tells the others of the version instead.
  const told = bus.sent.get('late')!.map((u) => updateIn(u)!);
  t.same(told.map((u) => [u.type, u.version]), [[0, o.states[0]!.version], [1, o.local.state.version]], 'the delta it applied, then a notice of the repaired version');
});

t.test('a change too big for a packet travels as a notice; hosts fetch the state from whoever passed it on and pass the notice on', async (t) => {
  const bus = new Bus(300);
  const o = bus.owner('big-owner');
  for (let i = 0; i < 10; i++) o.local.upsert(ep('web', `10.1.0.${i + 1}`, { id: `w${i}` }));
  o.local.replaceSource('api', Array.from({ length: 14 }, (_, i) => ep('web', `10.2.0.${i + 1}`, { id: `w${i}` })));
  const notice = o.updates.at(-1)!;
  t.ok(notice.length <= 300, 'the owner queued something that fits');
  t.equal(updateIn(notice)?.type, NOTICE, 'a notice');
  const a = bus.receiver('a');
  a.sync.notifyUpdate(notice, o.id);
  await bus.settle();
  t.equal(stateJson(a.r.node(o.id)), stateJson(o.local.state), 'a fetched the state');
  t.same(bus.requests.map((q) => [q.from, q.to]), [['a', o.id]], 'from the owner, which sent the notice');
  const b = bus.receiver('b');
  b.sync.notifyUpdate(bus.sent.get('a')!.at(-1)!, 'a');
  await bus.settle();
  t.equal(stateJson(b.r.node(o.id)), stateJson(o.local.state), 'b too');
  t.same(bus.requests.at(-1) && [bus.requests.at(-1)!.from, bus.requests.at(-1)!.to], ['b', 'a'], 'from a, which passed the notice on: not from the owner');
  t.ok(o.updates.every((u) => u.length <= 300), 'every update the owner queued fits a packet');
});

/** An update signed by `by` with whatever header fields and body bytes (forgeries, junk). */
function signedUpdate(by: NodeIdentity, h: { id: string; version: number; base?: number }, body: Uint8Array, stateHash = new Uint8Array(32)) {
  const base = h.base ?? 0;
  const { sig } = by.prove(encodeHeader({ id: h.id, version: h.version, base, stateHash, bodyHash: sha256(body) }));
  return updateOut({ type: DELTA, id: h.id, version: h.version, back: base === 0 ? 0 : h.version - base }, sig, body);
}
/** A body from nothing holding `put`, in the compact encoding, whatever the endpoints hold. */
const rawBody = (put: unknown[], incarnation: unknown = 0): Uint8Array => {
  const strings = new StringsOut();
  return encodeCanonical([put.map((e) => endpointOut(e as Endpoint, strings, 1)), [], 'n1', '192.0.2.1', incarnation]);
};

t.test('bad remote updates are ignored, never crash', async (t) => {
  const r = new Registry(opts('local'));
  let invalid = 0;
  const sync = new RegistrySync(r, Date.now, { invalid: () => invalid++ });
  const id = idOf('n1');
  const good = ep('web', '10.0.0.1');
  const bodies: Uint8Array[] = [
    rawBody([{ ...good, addresses: ['not-an-ip'] }]),
    rawBody([{ ...good, service: 'Bad Name!' }]),
    rawBody([{ ...good, ports: { http: { port: 70000, protocol: 'tcp' } } }]),
    rawBody([good], 'x'),
    encodeCanonical(null),
    encodeCanonical([1, 2, 3]),
    encodeCanonical([[[0, 99, 'web', 'e', 'e', [], [], 10, 'tcp', 'api', 0]], []]),
    new Uint8Array([0x92, 0x91, 0xc1]),
  ];
  for (const b of bodies) sync.notifyUpdate(signedUpdate(keyOf(id), { id, version: 1 }, b));
  sync.notifyUpdate(new Uint8Array([0xc1, 0xff]));
  sync.notifyUpdate(updateOut({ type: DELTA, id: '00'.repeat(16), version: 1, back: 0 }, new Uint8Array(3)));
  sync.notifyUpdate(new Uint8Array([7, 16, ...new Uint8Array(16), 1, 0]));
  t.equal(r.node(id), undefined);
  t.equal(invalid, bodies.length + 3, 'malformed deltas, undecodable bytes, an unsigned update and an unknown kind are all ignored');
  const s = node(id, 1, [good]);
  const signed = signState(keyOf(id), s);
  t.ok(sync.merge([idOut(id), s.version, 0, signed.h.bodyHash, encodeState(s), signed.pub, signed.sig]), 'a good state still merges');
  t.throws(() => sync.handleRequest(encode(['nonsense'])), /unknown registry request/);
});

t.test("a node's own state is never taken from the network", async (t) => {
  const bus = new Bus();
  const me = bus.owner('me');
  const other = new Bus().owner('me');
  other.local.upsert(ep('web', '10.0.0.9'));
  const before = stateJson(me.local.state);
  bus.syncs.get(me.id)!.notifyUpdate(other.updates.at(-1)!);
  t.equal(stateJson(me.local.state), before);
});

t.test('an update is merged only when signed by the key its node id stands for, and is what was signed', async (t) => {
  const bus = new Bus();
  const victim = bus.owner('victim');
  victim.local.upsert(ep('web', '10.0.0.5', { id: 'v' }));
  const rejected: string[] = [];
  const r = new Registry(opts('local'));
  const sync = bus.add('local', new RegistrySync(r, Date.now, { rejected: (e) => rejected.push(e.reason) }));
  for (const u of victim.updates) sync.notifyUpdate(u);
  t.same(r.node(victim.id)?.endpoints.map((e) => e.addresses[0]), ['10.0.0.5']);
  const hijack = (version: number, base = 0) => encodeBody({ id: victim.id, name: 'victim', address: '192.0.2.1', incarnation: 0, version, base, put: [ep('web', '10.6.6.6', { id: 'v' })], del: [] });
  // A member with the cluster key but its own signing key: a delta under the victim's id, far
  // ahead (refused for that before its signature is looked at) and next.
  sync.notifyUpdate(signedUpdate(keyOf(idOf('rogue')), { id: victim.id, version: 2 ** 53 - 1 }, hijack(2 ** 53 - 1)));
  sync.notifyUpdate(signedUpdate(keyOf(idOf('rogue')), { id: victim.id, version: 6 }, hijack(6)));
  t.same(rejected, ['bounds', 'signature'], 'both refused, the one in bounds as not signed by the victim');
  // The victim's next real delta (its signature, version, base) with another body.
  victim.local.upsert(ep('web', '10.0.0.6', { id: 'v' }));
  const next = victim.updates.at(-1)!;
  const real = updateIn(next)!;
  sync.notifyUpdate(updateOut(real, real.sig, hijack(real.version, real.version - real.back)));
  // Even the owner cannot jump its version near 2^53 (it would freeze the state forever).
  sync.notifyUpdate(signedUpdate(keyOf(victim.id), { id: victim.id, version: 2 ** 53 - 1 }, hijack(2 ** 53 - 1)));
  t.same(rejected, ['bounds', 'signature', 'signature', 'bounds']);
  t.same(r.node(victim.id)?.endpoints.map((e) => e.addresses[0]), ['10.0.0.5'], "the victim's state is intact");
  sync.notifyUpdate(next);
  t.same(r.node(victim.id)?.endpoints.map((e) => e.addresses[0]), ['10.0.0.6'], "and the victim's next delta still merges");
});

t.test('states over the endpoint limit are refused and counted', async (t) => {
  const bus = new Bus(100_000);
  const r = new Registry(opts('local'));
  const rejected: string[] = [];
  const sync = bus.add('local', new RegistrySync(r, Date.now, { rejected: (e) => rejected.push(e.reason) }, { maxEndpoints: 3 }));
  const eps = (n: number) => Array.from({ length: n }, (_, i) => ep('web', `10.0.1.${i + 1}`, { id: `w${i}` }));
  const big = bus.owner('big');
  big.local.replaceSource('api', eps(4));
  for (const u of big.updates) sync.notifyUpdate(u);
  t.equal(r.node(big.id)?.endpoints.length, 0, 'the first (empty) version merged, not the next');
  t.same(rejected, ['limit']);
  const fine = bus.owner('fine');
  fine.local.replaceSource('api', eps(3));
  for (const u of fine.updates) sync.notifyUpdate(u);
  t.equal(r.node(fine.id)?.endpoints.length, 3, 'at the limit is fine');
});

t.test('a node found dead keeps its endpoints for --dead-grace and only then is dropped; back in time it keeps them; a leave drops it at once', async (t) => {
  const bus = new Bus();
  const o = bus.owner('restarting-owner');
  o.local.upsert(ep('web', '10.0.0.1', { id: 'w0' }));
  const removed: string[] = [];
  const r = new Registry(opts('graceful'));
  const sync = bus.add('graceful', new RegistrySync(r, Date.now, { removed: (id, why) => removed.push(`${id} ${why}`) }, { deadGraceMs: 15_000 }));
  for (const u of o.updates) sync.notifyUpdate(u);
  const member = (state: Member['state']): Member => ({ id: o.id, name: 'restarting-owner', addr: o.id, inc: 0, state, since: 0 });
  const endpoints = () => r.node(o.id)?.endpoints.length ?? 0;
  t.equal(endpoints(), 1, 'the owner\'s endpoint is known');

  // A restart that outlasts the suspicion time: found dead, then alive again.
  sync.notifyMember(member('dead'), 'suspect');
  t.equal(endpoints(), 1, 'found dead: its endpoint is still answered during the grace');
  sync.notifyMember(member('alive'), 'dead');
  await bus.settle();
  t.equal(endpoints(), 1, 'back within the grace: the endpoint was never withdrawn');
  t.same(removed, []);

  // A host that stays dead.
  sync.notifyMember(member('dead'), 'suspect');
  t.equal(endpoints(), 1, 'found dead again: kept for now');
  await bus.settle();
  t.equal(endpoints(), 0, 'still dead when the grace ended: withdrawn');
  t.same(removed, [`${o.id} dead`]);

  // A leave is never delayed.
  sync.notifyMember(member('alive'), 'dead');
  await bus.settle();
  const o2 = bus.owner('leaving-owner');
  o2.local.upsert(ep('api', '10.0.0.2', { id: 'a0' }));
  for (const u of o2.updates) sync.notifyUpdate(u);
  t.ok(r.node(o2.id), 'the second owner is known');
  sync.notifyMember({ id: o2.id, name: 'leaving-owner', addr: o2.id, inc: 0, state: 'left', since: 0 }, 'alive');
  t.notOk(r.node(o2.id), 'a leave withdraws at once, no grace');
  t.same(removed, [`${o.id} dead`, `${o2.id} left`]);
});

t.test('without --dead-grace a node found dead is dropped at once', async (t) => {
  const bus = new Bus();
  const o = bus.owner('dead-owner');
  o.local.upsert(ep('web', '10.0.0.1', { id: 'w0' }));
  const { r, sync } = bus.receiver('no-grace');
  for (const u of o.updates) sync.notifyUpdate(u);
  t.ok(r.node(o.id));
  sync.notifyMember({ id: o.id, name: 'dead-owner', addr: o.id, inc: 0, state: 'dead', since: 0 }, 'suspect');
  t.notOk(r.node(o.id), 'withdrawn when found dead');
});

t.test('a node found dead whose host does not answer at all is dropped at once despite the grace; one whose host answers is kept', async (t) => {
  const bus = new Bus();
  bus.hostsUp = new Set();
  const gone = bus.owner('powered-off');
  gone.local.upsert(ep('web', '10.0.0.1', { id: 'w0' }));
  const restarting = bus.owner('restarting');
  restarting.local.upsert(ep('api', '10.0.0.2', { id: 'a0' }));
  bus.hostsUp.add(restarting.id);
  const removed: string[] = [];
  const r = new Registry(opts('watcher'));
  const sync = bus.add('watcher', new RegistrySync(r, Date.now, { removed: (id, why) => removed.push(`${id} ${why}`) }, { deadGraceMs: 15_000 }));
  for (const u of [...gone.updates, ...restarting.updates]) sync.notifyUpdate(u);
  t.ok(r.node(gone.id) && r.node(restarting.id), 'both owners known');
  for (const o of [gone, restarting]) sync.notifyMember({ id: o.id, name: o.id, addr: o.id, inc: 0, state: 'dead', since: 0 }, 'suspect');
  await new Promise((res) => setImmediate(res));
  t.notOk(r.node(gone.id), 'a host that is not there: withdrawn without waiting for the grace');
  t.ok(r.node(restarting.id), 'a host whose kernel answers (its daemon restarting): kept');
  t.same(removed, [`${gone.id} dead`]);
  await bus.settle();
  t.notOk(r.node(restarting.id), 'still dead when the grace ended: withdrawn');
});

t.test("a delta of a node whose key is not known yet (its alive not arrived) is not applied unchecked: the state is fetched, with the key", async (t) => {
  const bus = new Bus();
  const o = bus.owner('unknown-owner');
  o.local.upsert(ep('web', '10.0.0.1', { id: 'w0' }));
  o.local.upsert(ep('web', '10.0.0.2', { id: 'w1' }));
  const r = new Registry(opts('stranger'));
  const rejected: string[] = [];
  const sync = new RegistrySync(r, Date.now, { rejected: (e) => rejected.push(e.reason) });
  bus.syncs.set('stranger', sync);
  bus.sent.set('stranger', []);
  const net = bus.transport('stranger');
  sync.attach({ ...net, member: (id) => (id === o.id ? { ...memberOf(id), proof: undefined } : net.member(id)) });
  for (const u of o.updates) sync.notifyUpdate(u);
  t.equal(r.node(o.id), undefined, 'nothing applied without the key');
  await bus.settle();
  t.same(bus.requests.map((q) => [q.from, q.to]), [['stranger', o.id]], 'one state asked, of the node that passed the deltas on');
  t.equal(stateJson(r.node(o.id)), stateJson(o.local.state), 'the whole state, which carries the key, merged');
  t.same(rejected, [], 'nothing counted as forged');
});

t.test('a delta on a state from the state file (no proof kept) that differs from the owner\'s is repaired, not counted as forged', async (t) => {
  const bus = new Bus();
  const o = bus.owner('restored-owner');
  o.local.upsert(ep('web', '10.0.0.1', { id: 'w0' }));
  const base = o.local.state;
  o.local.upsert(ep('web', '10.0.0.2', { id: 'w1' }));
  const rejected: string[] = [];
  const r = new Registry(opts('restored'));
  const sync = bus.add('restored', new RegistrySync(r, Date.now, { rejected: (e) => rejected.push(e.reason) }));
  // The state file held the base version with other content (e.g. written by an older format).
  r.apply({ ...base, endpoints: [ep('web', '10.9.9.9', { id: 'w0' })] });
  sync.notifyUpdate(o.updates.at(-1)!);
  t.same(rejected, [], 'not counted as forged');
  await bus.settle();
  t.equal(stateJson(r.node(o.id)), stateJson(o.local.state), "repaired to the owner's state");
  // The same with a state the owner proved: a delta that does not check out is forged.
  const forged = updateIn(o.updates.at(-1)!)!;
  o.local.upsert(ep('web', '10.0.0.3', { id: 'w2' }));
  const next = updateIn(o.updates.at(-1)!)!;
  sync.notifyUpdate(updateOut(next, forged.sig, next.body!));
  t.same(rejected, ['signature'], 'a delta with another signature, on a proven base: refused and counted');
  sync.notifyUpdate(o.updates.at(-1)!);
  t.equal(stateJson(r.node(o.id)), stateJson(o.local.state), 'the real one applies');
});

t.test('isWholeUpdate (what the simulator counts) tells a delta from nothing from one on a base, from its first bytes', async (t) => {
  const bus = new Bus();
  const o = bus.owner('counted');
  o.local.upsert(ep('web', '10.0.0.1', { id: 'w0' }));
  o.local.remove('api', 'default/web/w0');
  t.same(o.updates.map(isWholeUpdate), [true, false, false], 'the first (version 0 → 1) is from nothing, the next two are on a base');
  const relayed = bus.receiver('relay-x');
  for (const u of o.updates) relayed.sync.notifyUpdate(u);
  t.same(bus.sent.get('relay-x')!.map(isWholeUpdate), [true, false, false], 'the same once passed on by a relay whose id is not hex');
  t.notOk(isWholeUpdate(new Uint8Array([0, 16, 1])), 'cut short: not whole, no throw');
});

t.test('push-pull with digests: nothing but hashes when both hold the same; then only the states that differ move, both ways', async (t) => {
  const bus = new Bus();
  const owners = Array.from({ length: 20 }, (_, i) => bus.owner(`dg-owner${i}`));
  for (const [i, o] of owners.entries()) o.local.upsert(ep('web', `10.7.0.${i + 1}`, { id: `w${i}` }));
  const a = bus.receiver('dg-a');
  const b = bus.receiver('dg-b');
  for (const o of owners) for (const u of o.updates) [a, b].forEach((x) => x.sync.notifyUpdate(u));
  bus.clock += 10_000;
  const answer = (x: RegistrySync, y: RegistrySync) => decode(y.pushPullAnswer(x.pushPullRequest())) as [number, Uint8Array, unknown[]];
  t.same(answer(b.sync, a.sync)[2], [], 'the same states: no versions listed');
  t.equal(b.sync.pushPullFinish(encode(answer(b.sync, a.sync))), null, 'and nothing to send or ask');
  // o3 changed and only a has it; o7 changed and only b has it.
  const [o3, o7] = [owners[3]!, owners[7]!];
  o3.local.upsert(ep('web', '10.7.1.3', { id: 'x3' }));
  o7.local.upsert(ep('web', '10.7.1.7', { id: 'x7' }));
  a.sync.notifyUpdate(o3.updates.at(-1)!);
  b.sync.notifyUpdate(o7.updates.at(-1)!);
  bus.clock += 10_000;
  const listed = answer(b.sync, a.sync)[2].length / 2;
  t.ok(listed >= 2 && listed < 20, `only the differing buckets' versions are listed (${listed} of 20)`);
  const merged = [a.sync.stats.states, b.sync.stats.states];
  pushPullSyncs(b.sync, a.sync);
  t.equal(stateJson(b.r.node(o3.id)), stateJson(o3.local.state), 'b got the state only a had');
  t.equal(stateJson(a.r.node(o7.id)), stateJson(o7.local.state), 'a got the state only b had');
  t.same([a.sync.stats.states - merged[0]!, b.sync.stats.states - merged[1]!], [1, 1], 'one whole state each way, no more');
  t.equal(digest(a.r), digest(b.r));
});

t.test('a removed endpoint travels as its position in the base, not its key; a position that is not the one signed is refused', async (t) => {
  const bus = new Bus(100_000);
  const o = bus.owner('positions');
  o.local.replaceSource('api', Array.from({ length: 50 }, (_, i) => ep('web', `10.8.0.${i + 1}`, { id: `a-rather-long-endpoint-name-${i}` })));
  const a = bus.receiver('pos-a');
  for (const u of o.updates) a.sync.notifyUpdate(u);
  o.local.remove('api', 'default/web/a-rather-long-endpoint-name-37');
  const removal = updateIn(o.updates.at(-1)!)!;
  t.notOk(Buffer.from(removal.body!).includes('a-rather-long-endpoint-name-37'), 'the key is not in the delta');
  t.ok(removal.body!.length <= 4, `its body is a few bytes (${removal.body!.length})`);
  const rejected: string[] = [];
  const r = new Registry(opts('pos-b'));
  const b = bus.add('pos-b', new RegistrySync(r, Date.now, { rejected: (e) => rejected.push(e.reason) }));
  for (const u of o.updates.slice(0, -1)) b.notifyUpdate(u);
  // The same signature over another position (the body [[], [36]] instead of [[], [37]]), and one past the end.
  for (const at of [36, 50]) b.notifyUpdate(updateOut(removal, removal.sig, encodeCanonical([[], [at]])));
  t.same(rejected, ['signature', 'signature'], 'another position, or none, is not what the owner signed');
  t.equal(r.node(o.id)?.endpoints.length, 50, 'nothing removed');
  a.sync.notifyUpdate(o.updates.at(-1)!);
  b.notifyUpdate(o.updates.at(-1)!);
  for (const x of [a.r, r]) t.equal(stateJson(x.node(o.id)), stateJson(o.local.state), 'the real one applies: the owner’s state, endpoint 37 gone');
});
