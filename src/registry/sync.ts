import { Decoder, Encoder } from '@msgpack/msgpack';
import { WireError, type MemberState } from '../gossip/codec.js';
import type { Delegate } from '../gossip/delegate.js';
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, verifyProof, type NodeIdentity } from '../gossip/identity.js';
import { MAX_AHEAD_MS, type Member, type Membership } from '../gossip/membership.js';
import { compareStates } from './merge.js';
import type { FailureLog } from '../log-once.js';
import type { Registry } from './registry.js';
import { validNodeState } from './remote.js';
import type { NodeState } from './types.js';

// The registry's side of gossip (the Delegate): this node's state goes out as a piggy-backed
// update whenever it changes, remote states come in and are merged by the registry's per-node
// last-writer-wins rule, and push-pull exchanges (node id → version) digests and then only the
// states the other side lacks. A node that membership declares dead or left is dropped from the
// registry at once, and its states are refused while it stays so (late copies of its last
// update are still in flight when it dies).
//
// Every state travels signed by its owner, as the exact bytes it signed ([state bytes, public
// key, signature], identity.ts): relays pass those bytes on untouched, and a receiver merges a
// state only when the key is the one its node id stands for and the signature holds. States
// over the endpoint limit or with a version far ahead of this node's clock are refused too.

// Endpoint fields left undefined must stay absent (msgpack would turn them into nil).
const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();
const encode = (v: unknown): Uint8Array => encoder.encode(v);
const decode = (b: Uint8Array): unknown => decoder.decode(b);

/** A node state as its owner signed it: msgpack of the NodeState, the owner's public key, the signature. */
export type Signed = [Uint8Array, Uint8Array, Uint8Array];
type Update =
  | [0, ...Signed] // a full state
  | [1, string, number]; // a state too big for a packet: id and version, fetch it from the owner
type Request = [2, string] | [4, Signed[]];
type Digest = Array<[string, number]>;

export interface SyncEvents {
  /** A remote state replaced an older one; `lagMs` = now − the owner's version timestamp. */
  merged?(state: NodeState, lagMs: number): void;
  removed?(id: string, why: 'dead' | 'left'): void;
  invalid?(what: string): void;
  /** A state refused: not signed by its node, over a limit, out of bounds. */
  rejected?(err: WireError): void;
}

export interface SyncOptions {
  /** Signs this node's own state (without one, this node publishes nothing). */
  identity?: NodeIdentity;
  /** Node states with more endpoints are refused (and this node never publishes more). */
  maxEndpoints?: number;
  failures?: FailureLog;
}

export const DEFAULT_MAX_ENDPOINTS = 10_000;

/** The signed form of a state, as gossiped. */
export function signState(identity: NodeIdentity, s: NodeState): Signed {
  const bytes = encode(s);
  const { pub, sig } = identity.prove(bytes);
  return [bytes, pub, sig];
}

const readSigned = (x: unknown): Signed | null =>
  Array.isArray(x) && x.length === 3 && x[0] instanceof Uint8Array && x[1] instanceof Uint8Array && x[1].length === PUBLIC_KEY_BYTES && x[2] instanceof Uint8Array && x[2].length === SIGNATURE_BYTES
    ? (x as Signed)
    : null;

export class RegistrySync implements Delegate {
  private membership: Membership | null = null;
  private readonly fetching = new Set<string>();
  /** The signed bytes of each state held, to pass on (states loaded from the state file have none). */
  private readonly signed = new Map<string, { version: number; signed: Signed }>();
  private readonly maxEndpoints: number;

  constructor(
    private readonly registry: Registry,
    private readonly now: () => number = Date.now,
    private readonly events: SyncEvents = {},
    private readonly opts: SyncOptions = {},
  ) {
    if (opts.identity && opts.identity.id !== registry.localNode) throw new Error(`the signing key is node ${opts.identity.id}'s, not ${registry.localNode}'s`);
    this.maxEndpoints = opts.maxEndpoints ?? DEFAULT_MAX_ENDPOINTS;
    registry.onChange((c) => {
      if (c.nodes.includes(registry.localNode)) this.publishLocal();
    });
  }

  attach(m: Membership): void {
    this.membership = m;
    this.publishLocal();
  }

  private get localState(): NodeState | undefined {
    return this.registry.node(this.registry.localNode);
  }

  /** The signed local state, made once per version. */
  private signedLocal(): Signed | null {
    const s = this.localState;
    if (!s || !this.opts.identity) return null;
    const held = this.signed.get(s.id);
    if (held?.version === s.version) return held.signed;
    const signed = signState(this.opts.identity, s);
    this.signed.set(s.id, { version: s.version, signed });
    return signed;
  }

  publishLocal(): void {
    const s = this.localState;
    const signed = this.signedLocal();
    if (!s || !signed || !this.membership) return;
    if (s.endpoints.length > this.maxEndpoints) {
      this.events.rejected?.(new WireError(`this node has ${s.endpoints.length} endpoints, over the limit of ${this.maxEndpoints} (--max-endpoints-per-node): its state is not published`, 'limit'));
      return;
    }
    const full = encode([0, ...signed] satisfies Update);
    const data = full.length <= this.membership.maxUserUpdate ? full : encode([1, s.id, s.version] satisfies Update);
    this.membership.broadcast(s.id, data);
  }

  /** Whether states of `id` are accepted now. */
  private accepts(id: string): boolean {
    if (id === this.registry.localNode) return false;
    const st = this.membership?.member(id)?.state;
    return st !== 'dead' && st !== 'left';
  }

  /** Merges a remote signed state; true when it was news. */
  merge(raw: unknown): boolean {
    return this.mergeSigned(raw) !== null;
  }

  /** Takes a state and its signed form from a trusted source, unchecked (the simulator's start). */
  learn(signed: Signed, state: NodeState): void {
    if (this.registry.apply(state)) this.signed.set(state.id, { version: state.version, signed });
  }

  /** The state merged, or null when it was not news or was refused. */
  private mergeSigned(raw: unknown): NodeState | null {
    const signed = readSigned(raw);
    const decoded = signed ? this.safeDecode(signed[0]) : undefined;
    const eps = (decoded as { endpoints?: unknown } | undefined)?.endpoints;
    if (signed && Array.isArray(eps) && eps.length > this.maxEndpoints) {
      const id = String((decoded as { id?: unknown }).id).slice(0, 64);
      this.events.rejected?.(new WireError(`a state of node ${id} with ${eps.length} endpoints, over the limit of ${this.maxEndpoints} (--max-endpoints-per-node): dropped`, 'limit'));
      return null;
    }
    const s = validNodeState(decoded);
    if (!signed || !s) {
      this.events.invalid?.(signed ? 'a node state that is not well-formed' : 'a node state without a signature');
      return null;
    }
    if (!this.accepts(s.id)) return null;
    const known = this.registry.node(s.id);
    if (known && compareStates(known, s) >= 0) return null; // old news: no signature check needed
    if (!verifyProof(s.id, signed[0], { pub: signed[1], sig: signed[2] })) {
      this.events.rejected?.(new WireError(`a state of node ${s.id} not signed by that node's key: dropped`, 'signature'));
      return null;
    }
    if (s.version > this.now() + MAX_AHEAD_MS) {
      this.events.rejected?.(new WireError(`a state of node ${s.id} at version ${s.version}, more than a day ahead of this node's clock: dropped`, 'bounds'));
      return null;
    }
    if (!this.registry.apply(s)) return null;
    this.signed.set(s.id, { version: s.version, signed });
    this.events.merged?.(s, this.now() - s.version);
    return s;
  }

  /** What this node can pass on of node `id`'s current state. */
  private signedOf(s: NodeState): Signed | null {
    if (s.id === this.registry.localNode) return this.signedLocal();
    const held = this.signed.get(s.id);
    return held?.version === s.version ? held.signed : null;
  }

  private digest(): Digest {
    return [...this.registry.nodes()].map((s) => [s.id, s.version]);
  }

  /** States this node holds that are newer than (or missing from) `remote`. */
  private newerThan(remote: Digest): Signed[] {
    const theirs = new Map(remote);
    const out: Signed[] = [];
    for (const s of this.registry.nodes()) {
      const v = theirs.get(s.id);
      if ((v === undefined || v < s.version) && (s.id === this.registry.localNode || this.accepts(s.id))) {
        const signed = this.signedOf(s);
        if (signed) out.push(signed);
      }
    }
    return out;
  }

  private readDigest(raw: unknown): Digest {
    if (!Array.isArray(raw)) return [];
    return raw.filter((x): x is [string, number] => Array.isArray(x) && typeof x[0] === 'string' && typeof x[1] === 'number');
  }

  private safeDecode(data: Uint8Array): unknown {
    try {
      return decode(data);
    } catch {
      this.events.invalid?.('an undecodable registry update');
      return undefined;
    }
  }

  // ---- Delegate ----

  notifyUpdate(data: Uint8Array): void {
    const u = this.safeDecode(data);
    if (!Array.isArray(u)) return;
    if (u[0] === 0) {
      // News is passed on (like Serf's user events): memberlist itself only carries it one hop.
      const s = this.mergeSigned(u.slice(1));
      if (s) this.membership?.broadcast(s.id, data);
    } else if (u[0] === 1 && typeof u[1] === 'string' && typeof u[2] === 'number') {
      const [, id, version] = u as [1, string, number];
      const known = this.registry.node(id);
      if ((known && known.version >= version) || !this.accepts(id)) return;
      void this.fetch(id, true);
    }
  }

  /** Asks the owner for its state; `pass` passes the announcement on (big-state notices). */
  private async fetch(id: string, pass = false): Promise<void> {
    const addr = this.membership?.member(id)?.addr;
    if (!addr || this.fetching.has(id) || !this.membership) return;
    this.fetching.add(id);
    try {
      const answer = this.safeDecode(await this.membership.request(addr, encode([2, id] satisfies Request)));
      if (Array.isArray(answer) && answer[0] === 0 && this.merge(answer.slice(1)) && pass) {
        this.membership.broadcast(id, encode([1, id, this.registry.node(id)!.version] satisfies Update));
      }
      this.opts.failures?.ok('fetch', id, `the state of node ${id} is fetched from it again`);
    } catch (e) {
      this.opts.failures?.fail('fetch', id, `could not fetch the state of node ${id} from ${addr} (${(e as Error).message}): its endpoints are out of date until a push-pull brings them`);
    } finally {
      this.fetching.delete(id);
    }
  }

  pushPullRequest(): Uint8Array {
    return encode(this.digest());
  }

  pushPullAnswer(remote: Uint8Array): Uint8Array {
    return encode([this.digest(), this.newerThan(this.readDigest(this.safeDecode(remote)))]);
  }

  pushPullFinish(answer: Uint8Array): Uint8Array | null {
    const a = this.safeDecode(answer);
    if (!Array.isArray(a) || !Array.isArray(a[1])) return null;
    for (const s of a[1] as unknown[]) this.merge(s);
    const missing = this.newerThan(this.readDigest(a[0]));
    return missing.length ? encode([4, missing] satisfies Request) : null;
  }

  handleRequest(data: Uint8Array): Uint8Array {
    const r = this.safeDecode(data);
    if (Array.isArray(r) && r[0] === 2 && typeof r[1] === 'string') {
      const s = this.registry.node(r[1]);
      const signed = s ? this.signedOf(s) : null;
      return encode(signed ? [0, ...signed] : [3]);
    }
    if (Array.isArray(r) && r[0] === 4 && Array.isArray(r[1])) {
      for (const s of r[1] as unknown[]) this.merge(s);
      return encode([5]);
    }
    throw new Error('unknown registry request');
  }

  notifyMember(m: Member, prev: MemberState | undefined): void {
    if (m.id === this.registry.localNode) return;
    if ((m.state === 'dead' || m.state === 'left') && prev !== m.state) {
      this.signed.delete(m.id);
      if (this.registry.removeNode(m.id)) this.events.removed?.(m.id, m.state);
    } else if (m.state === 'alive' && (prev === 'dead' || prev === 'left') && !this.registry.node(m.id)) {
      // Back from the dead (a healed partition): its state was dropped here and will not be
      // gossiped again until it changes. One push-pull with such a node brings the states of
      // everyone on its side, so a heal costs a few exchanges per node, not one per member.
      this.scheduleResync();
    }
  }

  private resyncPending = false;

  private scheduleResync(attempt = 0): void {
    const m = this.membership;
    if (!m || this.resyncPending || attempt > 10) return;
    this.resyncPending = true;
    m.after(200 + m.rand() * 800, () => {
      this.resyncPending = false;
      const lacking = m.all().filter((x) => x.state === 'alive' && x.id !== this.registry.localNode && !this.registry.node(x.id));
      if (lacking.length === 0) return;
      const peer = lacking[Math.floor(m.rand() * lacking.length)]!;
      m.pushPull(peer.addr, false).then(
        () => this.scheduleResync(attempt + 1),
        () => this.scheduleResync(attempt + 1),
      );
    });
  }
}
