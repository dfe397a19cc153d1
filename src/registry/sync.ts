import { Decoder, Encoder } from '@msgpack/msgpack';
import type { MemberState } from '../gossip/codec.js';
import type { Delegate } from '../gossip/delegate.js';
import type { Member, Membership } from '../gossip/membership.js';
import type { Registry } from './registry.js';
import { validNodeState } from './remote.js';
import type { NodeState } from './types.js';

// The registry's side of gossip (the Delegate): this node's state goes out as a piggy-backed
// update whenever it changes, remote states come in and are merged by the registry's per-node
// last-writer-wins rule, and push-pull exchanges (node id → version) digests and then only the
// states the other side lacks. A node that membership declares dead or left is dropped from the
// registry at once, and its states are refused while it stays so (late copies of its last
// update are still in flight when it dies).

// Endpoint fields left undefined must stay absent (msgpack would turn them into nil).
const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();
const encode = (v: unknown): Uint8Array => encoder.encode(v);
const decode = (b: Uint8Array): unknown => decoder.decode(b);

type Update =
  | [0, NodeState] // a full state
  | [1, string, number]; // a state too big for a packet: id and version, fetch it from the owner
type Request = [2, string] | [4, NodeState[]];
type Digest = Array<[string, number]>;

export interface SyncEvents {
  /** A remote state replaced an older one; `lagMs` = now − the owner's version timestamp. */
  merged?(state: NodeState, lagMs: number): void;
  removed?(id: string, why: 'dead' | 'left'): void;
  invalid?(what: string): void;
}

export class RegistrySync implements Delegate {
  private membership: Membership | null = null;
  private readonly fetching = new Set<string>();

  constructor(
    private readonly registry: Registry,
    private readonly now: () => number = Date.now,
    private readonly events: SyncEvents = {},
  ) {
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

  publishLocal(): void {
    const s = this.localState;
    if (!s || !this.membership) return;
    const full = encode([0, s] satisfies Update);
    const data = full.length <= this.membership.maxUserUpdate ? full : encode([1, s.id, s.version] satisfies Update);
    this.membership.broadcast(s.id, data);
  }

  /** Whether states of `id` are accepted now. */
  private accepts(id: string): boolean {
    if (id === this.registry.localNode) return false;
    const st = this.membership?.member(id)?.state;
    return st !== 'dead' && st !== 'left';
  }

  /** Merges a remote state; true when it was news. */
  merge(raw: unknown): boolean {
    const s = validNodeState(raw);
    if (!s) {
      this.events.invalid?.('a node state that is not well-formed');
      return false;
    }
    if (!this.accepts(s.id)) return false;
    if (!this.registry.apply(s)) return false;
    this.events.merged?.(s, this.now() - s.version);
    return true;
  }

  private digest(): Digest {
    return [...this.registry.nodes()].map((s) => [s.id, s.version]);
  }

  /** States this node holds that are newer than (or missing from) `remote`. */
  private newerThan(remote: Digest): NodeState[] {
    const theirs = new Map(remote);
    const out: NodeState[] = [];
    for (const s of this.registry.nodes()) {
      const v = theirs.get(s.id);
      if ((v === undefined || v < s.version) && (s.id === this.registry.localNode || this.accepts(s.id))) out.push(s);
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
      if (this.merge(u[1])) this.membership?.broadcast((u[1] as NodeState).id, data);
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
      if (Array.isArray(answer) && answer[0] === 0 && this.merge(answer[1]) && pass) {
        this.membership.broadcast(id, encode([1, id, (answer[1] as NodeState).version] satisfies Update));
      }
    } catch {
      /* the owner is unreachable: push-pull will bring the state later */
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
      return encode(s ? [0, s] : [3]);
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
