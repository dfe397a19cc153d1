import { WireError, type MemberState } from '../gossip/codec.js';
import type { Delegate } from '../gossip/delegate.js';
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, verifyProof, type NodeIdentity } from '../gossip/identity.js';
import { MAX_AHEAD_MS, type Member } from '../gossip/membership.js';
import type { FailureLog } from '../log-once.js';
import type { Registry } from '../registry/registry.js';
import type { NodeState } from '../registry/types.js';
import { bucketCount, bucketOf, bucketsFor, Digest, entryHash, HASH, indexesIn, indexesOut, MAX_BUCKETS } from '../gossip/digest.js';
import { idIn, idOut } from './compact.js';
import { apply, decodeBody, decodeBytes, decodeState, diff, encodeBody, encodeCanonical as encode, encodeHeader, encodeState, HASH_BYTES, isVersion, sha256, stateHash, type Delta, type Header } from './delta.js';
import { DELTA, NOTICE, updateIdOf, updateIn, updateOut } from './update.js';

export { isWholeUpdate } from './update.js';

// The registry's side of gossip (the membership's Delegate). A change of this node's state goes
// out as a delta (delta.ts): the endpoints added, changed or removed since the version before,
// signed by this node, spread by the gossip layer's broadcast tree (named by updateId, so a host
// receives it about once) and passed on by every host that applies it. A delta applies only to
// the version it was made from; one that arrives before the one it follows waits (a few per
// node), and one whose predecessor is lost is not applied at all: the node's whole state is then
// asked of ONE peer (the one that passed the delta on, which has it).
// A delta too big for a packet travels as a signed notice (the header alone) and is repaired the
// same way. A host that repaired passes the version on as a notice (after a gap too: the deltas
// it held back were never passed on). Whole states otherwise move only in anti-entropy: the membership's periodic
// push-pull with one random peer exchanges (node id → version) digests and then the states the
// other side lacks.
//
// Every version of a state is proven by its owner's signature over the delta header, which holds
// a hash of the whole resulting state (delta.ts stateHash): relays pass the signed bytes on untouched, a host
// that applied a delta can prove the state it built in anti-entropy with the same header, and a
// receiver merges only what the key its node id stands for signed. The header is not sent with a
// delta: the receiver rebuilds it from the state the delta leads to, so a delta is verified when
// it applies (one held back for a gap is checked when its turn comes; a forged one only ever
// costs a repair). Nor is the key: it is the one in the node's signed alive, which the membership
// checked hashes to the node id (a delta of a node not known yet waits for a repair, as a gap). Versions far ahead of this
// node's clock and states over the endpoint limit are refused. A node that leaves is dropped at
// once; one that membership declares dead (it stopped answering probes) only after a grace
// (deadGraceMs) if its host is still there: a daemon restarted by its init system — a restart,
// an upgrade, a crash — is silent for a few seconds while its containers keep running, and its
// endpoints stay answered unless it stays dead. A host that does not answer a connection at all
// (powered off, cut off) is dropped at once. Updates of a dead or left node are refused while it stays so.
//
// Messages (the gossip frame's wire version covers them; docs/architecture.md):
//   update   a delta (id, version, back: version − base, 0 for base 0; signature, body) or a notice
//            (that version exists, too big to gossip: id, version, back, state hash, body hash,
//            signature), in the raw layout of update.ts; who passed it on the gossip layer tells
//            (notifyUpdate's from), and its name (updateId) is cut from its head
//   (msgpack arrays:)
//   request  [2, id, version] → [0, ...State] | [3]   a node's state, at `version` or later
//   push-pull (digest.ts: one 8-byte hash per bucket of (id, version) pairs):
//            leg 1  digest (bytes)
//            leg 2  [buckets, differing bucket numbers (bytes), [id, version, id, version, …] of the
//                    states held in those buckets]
//            leg 3  [4, State[] the answerer lacks, [id, version, …] wanted of it (version: the
//                    one held here, 0 for none), join] → leg 4  [5, State[] wanted]
//   State = [id, version, back, bodyHash, state bytes, pub, sig]   (the key travels with a whole
//            state, so a join needs nothing learned first)
// Node ids are 16 raw bytes (compact.ts); body and state bytes are delta.ts's compact encodings.

/** What the sync needs of the gossip layer (the Membership; the simulator runs the same). */
export interface SyncTransport {
  /** Largest opaque update that fits in a packet. */
  readonly maxUserUpdate: number;
  /** Passes an update on, once per `id` (updateId: the same for every copy of one version). */
  broadcast(id: string, data: Uint8Array): void;
  request(addr: string, data: Uint8Array): Promise<Uint8Array>;
  pushPull(addr: string, join: boolean): Promise<void>;
  member(id: string): Member | undefined;
  all(): Member[];
  rand(): number;
  /** The gossip clock (virtual in the simulator). */
  now(): number;
  after(ms: number, fn: () => void): void;
  /** Whether the host at `addr` is still there though its member is found dead (Membership.hostUp); absent: cannot tell. */
  hostUp?(addr: string): Promise<boolean>;
}

export interface SyncEvents {
  /** A remote state replaced an older one; `lagMs` = now − the owner's version timestamp. */
  merged?(state: NodeState, lagMs: number): void;
  removed?(id: string, why: 'dead' | 'left'): void;
  invalid?(what: string): void;
  /** An update refused: not signed by its node, over a limit, out of bounds. */
  rejected?(err: WireError): void;
}

export interface SyncOptions {
  /** Signs this node's own state (without one, this node publishes nothing). */
  identity?: NodeIdentity;
  /** Node states with more endpoints are refused (and this node never publishes more). */
  maxEndpoints?: number;
  /** A repair that fails is warned once per node until one succeeds, and counted. */
  failures?: FailureLog;
  /** How long (ms, gossip clock) the state of a node found dead is kept in case it comes back; 0: dropped at once. */
  deadGraceMs?: number;
  /**
   * How a delta's body is decoded, and how it is applied and its signature checked (default
   * DELTA_STEPS). Only the simulator passes others: memos its hosts share (src/gossip/sim/sync.ts),
   * as they hold the same state objects and receive the same bytes.
   */
  steps?: DeltaSteps;
}

export const DEFAULT_MAX_ENDPOINTS = 10_000;

/** One version of a node's state as its owner signed it: the header, its decoded form, key, signature. */
export interface Signed {
  header: Uint8Array;
  h: Header;
  pub: Uint8Array;
  sig: Uint8Array;
}

/** Deltas held back per node until the one before them arrives, and nodes held back for. */
const PENDING_PER_NODE = 8;
const PENDING_NODES = 1024;
/** Whole-state repairs in flight at once, tries per node (then anti-entropy takes over), nodes waited for. */
const REPAIRS = 4;
const REPAIR_TRIES = 4;
const WANTED = 4096;
/** How long a gap may take to fill by itself before a repair (ms, plus up to as much at random). */
const GAP_WAIT = 500;
/** A state got this recently is not sent whole in a periodic push-pull: its delta is on its way. */
const FRESH_MS = 5000;

interface Want {
  version: number;
  /** Who is known to have it (the node that passed the update on). */
  from?: string;
  tries: number;
  busy: boolean;
  /** Due for a repair (a gap waits GAP_WAIT first). */
  ready: boolean;
}

/** The signed form of a whole state (base 0), for a trusted start (the simulator) and tests. */
export function signState(identity: NodeIdentity, s: NodeState): Signed {
  return signDelta(identity, diff(undefined, s), s);
}

/** The header the owner signs for state `s` made from `base` by delta `body`; a receiver rebuilds it the same way. */
const headerOf = (s: NodeState, base: number, body: Uint8Array): Header => ({ id: s.id, version: s.version, base, stateHash: stateHash(s), bodyHash: sha256(body) });

function signDelta(identity: NodeIdentity, d: Delta, s: NodeState, body = encodeBody(d)): Signed {
  const h = headerOf(s, d.base, body);
  const header = encodeHeader(h);
  const { pub, sig } = identity.prove(header);
  return { header, h, pub, sig };
}

/** What a delta leads to: the state it makes of `held` (the state at its base), and the owner's proof of it (null: not what the owner signed). */
export interface Proven {
  state: NodeState;
  signed: Signed | null;
}
export interface DeltaSteps {
  decode: typeof decodeBody;
  prove: (held: NodeState | undefined, d: Delta, body: Uint8Array, sig: Uint8Array, pub: Uint8Array) => Proven;
  /** The update that passes delta `body` of version `s` on (the gossip layer keeps its bytes a while to answer GRAFTs). */
  update: (s: Signed, body: Uint8Array) => Uint8Array;
}

/** A delta as gossiped (update.ts). */
export const deltaUpdate = (s: Signed, body: Uint8Array): Uint8Array => updateOut({ type: DELTA, id: s.h.id, version: s.h.version, back: backOf(s.h) }, s.sig, body);

/** Applies delta `d` to `held` and checks `sig` with key `pub` over the header of the result, rebuilt as the owner built it. */
export function proveDelta(held: NodeState | undefined, d: Delta, body: Uint8Array, sig: Uint8Array, pub: Uint8Array): Proven {
  const state = apply(held, d);
  const h = headerOf(state, d.base, body);
  const header = encodeHeader(h);
  return { state, signed: verifyProof(d.id, header, { pub, sig }) ? { header, h, pub, sig: new Uint8Array(sig) } : null };
}

export const DELTA_STEPS: DeltaSteps = { decode: decodeBody, prove: proveDelta, update: deltaUpdate };

/**
 * The owner's proof of each state object held (states from the state file have none). Keyed by
 * the immutable state itself, a proof lives exactly as long as the version it proves is held, and
 * registries that hold the same state object (the simulator's hosts) hold one proof of it.
 */
const proofs = new WeakMap<NodeState, Signed>();

/**
 * Takes `signed` as the owner's proof of `state`, unchecked, for every registry that holds that
 * state object: a trusted start (the simulator's converged start puts it in every host's table).
 */
export function trust(state: NodeState, signed: Signed): void {
  proofs.set(state, signed);
}

const isBytes = (x: unknown, n?: number): x is Uint8Array => x instanceof Uint8Array && (n === undefined || x.length === n);
/** How far back the base of a version is (0: base 0), and the base from it; null when out of range. */
const backOf = (h: { version: number; base: number }): number => (h.base === 0 ? 0 : h.version - h.base);
const baseOf = (version: number, back: unknown): number | null => (isVersion(back) && back <= version && back !== version ? (back === 0 ? 0 : version - back) : null);
type Applied = 'done' | 'gap' | 'refused';

/** Whether the answer to a request is a whole state ([0, ...State]). */
export const isWholeAnswer = (b: Uint8Array): boolean => b[0] === 0x98 && b[1] === 0x00;

export class RegistrySync implements Delegate {
  private net: SyncTransport | null = null;
  /** node id → base version → a delta waiting for the state at its base. */
  private readonly pending = new Map<string, Map<number, { d: Delta; sig: Uint8Array; body: Uint8Array }>>();
  private readonly wanted = new Map<string, Want>();
  private repairs = 0;
  /** This node's last published state (the base of its next delta). */
  private published: NodeState | undefined;
  /** When (this node's clock) it got the version held of each node. */
  private readonly gotAt = new Map<string, number>();
  /** Nodes found dead whose state is kept for the grace: id → the token of the timer that drops it. */
  private readonly dying = new Map<string, object>();
  private readonly maxEndpoints: number;
  private readonly steps: DeltaSteps;
  /** Updates for the simulator and tests: deltas applied, whole states merged, whole-state repairs asked. */
  readonly stats = { deltas: 0, states: 0, repairs: 0 };

  constructor(
    private readonly registry: Registry,
    private readonly now: () => number = Date.now,
    private readonly events: SyncEvents = {},
    private readonly opts: SyncOptions = {},
  ) {
    if (opts.identity && opts.identity.id !== registry.localNode) throw new Error(`the signing key is node ${opts.identity.id}'s, not ${registry.localNode}'s`);
    this.maxEndpoints = opts.maxEndpoints ?? DEFAULT_MAX_ENDPOINTS;
    this.steps = opts.steps ?? DELTA_STEPS;
    registry.onChange((c) => {
      if (this.net && c.nodes.includes(registry.localNode)) this.publishLocal();
    });
  }

  attach(net: SyncTransport): void {
    this.net = net;
    this.publishLocal();
  }

  private get self(): string {
    return this.registry.localNode;
  }

  /** Signs and queues what changed in this node's state since it last published. */
  publishLocal(): void {
    const s = this.registry.node(this.self);
    const identity = this.opts.identity;
    if (!s || !identity || !this.net || this.published?.version === s.version) return;
    if (s.endpoints.length > this.maxEndpoints) {
      this.events.rejected?.(new WireError(`this node has ${s.endpoints.length} endpoints, over the limit of ${this.maxEndpoints} (--max-endpoints-per-node): its state is not published`, 'limit'));
      return;
    }
    const d = diff(this.published, s);
    const body = encodeBody(d, this.published);
    const signed = signDelta(identity, d, s, body);
    proofs.set(s, signed);
    this.gotAt.set(s.id, this.net.now());
    this.published = s;
    this.send(signed, body);
  }

  /** Queues a delta (or, when too big for a packet, its notice). */
  private send(s: Signed, body: Uint8Array | null): void {
    const net = this.net;
    if (!net) return;
    const head = { id: s.h.id, version: s.h.version, back: backOf(s.h) };
    let data = body ? this.steps.update(s, body) : null;
    if (!data || data.length > net.maxUserUpdate) data = updateOut({ type: NOTICE, ...head }, s.h.stateHash, s.h.bodyHash, s.sig);
    net.broadcast(updateIdOf(data)!, data);
  }

  /** Whether updates of `id` are accepted now. */
  private accepts(id: string): boolean {
    if (id === this.self) return false;
    const st = this.net?.member(id)?.state;
    return st !== 'dead' && st !== 'left';
  }

  /**
   * The node, version and base an update speaks of when it is news from a node accepted now, else
   * null (counted when out of bounds). Old news costs nothing more.
   */
  private news(what: string, rawId: unknown, version: unknown, back: unknown): { id: string; version: number; base: number } | null {
    const id = idIn(rawId);
    const base = isVersion(version) ? baseOf(version, back) : null;
    if (id === null || !isVersion(version) || base === null) {
      this.events.invalid?.(`${what} that is not well-formed`);
      return null;
    }
    if (!this.accepts(id) || (this.registry.node(id)?.version ?? -1) >= version) return null;
    if (version > this.now() + MAX_AHEAD_MS) return this.reject(`${what} of node ${id} at version ${version}, more than a day ahead of this node's clock: dropped`, 'bounds');
    return { id, version, base };
  }

  /** The key node `id` signs with: the one in its signed alive (the membership checked it is the node's). */
  private keyOf(id: string): Uint8Array | undefined {
    const pub = this.net?.member(id)?.proof?.pub;
    return pub?.length === PUBLIC_KEY_BYTES ? pub : undefined;
  }

  /**
   * The owner's proof of header `h`, or null (counted) when `sig` is not its signature. Its own
   * bytes: views would keep the whole packet or push-pull answer they came in alive as long as
   * the version is held.
   */
  private proven(what: string, h: Header, pub: Uint8Array | undefined, sig: Uint8Array): Signed | null {
    const header = encodeHeader(h);
    if (!pub || !verifyProof(h.id, header, { pub, sig })) return this.reject(`${what} of node ${h.id} not signed by that node's key: dropped`, 'signature');
    return { header, h, pub: new Uint8Array(pub), sig: new Uint8Array(sig) };
  }

  /** Counts an update that is not well-formed; false: it was no news. */
  private invalid(what: string): false {
    this.events.invalid?.(what);
    return false;
  }

  private reject(message: string, reason: 'signature' | 'bounds' | 'limit'): null {
    this.events.rejected?.(new WireError(message, reason));
    return null;
  }

  private overLimit(id: string, n: number, what: string): boolean {
    if (n <= this.maxEndpoints) return false;
    this.reject(`${what} of node ${id} with ${n} endpoints, over the limit of ${this.maxEndpoints} (--max-endpoints-per-node): dropped`, 'limit');
    return true;
  }

  /** True when the delta was news (applied, or held until the versions before it arrive). */
  private onDelta(rawId: unknown, version: unknown, back: unknown, body: unknown, sig: unknown, relay: string | undefined): boolean {
    if (!isBytes(body) || !isBytes(sig, SIGNATURE_BYTES)) return this.invalid('a delta without a signature');
    const n = this.news('a delta', rawId, version, back);
    if (!n) return false;
    const d = this.steps.decode(n, body);
    if (!d) return this.invalid('a registry delta that is not well-formed');
    if (this.overLimit(d.id, d.put.length, 'a delta')) return false;
    const applied = this.applyDelta(d, sig, body);
    if (applied === 'done') {
      this.drain(d.id);
      return true;
    }
    if (applied === 'refused') return false;
    // A gap: hold it until the versions before it arrive, and ask for the whole state meanwhile.
    let q = this.pending.get(d.id);
    if (!q) {
      if (this.pending.size >= PENDING_NODES) this.pending.delete(this.pending.keys().next().value!);
      this.pending.set(d.id, (q = new Map()));
    }
    q.set(d.base, { d, sig: new Uint8Array(sig), body: new Uint8Array(body) });
    // Over the bound, the one furthest ahead goes: the nearest are the ones that can apply next.
    if (q.size > PENDING_PER_NODE) q.delete(Math.max(...q.keys()));
    this.want(d.id, d.version, relay, false);
    // Not passed on: without its base its signature cannot be checked, and nothing unchecked is
    // spread. It goes on once it applies (drain), or as a notice after the repair.
    return true;
  }

  /**
   * Applies a delta to the state at its base, checks the owner's signature over the header of the
   * result and passes it on. A gap: the state held is not at the base (or the node's key is not
   * known yet).
   */
  private applyDelta(d: Delta, sig: Uint8Array, body: Uint8Array): Applied {
    const held = this.registry.node(d.id);
    if (d.base !== 0 && held?.version !== d.base) return 'gap';
    const pub = this.keyOf(d.id);
    if (!pub) return 'gap';
    const { state, signed } = this.steps.prove(held, d, body, sig, pub);
    if (this.overLimit(d.id, state.endpoints.length, 'a delta')) return 'refused';
    if (!signed) {
      // A state held without its owner's proof (from the state file) may differ from the owner's
      // at the base: repaired. One the owner proved cannot: the delta is not what it signed.
      if (d.base !== 0 && held && !proofs.has(held)) return 'gap';
      this.reject(`a delta of node ${d.id} not signed by that node's key: dropped`, 'signature');
      return 'refused';
    }
    this.merged(state, signed);
    this.stats.deltas++;
    this.send(signed, body);
    return 'done';
  }

  private merged(state: NodeState, s: Signed): void {
    if (!this.registry.apply(state)) return;
    proofs.set(state, s);
    if (this.net) this.gotAt.set(state.id, this.net.now());
    this.events.merged?.(state, this.now() - state.version);
  }

  /** Applies the held-back deltas that now follow the state held, drops the ones it outdates. */
  private drain(id: string): void {
    const q = this.pending.get(id);
    while (q) {
      const v = this.registry.node(id)?.version ?? 0;
      for (const [base, p] of q) if (p.d.version <= v) q.delete(base);
      const next = q.get(v);
      if (!next) break;
      q.delete(v);
      if (this.applyDelta(next.d, next.sig, next.body) !== 'done') break;
    }
    if (q?.size === 0) this.pending.delete(id);
    const w = this.wanted.get(id);
    if (w && (this.registry.node(id)?.version ?? 0) >= w.version && !w.busy) this.wanted.delete(id);
  }

  /** Merges a whole signed state (State); true when it was news. */
  merge(raw: unknown): boolean {
    const a = Array.isArray(raw) && raw.length === 7 ? (raw as unknown[]) : null;
    if (!a || !isBytes(a[3], HASH_BYTES) || !isBytes(a[4]) || !isBytes(a[5], PUBLIC_KEY_BYTES) || !isBytes(a[6], SIGNATURE_BYTES)) {
      this.events.invalid?.('a node state that is not well-formed');
      return false;
    }
    const n = this.news('a state', a[0], a[1], a[2]);
    if (!n) return false;
    const state = decodeState(n.id, n.version, a[4]);
    if (!state) {
      this.events.invalid?.('a node state that is not well-formed');
      return false;
    }
    if (this.overLimit(n.id, state.endpoints.length, 'a state')) return false;
    const s = this.proven('a state', { ...n, stateHash: stateHash(state), bodyHash: new Uint8Array(a[3]) }, a[5], a[6]);
    if (!s) return false;
    this.merged(state, s);
    this.stats.states++;
    this.drain(state.id);
    return true;
  }

  /** The signed whole state of node `id` as held here, if this node can prove it. */
  private stateOf(id: string): unknown[] | null {
    const state = this.registry.node(id);
    if (id === this.self) this.publishLocal();
    const s = state && proofs.get(state);
    if (!state || !s || s.h.version !== state.version) return null;
    return [idOut(id), s.h.version, backOf(s.h), s.h.bodyHash, encodeState(state), s.pub, s.sig];
  }

  // ---- repair: a node's whole state from one peer that has it ----

  /**
   * Notes that node `id` has a version `version` this node lacks. A notice is fetched at once; a
   * gap first waits a moment, as gossip may just have delivered the deltas out of order.
   */
  private want(id: string, version: number, from: string | undefined, atOnce: boolean): void {
    let w = this.wanted.get(id);
    const waiting = w !== undefined && !w.ready;
    if (w) {
      if (version > w.version) Object.assign(w, { version, tries: 0, from: from ?? w.from });
      w.ready ||= atOnce;
    } else {
      if (this.wanted.size >= WANTED) return;
      this.wanted.set(id, (w = { version, from, tries: 0, busy: false, ready: atOnce }));
    }
    if (w.ready) this.pump();
    else if (!waiting) this.net?.after(GAP_WAIT + this.net.rand() * GAP_WAIT, () => ((w.ready = true), this.pump()));
  }

  private pump(): void {
    for (const [id, w] of this.wanted) {
      if (this.repairs >= REPAIRS) return;
      if (!w.busy && w.ready) void this.repair(id, w);
    }
  }

  /** The address to ask: the node that passed the update on first, then random live members. */
  private peerFor(w: Want): string | undefined {
    const net = this.net!;
    const relay = w.tries === 0 && w.from !== undefined && w.from !== this.self ? net.member(w.from) : undefined;
    if (relay?.state === 'alive' || relay?.state === 'suspect') return relay.addr;
    const live = net.all().filter((m) => m.id !== this.self && m.state === 'alive');
    return live[Math.floor(net.rand() * live.length)]?.addr;
  }

  private async repair(id: string, w: Want): Promise<void> {
    const net = this.net;
    const done = (): boolean => (this.registry.node(id)?.version ?? 0) >= w.version;
    const addr = net && !done() && this.accepts(id) ? this.peerFor(w) : undefined;
    if (!net || !addr) {
      this.wanted.delete(id);
      return;
    }
    w.busy = true;
    this.repairs++;
    this.stats.repairs++;
    try {
      const answer = this.safeDecode(await net.request(addr, encode([2, idOut(id), w.version])));
      if (Array.isArray(answer) && answer[0] === 0) this.merge(answer.slice(1));
      this.opts.failures?.ok('fetch', id, `the state of node ${id} is fetched again`);
    } catch (e) {
      // Another peer is tried, or push-pull brings it later.
      this.opts.failures?.fail('fetch', id, `could not fetch the state of node ${id} from ${addr} (${(e as Error).message}): its endpoints are out of date until a repair or a push-pull brings them`);
    } finally {
      w.busy = false;
      this.repairs--;
    }
    if (this.wanted.get(id) !== w) return this.pump();
    if (done()) {
      this.wanted.delete(id);
      const state = this.registry.node(id);
      const s = state && proofs.get(state);
      // Passed on as a notice: the one that brought it, or, after a gap, in place of the deltas
      // held back, which were never passed on (hosts only this one would have told learn of it).
      if (s) this.send(s, null);
    } else if (++w.tries >= REPAIR_TRIES) {
      this.wanted.delete(id);
    } else {
      net.after(200 + net.rand() * 800, () => this.pump());
      return;
    }
    this.pump();
  }

  // ---- anti-entropy ----

  /** The digest (digest.ts) of the states held in `buckets` buckets: each node's id and version. */
  private digest(buckets: number): Digest {
    const d = new Digest(buckets);
    for (const s of this.registry.nodes()) d.add(s.id, entryHash(`${s.id}|${s.version}`));
    return d;
  }

  /**
   * Whether to leave out of a push-pull a state the other side holds an older version of
   * (`theirs`, 0 for none): outside a join, one this node got less than FRESH_MS ago has its delta
   * still on its way, and the whole state would cost far more than the delta (the next push-pull
   * sends it if the delta was lost).
   */
  private fresh(id: string, theirs: number, join: boolean): boolean {
    return !join && theirs !== 0 && (this.net?.now() ?? 0) - (this.gotAt.get(id) ?? -Infinity) < FRESH_MS;
  }

  /** The signed whole state of `id` to send a side holding version `theirs` (0: none), or null. */
  private stateFor(id: string, theirs: number, join: boolean): unknown[] | null {
    const s = this.registry.node(id);
    if (!s || s.version <= theirs || this.fresh(id, theirs, join) || (id !== this.self && !this.accepts(id))) return null;
    return this.stateOf(id);
  }

  private safeDecode(data: Uint8Array): unknown {
    try {
      return decodeBytes(data);
    } catch {
      this.events.invalid?.('an undecodable registry update');
      return undefined;
    }
  }

  // ---- Delegate ----

  /** True when the update was news (the gossip layer prunes the edge a copy of old news came over). */
  notifyUpdate(data: Uint8Array, from?: string): boolean {
    const u = updateIn(data);
    if (!u) return this.invalid('a registry update that is not well-formed');
    if (u.type === DELTA) return this.onDelta(u.id, u.version, u.back, u.body, u.sig, from);
    return this.onNotice(u.id, u.version, u.back, u.stateHash, u.bodyHash, u.sig, from);
  }

  /** An update's name (update.ts updateIdOf): the gossip layer's, for pushes that carry none. */
  updateId(data: Uint8Array): string | null {
    return updateIdOf(data);
  }

  /** A version too big to gossip exists: fetched from the node that passed the notice on. True when it was news. */
  private onNotice(rawId: unknown, version: unknown, back: unknown, sh: unknown, bh: unknown, sig: unknown, relay: string | undefined): boolean {
    if (!isBytes(sh, HASH_BYTES) || !isBytes(bh, HASH_BYTES) || !isBytes(sig, SIGNATURE_BYTES)) return this.invalid('a notice without a signature');
    const n = this.news('a notice', rawId, version, back);
    if (!n) return false;
    const pub = this.keyOf(n.id);
    // Of a node not known yet: fetched all the same (the state carries its key), after a moment.
    if (!pub) {
      this.want(n.id, n.version, relay, false);
      return true;
    }
    const s = this.proven('a notice', { ...n, stateHash: new Uint8Array(sh), bodyHash: new Uint8Array(bh) }, pub, sig);
    if (s) this.want(n.id, n.version, relay, true);
    return s !== null;
  }

  pushPullRequest(): Uint8Array {
    let n = 0;
    for (const _ of this.registry.nodes()) n++;
    return encode(this.digest(bucketsFor(n)).hashes);
  }

  /** Leg 2: the buckets where the digests differ, and the versions held in them. */
  pushPullAnswer(remote: Uint8Array): Uint8Array {
    const r = this.safeDecode(remote);
    // A digest that is not one: everything differs (one bucket).
    const buckets = isBytes(r) ? bucketCount(r) : null;
    const differ = buckets ? this.digest(buckets).differing(r as Uint8Array) : new Set([0]);
    const versions: unknown[] = [];
    for (const s of this.registry.nodes()) if (differ.has(bucketOf(s.id, buckets ?? 1))) versions.push(idOut(s.id), s.version);
    return encode([buckets ?? 1, indexesOut(differ), versions]);
  }

  /** Leg 3: the states the answerer lacks in the buckets that differ, and the versions this node lacks. */
  pushPullFinish(answer: Uint8Array, join = false): Uint8Array | null {
    const a = this.safeDecode(answer);
    const ok = Array.isArray(a) && a.length === 3 && isBytes(a[1]) && Array.isArray(a[2]);
    const buckets = ok && Number.isSafeInteger(a[0]) ? bucketCount(new Uint8Array(Math.min(a[0] as number, MAX_BUCKETS + 1) * HASH)) : null;
    const differ = ok && buckets ? indexesIn(a[1] as Uint8Array, buckets) : null;
    if (!buckets || !differ) {
      this.invalid('a push-pull answer that is not well-formed');
      return null;
    }
    const theirs = new Map<string, number>();
    const list = (a as unknown[])[2] as unknown[];
    for (let i = 0; i + 1 < list.length; i += 2) {
      const id = idIn(list[i]);
      if (id !== null && isVersion(list[i + 1])) theirs.set(id, list[i + 1] as number);
    }
    const states: unknown[][] = [];
    for (const s of this.registry.nodes()) {
      if (!differ.has(bucketOf(s.id, buckets))) continue;
      const st = this.stateFor(s.id, theirs.get(s.id) ?? 0, join);
      if (st) states.push(st);
    }
    const wanted: unknown[] = [];
    for (const [id, v] of theirs) {
      const held = this.registry.node(id)?.version ?? 0;
      if (held < v && this.accepts(id)) wanted.push(idOut(id), held);
    }
    return states.length || wanted.length ? encode([4, states, wanted, join]) : null;
  }

  /** Leg 4: merges the states of leg 3, answers with the ones it asked for. */
  pushPullLast(data: Uint8Array): Uint8Array {
    const r = this.safeDecode(data);
    if (!Array.isArray(r) || r[0] !== 4 || !Array.isArray(r[1]) || !Array.isArray(r[2])) {
      this.invalid('a push-pull leg that is not well-formed');
      return encode([5, []]);
    }
    for (const s of r[1] as unknown[]) this.merge(s);
    const out: unknown[][] = [];
    const wanted = r[2] as unknown[];
    for (let i = 0; i + 1 < wanted.length; i += 2) {
      const id = idIn(wanted[i]);
      const st = id !== null && isVersion(wanted[i + 1]) ? this.stateFor(id, wanted[i + 1] as number, r[3] === true) : null;
      if (st) out.push(st);
    }
    return encode([5, out]);
  }

  pushPullDone(reply: Uint8Array): void {
    const r = this.safeDecode(reply);
    if (Array.isArray(r) && r[0] === 5 && Array.isArray(r[1])) for (const s of r[1] as unknown[]) this.merge(s);
  }

  handleRequest(data: Uint8Array): Uint8Array {
    const r = this.safeDecode(data);
    const id = Array.isArray(r) && r[0] === 2 && typeof r[2] === 'number' ? idIn(r[1]) : null;
    if (id !== null) {
      const state = this.registry.node(id);
      const signed = state && state.version >= (r as number[])[2]! ? this.stateOf(id) : null;
      return encode(signed ? [0, ...signed] : [3]);
    }
    throw new Error('unknown registry request');
  }

  notifyMember(m: Member, prev: MemberState | undefined): void {
    if (m.id === this.self) return;
    const grace = this.opts.deadGraceMs ?? 0;
    if (m.state === 'left' && prev !== 'left') {
      this.drop(m.id, 'left');
    } else if (m.state === 'dead' && prev !== 'dead' && prev !== 'left') {
      const net = this.net;
      if (grace > 0 && net && this.registry.node(m.id)) {
        // Kept (its updates refused) unless it stays dead for the grace; one timer per node. A
        // host that is not there at all (powered off, cut off: no answer to a connection) is
        // dropped as soon as that is known; one whose kernel answers only lost its daemon.
        const token = {};
        const dropIfStill = (): void => {
          if (this.dying.get(m.id) === token) this.drop(m.id, 'dead');
        };
        this.dying.set(m.id, token);
        net.after(grace, dropIfStill);
        net.hostUp?.(m.addr).then((up) => up || dropIfStill(), dropIfStill);
      } else {
        this.drop(m.id, 'dead');
      }
    } else if (m.state === 'alive' && (prev === 'dead' || prev === 'left')) {
      // Back within the grace: its state was kept, and its next version merges as usual.
      this.dying.delete(m.id);
      // Back from the dead after it was dropped (a healed partition): its state will not be
      // gossiped again until it changes. One push-pull with such a node brings the states of
      // everyone on its side, so a heal costs a few exchanges per node, not one per member.
      if (!this.registry.node(m.id)) this.scheduleResync();
    }
  }

  /** Forgets node `id` and withdraws its endpoints. */
  private drop(id: string, why: 'dead' | 'left'): void {
    this.dying.delete(id);
    this.gotAt.delete(id);
    this.pending.delete(id);
    this.wanted.delete(id);
    if (this.registry.removeNode(id)) this.events.removed?.(id, why);
  }

  private resyncPending = false;

  private scheduleResync(attempt = 0): void {
    const net = this.net;
    if (!net || this.resyncPending || attempt > 10) return;
    this.resyncPending = true;
    net.after(200 + net.rand() * 800, () => {
      this.resyncPending = false;
      const lacking = net.all().filter((x) => x.state === 'alive' && x.id !== this.self && !this.registry.node(x.id));
      if (lacking.length === 0) return;
      const peer = lacking[Math.floor(net.rand() * lacking.length)]!;
      net.pushPull(peer.addr, false).then(
        () => this.scheduleResync(attempt + 1),
        () => this.scheduleResync(attempt + 1),
      );
    });
  }
}
