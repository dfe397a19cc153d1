import { Awareness, LATE_MS } from './awareness.js';
import type { Clock, Timer } from './clock.js';
import type { Message, MemberInfo, MemberState, PushPullLeg } from './codec.js';
import { alivePayload, decodeMessages, encodeMessage, encodeMessages, leavePayload, REJECT_REASONS, WIRE_VERSION, WireError, type RejectReason } from './codec.js';
import { pushPullInterval, retransmitLimit, suspicionTimeout, type GossipConfig } from './config.js';
import type { Wire } from './crypto.js';
import type { Delegate } from './delegate.js';
import { bucketCount, bucketOf, bucketsFor, Digest, entryHash, indexesIn, indexesOut } from './digest.js';
import { verifyProof, type NodeIdentity, type Proof } from './identity.js';
import { MemberTable, peerName } from './members.js';
import { Tree, TREE, type TreeConfig } from './plumtree.js';
import { BroadcastQueue } from './queue.js';
import type { Transport } from './transport.js';
import type { FailureLog } from '../log-once.js';

// SWIM membership with memberlist's refinements: round-robin probes over a shuffled list,
// indirect probes through k members, suspicion with incarnation numbers (the suspect refutes by
// announcing a higher incarnation), graceful leave, piggy-backed dissemination of membership
// changes with a retransmit limit, and TCP push-pull anti-entropy. It knows nothing of the
// registry: node-state updates are opaque bytes handed to the Delegate, spread along a broadcast
// tree (plumtree.ts) so that each host receives each about once. All time comes from `clock`,
// all randomness from `random`, all I/O through `transport`, so the simulator runs this exact
// code.

export interface Member {
  id: string;
  name: string;
  addr: string;
  inc: number;
  state: MemberState;
  /** Clock time of the last state change. */
  since: number;
  /** Clock time this node last heard from the member: a ping from it, or an ack for it (its own, or relayed by a helper). */
  contact?: number;
  /** The member's signature of its alive at `inc` (or of its leave, once left): passed on in push-pull. */
  proof?: Proof;
}

export interface MembershipOptions {
  id: string;
  /** Signs this node's alive and leave messages; its id must be `id`. */
  identity: NodeIdentity;
  name: string;
  /** Starting incarnation; the daemon uses the wall clock so a restarted node outranks its past. */
  incarnation: number;
  config: GossipConfig;
  clock: Clock;
  transport: Transport;
  wire: Wire;
  delegate: Delegate;
  random?: () => number;
  /** The broadcast tree's sizes and timings (default TREE). */
  tree?: TreeConfig;
  /** Told about every rejected packet or frame (the daemon logs the first of each kind). */
  onReject?: (err: WireError, from: string) => void;
  /** Failed push-pulls with live members, logged once per state change and counted. */
  failures?: FailureLog;
}

export interface GossipStats {
  packetsSent: number;
  packetsReceived: number;
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  rejected: Record<RejectReason, number>;
  pushPulls: number;
  pushPullFailures: number;
  /** Opaque (registry) updates passed on along the tree: this node's own and those relayed. */
  updatesQueued: number;
  /**
   * Bytes sent by kind: each message type's encoded size, `membership` for piggy-backed
   * alive/suspect/dead updates, `frame` for what framing and sealing add to packets; streams by
   * what they carry (`pushpull` the member part, `pushpull-user` the delegate's, `userreq`).
   */
  sentBy: Record<string, number>;
}

/** How often members declared dead (not left) are retried with a push-pull (Serf's reconnect). */
const RECONNECT_INTERVAL = 30_000;
const REAP_CHECK = 60_000;
/** How long a member found dead may take to show its host is still there (hostUp). */
const HOST_UP_TIMEOUT = 1000;
/**
 * Incarnations are wall-clock based (the daemon starts at Date.now(), refutations add one), so
 * one further ahead of this node's clock than this is a bug or an attack, not a restart: taking
 * it would let a single message push a member's incarnation to 2^53 and freeze it there.
 */
export const MAX_AHEAD_MS = 24 * 3600_000;
const NO_PROOF: Proof = { pub: new Uint8Array(0), sig: new Uint8Array(0) };
const EMPTY = new Uint8Array(0);
/** A step that visits each of n places once (coprime with n), from random r in [0, 1). */
function stride(n: number, r: number): number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  let s = 1 + Math.floor(r * Math.max(1, n - 1));
  while (n > 1 && gcd(s, n) !== 1) s = (s % (n - 1)) + 1;
  return s;
}
const isProbe = (m: Message): boolean => m.t === 'ping' || m.t === 'ack' || m.t === 'indirect';
/** How the broadcast tree names a member: as tree messages do (codec.ts senderOut), by the first 16 hex digits of its id. */
const peerOf = (id: string): string => (/^[0-9a-f]{16}/.test(id) ? id.slice(0, 16) : id);

export class Membership {
  readonly self: Member;
  readonly stats: GossipStats = {
    packetsSent: 0, packetsReceived: 0, messagesSent: 0, messagesReceived: 0, bytesSent: 0, bytesReceived: 0,
    rejected: Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>, pushPulls: 0, pushPullFailures: 0, updatesQueued: 0,
    sentBy: {},
  };
  /** Lifeguard's local health: scales this node's probe and suspicion timeouts (awareness.ts). */
  readonly awareness = new Awareness();
  private readonly members = new MemberTable();
  private readonly queue: BroadcastQueue;
  /** The delegate's updates: eager pushes along a tree, ids announced to lazy peers. */
  readonly tree: Tree;
  private readonly acks = new Map<number, () => void>();
  private readonly suspicions = new Map<string, Timer>();
  private readonly timers = new Set<Timer>();
  private probeList: readonly string[] = [];
  /**
   * Set by learn(): the probe list is then the learned list's ids (shared by every node that
   * learned it, never written), probed in the order offset + stride × i (mod its length) until the
   * round ends or the list changes, when it becomes this node's own (ownProbes): learning N members
   * costs a node no copy and no shuffle of N ids, and each is still probed once a round.
   */
  private probeView: { offset: number; stride: number } | null = null;
  /** Moves the next periodic push-pull (learn: a converged start is a cluster that has been running). */
  private pushPullPhase: (delay: number) => void = () => undefined;
  private probeIndex = 0;
  private seq = 0;
  private live = 1;
  private running = false;
  private readonly random: () => number;
  private readonly cfg: GossipConfig;

  constructor(private readonly o: MembershipOptions) {
    this.cfg = o.config;
    this.random = o.random ?? Math.random;
    if (o.identity.id !== o.id) throw new Error(`node id ${o.id} is not the id of its signing key (${o.identity.id})`);
    this.self = { id: o.id, name: o.name, addr: o.transport.address, inc: o.incarnation, state: 'alive', since: o.clock.now() };
    this.signSelf();
    this.members.set(o.id, this.self);
    this.queue = new BroadcastQueue(() => retransmitLimit(this.cfg, this.live));
    const tree = o.tree ?? TREE;
    this.tree = new Tree({
      clock: o.clock,
      sample: (k, skip) => this.pick(k, (m) => m.state === 'alive' && !skip(peerOf(m.id))).map((m) => peerOf(m.id)),
      deliver: (data, from) => this.o.delegate.notifyUpdate(data, this.resolve(from)),
      push: (to, _id, data) => this.tell(to, { t: 'push', from: this.self.id, data }),
      ihave: (to, ids) => this.tell(to, { t: 'ihave', from: this.self.id, ids }),
      graft: (to, ids) => this.tell(to, { t: 'graft', from: this.self.id, ids }),
      prune: (to) => this.tell(to, { t: 'prune', from: this.self.id }),
    }, tree);
  }

  /** Members counted alive or suspect, this node included. */
  get size(): number {
    return this.live;
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Member `id`, to read. */
  member(id: string): Readonly<Member> | undefined {
    return this.members.peek(id);
  }

  all(): Member[] {
    return [...this.members.values()];
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.o.transport.onPacket((data, from) => this.onPacket(data, from));
    this.o.transport.onRequest((data, from) => this.onRequest(data, from));
    this.o.transport.setGate?.({
      header: (length) => this.o.wire.sealBody(new Uint8Array([length >>> 24, (length >>> 16) & 255, (length >>> 8) & 255, length & 255])),
      admit: (header) => {
        const b = this.o.wire.openBody(header);
        if (b.length !== 4) throw new WireError('not a stream header', 'decode');
        return ((b[0]! << 24) >>> 0) + (b[1]! << 16) + (b[2]! << 8) + b[3]!;
      },
      refusal: (e) => (e instanceof WireError ? this.refusal(e) : null),
    });
    this.loop(() => this.awareness.scale(this.cfg.probeInterval), () => this.probeNext(), this.random() * this.cfg.probeInterval);
    this.every(this.cfg.gossipInterval, () => this.gossip(), this.random() * this.cfg.gossipInterval);
    const ihave = (this.o.tree ?? TREE).ihaveInterval;
    this.every(ihave, () => this.tree.tick(), this.random() * ihave);
    this.pushPullPhase = this.loop(() => pushPullInterval(this.cfg, this.live), () => void this.pushPullRandom());
    this.every(RECONNECT_INTERVAL, () => void this.reconnect(), this.random() * RECONNECT_INTERVAL);
    this.every(REAP_CHECK, () => this.reap(), REAP_CHECK);
    this.queue.push(`m:${this.self.id}`, this.aliveMsg(this.self));
  }

  stop(): void {
    this.running = false;
    for (const t of this.timers) t.cancel();
    for (const t of this.suspicions.values()) t.cancel();
    this.timers.clear();
    this.suspicions.clear();
    this.acks.clear();
  }

  /** The membership's random source (seeded in the simulator), for the delegate. */
  rand(): number {
    return this.random();
  }

  /** The membership's clock (virtual in the simulator), for the delegate. */
  now(): number {
    return this.o.clock.now();
  }

  /** A timer on the membership's clock (virtual in the simulator), for the delegate. */
  after(ms: number, fn: () => void): void {
    if (this.running) this.o.clock.after(ms, () => this.running && fn());
  }

  /**
   * Passes an opaque update on along the tree (once per `id`: the delegate names each update,
   * e.g. by its owner and version). Called for this node's own updates and, while or after the
   * delegate handles a received one, for those it found new and passes on.
   */
  broadcast(id: string, data: Uint8Array): void {
    this.stats.updatesQueued++;
    this.tree.broadcast(id, data);
  }

  /** Sends one message to member `id` (or the member its peer name stands for) now, with queued membership updates as room allows. */
  private tell(id: string, msg: Message): void {
    const m = this.members.named(id);
    if (m && (m.state === 'alive' || m.state === 'suspect') && this.self.state !== 'left') this.send(m.addr, [msg]);
  }

  /** Largest user update that still fits in a packet with room to spare. */
  get maxUserUpdate(): number {
    return this.cfg.packetSize - this.o.wire.overhead - 200;
  }

  /** Push-pull with each address; resolves with how many answered. */
  async join(addrs: string[]): Promise<{ joined: number; errors: string[] }> {
    let joined = 0;
    const errors: string[] = [];
    await Promise.all(
      addrs.map(async (a) => {
        try {
          await this.pushPull(a, true);
          joined++;
        } catch (e) {
          errors.push(`${a}: ${(e as Error).message}`);
        }
      }),
    );
    return { joined, errors };
  }

  /** Announces the leave and gives it a moment to spread (SIGTERM). */
  async leave(waitMs = 1000): Promise<void> {
    this.self.inc++;
    this.setState(this.self, 'left');
    this.self.proof = this.o.identity.prove(leavePayload(this.self));
    const msg: Message = { t: 'dead', id: this.self.id, inc: this.self.inc, from: this.self.id, proof: this.self.proof };
    this.queue.push(`m:${this.self.id}`, msg);
    // Tell a few members directly so the leave does not wait for the next gossip round.
    for (const m of this.pick(Math.max(this.cfg.gossipNodes, 5), (x) => x.state === 'alive' || x.state === 'suspect')) {
      this.send(m.addr, [msg]);
    }
    const deadline = this.o.clock.now() + waitMs;
    while (this.queue.length > 0 && this.o.clock.now() < deadline) {
      await new Promise<void>((r) => this.o.clock.after(this.cfg.gossipInterval, r));
    }
  }

  /**
   * Whether the host at `addr` is there although its member stopped answering probes (its daemon
   * is restarting): its kernel accepts or refuses a stream within HOST_UP_TIMEOUT. True where the
   * transport cannot tell.
   */
  hostUp(addr: string): Promise<boolean> {
    return this.o.transport.reachable?.(addr, HOST_UP_TIMEOUT) ?? Promise.resolve(true);
  }

  /** A reliable request to a member's delegate (e.g. a registry state too big for a packet). */
  async request(addr: string, data: Uint8Array): Promise<Uint8Array> {
    const frame = this.sentFrame('userreq', this.o.wire.seal([{ t: 'userreq', data }]));
    const reply = await this.o.transport.request(addr, frame, this.cfg.streamTimeout);
    const m = this.openAnswer(reply, addr);
    if (m.t === 'error') throw new Error(m.message);
    if (m.t !== 'userreq') throw new Error('unexpected answer');
    return m.data;
  }

  // ---- probing ----

  private probeNext(): void {
    if (this.self.state === 'left') return;
    const n = this.probeList.length;
    for (let i = 0; i < n; i++) {
      if (this.probeIndex >= this.probeList.length) {
        this.probeIndex = 0;
        this.shuffle();
      }
      const m = this.members.get(this.probeAt(this.probeIndex++));
      if (m && m.id !== this.self.id && (m.state === 'alive' || m.state === 'suspect')) {
        this.probe(m);
        return;
      }
    }
  }

  private probe(target: Member): void {
    const started = this.o.clock.now();
    const seq = ++this.seq;
    const timeout = this.awareness.scale(this.cfg.probeTimeout);
    const interval = this.awareness.scale(this.cfg.probeInterval);
    let acked = false;
    let direct = true;
    this.acks.set(seq, () => (acked = true));
    const ping: Message[] = [{ t: 'ping', seq, target: target.id, from: this.self.id, fromAddr: this.self.addr }];
    // Lifeguard's buddy system: a suspect hears of the suspicion on the probe itself, so it can
    // refute it even when the gossiped copies have all been spent.
    if (target.state === 'suspect') ping.push({ t: 'suspect', id: target.id, inc: target.inc, from: this.self.id });
    this.send(target.addr, ping);
    let helpers = 0;
    this.o.clock.after(timeout, () => this.settle(started + timeout, () => {
      direct = false;
      if (acked || !this.running) return;
      const picked = this.pick(this.cfg.indirectChecks, (m) => m.state === 'alive' && m.id !== target.id);
      helpers = picked.length;
      for (const h of picked) {
        this.send(h.addr, [{ t: 'indirect', seq, target: target.id, targetAddr: target.addr, from: this.self.id, fromAddr: this.self.addr }]);
      }
    }));
    this.o.clock.after(interval, () => this.settle(started + interval, () => {
      this.acks.delete(seq);
      if (!this.running) return;
      if (acked) {
        if (direct) this.awareness.apply(-1);
        return;
      }
      // Nobody else tried: the failure may as well be this node's own (memberlist's rule).
      if (helpers === 0) this.awareness.apply(1);
      const m = this.members.get(target.id);
      if (!m || m.inc !== target.inc || m.state !== 'alive') return;
      const msg: Message = { t: 'suspect', id: m.id, inc: m.inc, from: this.self.id };
      this.onSuspect(msg, started);
    }));
  }

  /**
   * Runs a failure detector timer's action. A timer that fired late means this node's event loop
   * was behind: the acks or refutations that arrived meanwhile are still unread (timers run
   * before I/O), so the action waits one turn for them, and the local health score goes up.
   */
  private settle(due: number, fn: () => void): void {
    if (this.o.clock.now() - due <= LATE_MS) return fn();
    this.awareness.late++;
    this.awareness.apply(1);
    this.o.clock.after(0, fn);
  }

  // ---- state changes (the SWIM rules) ----

  /**
   * Only `msg.id` itself can say it is alive: the message must carry its signature, checked only
   * when the message would change something (relayed copies of old news cost nothing).
   */
  private checkAlive(msg: Extract<Message, { t: 'alive' }>): void {
    if (!verifyProof(msg.id, alivePayload(msg), msg.proof)) {
      throw new WireError(`an alive for node ${msg.id} not signed by that node's key: dropped`, 'signature');
    }
    this.checkAhead(msg.id, msg.inc);
  }

  private checkAhead(id: string, inc: number): void {
    if (inc > this.o.clock.now() + MAX_AHEAD_MS) throw new WireError(`incarnation ${inc} for node ${id} is more than a day ahead of this node's clock: dropped`, 'bounds');
  }

  private onAlive(msg: Extract<Message, { t: 'alive' }>): void {
    if (msg.id === this.self.id) {
      // An older life of ours (before a clock reset) that others still believe: outrank it.
      if (this.self.state !== 'left' && (msg.inc > this.self.inc || (msg.inc === this.self.inc && msg.addr !== this.self.addr))) {
        this.checkAlive(msg);
        this.refute(msg.inc, true);
      }
      return;
    }
    const m = this.members.get(msg.id);
    if (m && msg.inc <= m.inc) return;
    this.checkAlive(msg);
    if (!m) {
      const fresh: Member = { id: msg.id, name: msg.name, addr: msg.addr, inc: msg.inc, state: 'dead', since: this.o.clock.now(), proof: msg.proof };
      this.members.set(fresh.id, fresh);
      // A random place in the probe order.
      this.ownProbes().splice(Math.floor(this.random() * (this.probeList.length + 1)), 0, fresh.id);
      this.setState(fresh, 'alive', undefined);
    } else {
      // Only a higher incarnation is news (checked above): it clears a suspicion or brings back a dead member.
      m.inc = msg.inc;
      m.addr = msg.addr;
      m.name = msg.name;
      m.proof = msg.proof;
      this.cancelSuspicion(m.id);
      this.setState(m, 'alive');
    }
    this.rebroadcast(`m:${msg.id}`, msg);
  }

  private onSuspect(msg: Extract<Message, { t: 'suspect' }>, since?: number): void {
    if (msg.id === this.self.id) {
      if (this.self.state !== 'left') this.refute(msg.inc);
      return;
    }
    const m = this.members.get(msg.id);
    if (!m || msg.inc < m.inc || m.state !== 'alive' || !this.claimable(msg, m)) return;
    m.inc = msg.inc;
    this.setState(m, 'suspect');
    this.rebroadcast(`m:${m.id}`, msg);
    const started = since ?? this.o.clock.now();
    const due = started + this.awareness.scale(suspicionTimeout(this.cfg, this.live));
    const inc = m.inc;
    const timer = this.o.clock.after(Math.max(0, due - this.o.clock.now()), () => this.settle(due, () => {
      if (this.suspicions.get(m.id) !== timer) return; // cancelled while waiting a turn
      this.suspicions.delete(m.id);
      if (m.state !== 'suspect' || m.inc !== inc || !this.running) return;
      this.onDead({ t: 'dead', id: m.id, inc, from: this.self.id });
    }));
    this.suspicions.set(m.id, timer);
  }

  private onDead(msg: Extract<Message, { t: 'dead' }>): void {
    if (msg.id === this.self.id) {
      // Whoever sent it, and even when it claims to come from us: while we run, we are not dead.
      if (this.self.state !== 'left') this.refute(msg.inc);
      return;
    }
    const m = this.members.get(msg.id);
    if (!m || msg.inc < m.inc || m.state === 'dead' || m.state === 'left') return;
    if (msg.from === msg.id) {
      this.checkAhead(msg.id, msg.inc);
      if (!verifyProof(msg.id, leavePayload(msg), msg.proof)) {
        throw new WireError(`a leave for node ${msg.id} not signed by that node's key: dropped`, 'signature');
      }
      m.proof = msg.proof;
    } else if (!this.claimable(msg, m)) return;
    m.inc = msg.inc;
    this.cancelSuspicion(m.id);
    this.setState(m, msg.from === msg.id ? 'left' : 'dead');
    this.rebroadcast(`m:${m.id}`, msg);
  }

  private rebroadcast(key: string, msg: Message): void {
    this.queue.push(key, msg);
  }

  /**
   * Another member may suspect or declare dead a member, but only at the incarnation that member
   * itself announced (and signed): a claim about a higher one would have to be refuted at a
   * number nobody signed, and one near 2^53 could never be refuted at all. Such a claim is
   * ignored (it may be honest: we may have missed the member's newer alive, which will come),
   * and counted when it is beyond any honest number.
   */
  private claimable(msg: { id: string; inc: number }, m: Member): boolean {
    if (msg.inc <= m.inc) return true;
    this.checkAhead(msg.id, msg.inc);
    return false;
  }

  /**
   * Outranks a claim about this node. Only our own signed alive (`authentic`: from an earlier
   * life) moves the incarnation past the claim; a suspicion or death claimed at a higher number
   * than ours is forged and answered from our own number. A stale claim is answered by sending
   * the current alive again.
   */
  private refute(claimed: number, authentic = false): void {
    // Others could not reach us in time: likely our own fault (Lifeguard).
    this.awareness.apply(1);
    if (claimed >= this.self.inc || authentic) {
      this.self.inc = (authentic ? Math.max(this.self.inc, claimed) : this.self.inc) + 1;
      this.signSelf();
    }
    this.queue.push(`m:${this.self.id}`, this.aliveMsg(this.self));
  }

  private signSelf(): void {
    this.self.proof = this.o.identity.prove(alivePayload(this.self));
  }

  private setState(m: Member, state: MemberState, prev: MemberState | undefined = m.state): void {
    const wasLive = prev === 'alive' || prev === 'suspect';
    const isLive = state === 'alive' || state === 'suspect';
    if (prev !== undefined || m.id === this.self.id) this.live += (isLive ? 1 : 0) - (wasLive ? 1 : 0);
    else if (isLive) this.live++;
    m.state = state;
    m.since = this.o.clock.now();
    if (!isLive && m.id !== this.self.id) this.tree.remove(peerOf(m.id));
    this.o.delegate.notifyMember({ ...m }, prev);
  }

  private cancelSuspicion(id: string): void {
    this.suspicions.get(id)?.cancel();
    this.suspicions.delete(id);
  }

  private aliveMsg(m: Member): Message {
    return { t: 'alive', id: m.id, name: m.name, addr: m.addr, inc: m.inc, proof: m.proof ?? NO_PROOF };
  }

  // ---- packets ----

  /**
   * The last push sent, encoded, and its frame when it went alone and unsealed: the tree pushes
   * each update to its eager peers in turn, mostly in packets of their own, all alike.
   */
  private lastPush: { msg: Message & { t: 'push' }; bytes: Uint8Array; frame: Uint8Array | null } | null = null;

  private encode(m: Message): Uint8Array {
    if (m.t !== 'push') return encodeMessage(m);
    const last = this.lastPush?.msg;
    if (last?.data === m.data && last.from === m.from) return this.lastPush!.bytes;
    this.lastPush = { msg: m, bytes: encodeMessage(m), frame: null };
    return this.lastPush.bytes;
  }

  /** Sends `msgs` with as many queued updates as fit; false when there was nothing to send. */
  private send(addr: string, msgs: Message[]): boolean {
    const own: Uint8Array[] = [];
    let size = 0;
    for (const m of msgs) {
      const b = this.encode(m);
      own.push(b);
      size += b.length;
    }
    const room = this.cfg.packetSize - this.o.wire.overhead - size - 8;
    const queued = room > 32 ? this.queue.takeEncoded(room) : [];
    const all = queued.length ? own.concat(queued) : own;
    if (all.length === 0) return false;
    const alone = all.length === 1 && all[0] === this.lastPush?.bytes && !this.o.wire.encrypted ? this.lastPush : null;
    const frame = alone?.frame ?? this.o.wire.sealParts(all);
    if (alone) alone.frame = frame;
    this.stats.packetsSent++;
    this.stats.messagesSent += all.length;
    this.stats.bytesSent += frame.length;
    let counted = 0;
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      const user = m.t === 'push' ? this.sent('push-user', m.data.length) : 0;
      counted += user + this.sent(m.t, own[i]!.length - user);
    }
    for (let i = own.length; i < all.length; i++) counted += this.sent('membership', all[i]!.length);
    this.sent('frame', frame.length - counted);
    this.o.transport.sendPacket(addr, frame);
    return true;
  }

  /** Counts `bytes` sent as `kind` (stats.sentBy); returns them. */
  private sent(kind: string, bytes: number): number {
    this.stats.sentBy[kind] = (this.stats.sentBy[kind] ?? 0) + bytes;
    return bytes;
  }

  /** Counts a stream frame sent: the delegate's bytes in it apart from the rest. */
  private sentFrame(kind: string, frame: Uint8Array, user = 0): Uint8Array {
    this.stats.bytesSent += frame.length;
    this.sent(`${kind}-user`, user);
    this.sent(kind, frame.length - user);
    return frame;
  }

  /** Counts and reports gossip input dropped (here, by the transport or by the delegate). */
  reject(e: WireError, from: string): void {
    this.stats.rejected[e.reason]++;
    this.o.onReject?.(e, from);
  }

  private openFrame(data: Uint8Array, from: string, rejected?: (e: WireError) => void): Message[] | null {
    this.stats.bytesReceived += data.length;
    try {
      return this.o.wire.open(data);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      this.reject(e, from);
      rejected?.(e);
      return null;
    }
  }

  /** Runs one message's handling; what it refuses (or fails on) is dropped and counted, never thrown. */
  private guard(from: string, what: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.refuse(e, what, from);
    }
  }

  private refuse(e: unknown, what: string, from: string): void {
    // Well-formed but unexpected content must not take the daemon down: drop and count it.
    this.reject(e instanceof WireError ? e : new WireError(`message ${what} could not be handled: ${(e as Error).message}`, 'decode'), from);
  }

  /**
   * A stream we cannot open gets a plain (unsealed) error frame saying why, so a host with the
   * wrong key or none logs the reason instead of a bare "connection closed". It reveals nothing
   * but the fact that the keys differ.
   */
  private refusal(e: WireError): Uint8Array {
    const body = encodeMessages([{ t: 'error', message: `refused by ${this.self.addr}: ${e.message}` }]);
    const out = new Uint8Array(2 + body.length);
    out[0] = WIRE_VERSION;
    out.set(body, 2);
    return out;
  }

  /** Opens a stream answer; an unsealed refusal becomes an Error with the peer's reason. */
  private openAnswer(reply: Uint8Array, addr: string): Message {
    let rejected: WireError | null = null;
    const msgs = this.openFrame(reply, addr, (e) => (rejected = e));
    if (msgs?.[0]) return msgs[0];
    if (reply[0] === WIRE_VERSION && reply[1] === 0) {
      try {
        const [m] = decodeMessages(reply.subarray(2));
        if (m?.t === 'error') throw new Error(m.message);
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
      }
    }
    throw new Error(rejected ? `cannot open the answer of ${addr}: ${(rejected as WireError).message}` : `empty answer from ${addr}`);
  }

  private onPacket(data: Uint8Array, from: string): void {
    this.stats.packetsReceived++;
    const msgs = this.openFrame(data, from);
    if (!msgs || !this.running) return;
    this.stats.messagesReceived += msgs.length;
    // Probes first: their answers are what keeps this node (and others) from being suspected.
    for (const m of msgs) if (isProbe(m)) this.handleGuarded(m, from);
    for (const m of msgs) if (!isProbe(m)) this.handleGuarded(m, from);
  }

  /** handle() under guard(), without a closure per message. */
  private handleGuarded(m: Message, from: string): void {
    try {
      this.handle(m);
    } catch (e) {
      this.refuse(e, m.t, from);
    }
  }

  /** The member an id names: the id itself, or the first 16 hex digits of it (codec.ts senderOut). */
  private resolve(id: string): string | undefined {
    return this.members.resolve(id);
  }

  private isSelf(id: string): boolean {
    return id === this.self.id || id === this.self.id.slice(0, 16);
  }

  /** A message that member sent itself (not relayed): the page's "last contact". */
  private heard(id: string): void {
    const member = this.members.get(this.resolve(id) ?? '');
    if (member) member.contact = this.o.clock.now();
  }

  private handle(m: Message): void {
    switch (m.t) {
      case 'ping':
        this.heard(m.from);
        if (this.isSelf(m.target) && this.self.state !== 'left') this.send(m.fromAddr, [{ t: 'ack', seq: m.seq, from: this.self.id }]);
        return;
      case 'indirect': {
        const seq = ++this.seq;
        this.acks.set(seq, () => this.send(m.fromAddr, [{ t: 'ack', seq: m.seq, from: m.target }]));
        this.o.clock.after(this.cfg.probeTimeout, () => this.acks.delete(seq));
        this.send(m.targetAddr, [{ t: 'ping', seq, target: m.target, from: this.self.id, fromAddr: this.self.addr }]);
        return;
      }
      case 'ack': {
        this.heard(m.from);
        const done = this.acks.get(m.seq);
        this.acks.delete(m.seq);
        done?.();
        return;
      }
      case 'alive':
        return this.onAlive(m);
      case 'suspect':
        return this.onSuspect(m);
      case 'dead':
        return this.onDead(m);
      case 'push':
      case 'ihave':
      case 'graft':
      case 'prune': {
        // Tree peers are named as the messages name them (peerOf): a sender not known yet (its
        // alive is on its way) is a peer all the same, told things once it is known.
        const from = peerName(peerOf(m.from));
        if (this.isSelf(from)) return;
        if (m.t === 'push') return this.tree.onPush(this.updateId(m.data), m.data, from);
        if (m.t === 'ihave') return this.tree.onIHave(m.ids, from);
        if (m.t === 'graft') return this.tree.onGraft(m.ids, from);
        return this.tree.onPrune(from);
      }
      default:
        return;
    }
  }

  /** A pushed update's name, from the delegate; one it cannot name is refused (guard counts it). */
  private updateId(data: Uint8Array): string {
    const id = this.o.delegate.updateId(data);
    if (id === null) throw new WireError('a push that holds no update', 'decode');
    return id;
  }

  private gossip(): void {
    if (this.queue.length === 0) return;
    for (const m of this.pick(this.cfg.gossipNodes, (x) => x.state === 'alive' || x.state === 'suspect')) {
      if (!this.send(m.addr, [])) return;
    }
  }

  // ---- push-pull ----

  private async pushPullRandom(): Promise<void> {
    const [m] = this.pick(1, (x) => x.state === 'alive');
    if (!m) return;
    const who = `${m.name} (${m.addr})`;
    await this.pushPull(m.addr, false).then(
      () => this.o.failures?.ok('push_pull', m.addr, `push-pull with ${who} works again`),
      (e: Error) => this.o.failures?.fail('push_pull', m.addr, `push-pull with ${who} failed (${e.message}): its state and ours may differ until one succeeds; retrying every push-pull interval`),
    );
  }

  /** Serf's reconnect: a member declared dead may be back (a healed partition); ask it. */
  private async reconnect(): Promise<void> {
    const [m] = this.pick(1, (x) => x.state === 'dead');
    if (m) await this.pushPull(m.addr, false).catch(() => undefined);
  }

  private info(m: Member): MemberInfo {
    return { id: m.id, name: m.name, addr: m.addr, inc: m.inc, state: m.state, ...(m.proof ? { proof: m.proof } : {}) };
  }

  /** The members' digest in `buckets` buckets (digest.ts): each member's id, incarnation and state. */
  private digest(buckets: number): Digest {
    const d = new Digest(buckets);
    for (const m of this.members.values()) d.add(m.id, entryHash(`${m.id}|${m.inc}|${m.state}`));
    return d;
  }

  /** The members in the given buckets. */
  private infosIn(set: Set<number>, buckets: number): MemberInfo[] {
    return this.all().filter((m) => set.has(bucketOf(m.id, buckets))).map((m) => this.info(m));
  }

  /** One push-pull leg: sends `msg`, returns the answer (leg `msg.leg + 1`). */
  private async leg(addr: string, msg: Extract<Message, { t: 'pushpull' }>): Promise<Extract<Message, { t: 'pushpull' }>> {
    try {
      const frame = this.sentFrame('pushpull', this.o.wire.seal([msg]), msg.user.length);
      const m = this.openAnswer(await this.o.transport.request(addr, frame, this.cfg.streamTimeout), addr);
      if (m.t === 'error') throw new Error(m.message);
      if (m.t !== 'pushpull' || m.leg !== msg.leg + 1) throw new Error('unexpected answer to push-pull');
      return m;
    } catch (e) {
      this.stats.pushPullFailures++;
      throw e;
    }
  }

  /**
   * Anti-entropy with the member at `addr` (memberlist's push-pull, with digests): this node's
   * bucket hashes and own entry; the other side answers with the buckets that differ and its
   * members in them; this node sends back its members in those buckets that the other side lacks
   * or holds otherwise. A cluster where nothing changed exchanges the hashes only. The delegate's
   * parts ride along the same legs.
   */
  async pushPull(addr: string, join: boolean): Promise<void> {
    const user = this.o.delegate.pushPullRequest(join);
    const mine = this.digest(bucketsFor(this.members.size));
    const answer = await this.leg(addr, { t: 'pushpull', leg: 1, join, digest: mine.hashes, members: [this.info(this.self)], user });
    this.stats.pushPulls++;
    this.mergeMembers(answer.members, addr);
    const differ = indexesIn(answer.digest, mine.buckets) ?? new Set(Array.from({ length: mine.buckets }, (_, i) => i));
    const theirs = new Map(answer.members.map((x) => [x.id, x]));
    const lacking = this.infosIn(differ, mine.buckets).filter((x) => theirs.get(x.id)?.inc !== x.inc || theirs.get(x.id)?.state !== x.state);
    const rest = this.o.delegate.pushPullFinish(answer.user, join);
    if (lacking.length === 0 && !rest) return;
    const last = await this.leg(addr, { t: 'pushpull', leg: 3, join, digest: EMPTY, members: lacking, user: rest ?? EMPTY });
    if (rest) this.o.delegate.pushPullDone(last.user);
  }

  /** The answering side of a push-pull leg (1 or 3). */
  private answerPushPull(m: Extract<Message, { t: 'pushpull' }>, from: string): Uint8Array | null {
    let leg: PushPullLeg;
    let members: MemberInfo[] = [];
    let digest: Uint8Array = EMPTY;
    let user: Uint8Array = EMPTY;
    this.mergeMembers(m.members, from);
    if (m.leg === 1) {
      this.stats.pushPulls++;
      // A digest that is not one: everything differs (one bucket).
      const buckets = bucketCount(m.digest);
      const differ = buckets ? this.digest(buckets).differing(m.digest) : new Set([0]);
      members = this.infosIn(differ, buckets ?? 1);
      digest = indexesOut(differ);
      user = this.o.delegate.pushPullAnswer(m.user, m.join);
      leg = 2;
    } else if (m.leg === 3) {
      if (m.user.length) user = this.o.delegate.pushPullLast(m.user);
      leg = 4;
    } else return null;
    return this.sentFrame('pushpull', this.o.wire.seal([{ t: 'pushpull', leg, join: m.join, digest, members, user }]), user.length);
  }

  private async onRequest(data: Uint8Array, from: string): Promise<Uint8Array | null> {
    let rejected: WireError | null = null;
    const msgs = this.openFrame(data, from, (e) => (rejected = e));
    const m = msgs?.[0];
    if (rejected) return this.sentFrame('error', this.refusal(rejected));
    if (!m || !this.running) return null;
    if (m.t === 'pushpull') return this.answerPushPull(m, from);
    if (m.t === 'userreq') {
      let data: Uint8Array;
      try {
        data = this.o.delegate.handleRequest(m.data);
      } catch (e) {
        return this.sentFrame('error', this.o.wire.seal([{ t: 'error', message: (e as Error).message }]));
      }
      return this.sentFrame('userreq', this.o.wire.seal([{ t: 'userreq', data }]), data.length);
    }
    return null;
  }

  /**
   * A node that knows no other member yet learns the alive members of `list` (by id) from a
   * trusted source (the simulator's converged start): unchecked, not re-gossiped, the delegate not
   * told (nothing it holds changes). The list may be shared by many nodes: each makes a member
   * its own when it first looks at it (MemberTable), and probes them in an order of its own
   * (probeView) until the first round ends.
   */
  learn(list: ReadonlyMap<string, MemberInfo>): void {
    const ids = this.members.learn(list, this.o.clock.now());
    this.live += ids.length - (list.get(this.self.id)?.state === 'alive' ? 1 : 0);
    if (this.probeList.length === 0) {
      this.probeList = ids;
      this.probeView = { offset: Math.floor(this.random() * ids.length), stride: stride(ids.length, this.random()) };
    } else {
      const own = this.ownProbes();
      for (const id of ids) if (id !== this.self.id) own.push(id);
      this.shuffle();
    }
    // A cluster that has been running has its push-pulls at random phases of the interval, not
    // all in the first one of a node that started alone (which made every simulated host push-pull
    // in the same few seconds after a converged start).
    this.pushPullPhase(this.random() * pushPullInterval(this.cfg, this.live));
  }

  /** memberlist's mergeState: a remote's view of a member's death only makes us suspect it. */
  private mergeMembers(list: MemberInfo[], from: string): void {
    for (const x of list) {
      this.guard(from, `member ${x.id}`, () => {
        if (x.state === 'alive') this.onAlive({ t: 'alive', id: x.id, name: x.name, addr: x.addr, inc: x.inc, proof: x.proof ?? NO_PROOF });
        else if (x.state === 'left') this.onDead({ t: 'dead', id: x.id, inc: x.inc, from: x.id, proof: x.proof ?? NO_PROOF });
        else {
          if (!this.members.has(x.id) && x.id !== this.self.id) return;
          this.onSuspect({ t: 'suspect', id: x.id, inc: x.inc, from: this.self.id });
        }
      });
    }
  }

  // ---- helpers ----

  private reap(): void {
    const now = this.o.clock.now();
    for (const m of this.members.values()) {
      if ((m.state === 'dead' || m.state === 'left') && m.id !== this.self.id && now - m.since > this.cfg.deadReap) {
        this.members.delete(m.id);
        this.probeList = this.ownProbes().filter((id) => id !== m.id);
      }
    }
  }

  /** Up to k distinct random members other than this node that pass `ok`. */
  private pick(k: number, ok: (m: Member) => boolean): Member[] {
    const out: Member[] = [];
    const list = this.probeList;
    if (list.length === 0) return out;
    // Random probing into the list, bounded, instead of filtering all n members every time.
    const seen = new Set<string>();
    for (let tries = 0; tries < 3 * list.length && out.length < k && tries < k * 10 + 30; tries++) {
      const id = list[Math.floor(this.random() * list.length)]!;
      if (seen.has(id)) continue;
      seen.add(id);
      const m = this.members.get(id);
      if (m && m.id !== this.self.id && ok(m)) out.push(m);
    }
    if (out.length < k && list.length <= 64) {
      for (const id of list) {
        if (out.length >= k) break;
        const m = this.members.get(id);
        if (m && !seen.has(id) && m.id !== this.self.id && ok(m)) out.push(m);
      }
    }
    return out;
  }

  /** The id probed at place i of the round. */
  private probeAt(i: number): string {
    const v = this.probeView;
    return v ? this.probeList[(v.offset + v.stride * i) % this.probeList.length]! : this.probeList[i]!;
  }

  /** The probe list as this node's own array (copied out of a learned list in the order probed so far). */
  private ownProbes(): string[] {
    if (this.probeView) {
      this.probeList = Array.from(this.probeList, (_, i) => this.probeAt(i));
      this.probeView = null;
    }
    return this.probeList as string[];
  }

  private shuffle(): void {
    const a = this.ownProbes();
    const last = a[a.length - 1];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    // Never probe the same member twice in a row across rounds: in small clusters that would
    // leave another member unprobed for up to three intervals, and failure detection waits on it.
    if (a.length > 1 && a[0] === last) [a[0], a[a.length - 1]] = [a[a.length - 1]!, a[0]!];
  }

  private every(ms: number, fn: () => void, first = ms): void {
    this.loop(() => ms, fn, first);
  }

  /** Runs `fn` every `interval()`; the returned function moves the next run to `delay` from now. */
  private loop(interval: () => number, fn: () => void, first?: number): (delay: number) => void {
    let current: Timer | null = null;
    const schedule = (delay: number): void => {
      const t = this.o.clock.after(delay, () => {
        this.timers.delete(t);
        if (!this.running) return;
        try {
          fn();
        } finally {
          if (this.running) schedule(interval());
        }
      });
      current = t;
      this.timers.add(t);
    };
    schedule(first ?? interval() * (0.5 + this.random() * 0.5));
    return (delay) => {
      if (!current || !this.running) return;
      current.cancel();
      this.timers.delete(current);
      schedule(delay);
    };
  }
}
