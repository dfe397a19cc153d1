import type { Clock, Timer } from './clock.js';

// Dissemination of the delegate's updates as a broadcast tree (Plumtree: Leitão, Pereira and
// Rodrigues, "Epidemic Broadcast Trees"). Each node keeps a few peers it pushes every new update
// to at once (eager) and a few it only tells the update's id (lazy: IHAVE, batched per interval
// into one packet per peer). A copy that arrives a second time was pushed along a redundant edge:
// its sender is pruned (both sides make the edge lazy), so the eager edges settle into a tree and
// each node receives each update about once. An id announced by a lazy peer and not received
// within the graft timeout means the tree is broken above this node (a lost packet, a dead
// member): the announcer is grafted (made eager again) and sends the update. Membership gossip
// (alive/suspect/dead) does not use the tree; it stays on the piggy-back queue.
//
// IHAVE and GRAFT name an update by a short id (shortId: 4 bytes of a hash of its id), as every
// lazy peer is told every id. Two updates whose short ids collide (about one pair in 2^32) look
// alike there only: a host holding one takes an announcement of the other for one it holds, and a
// GRAFT of that short id is answered with the one held. That costs the other update only where
// its push was lost as well, until anti-entropy (push-pull) or the owner's next version repairs
// it. Pushes are told apart by the whole id: a push is never taken for another update.
//
// Everything here is pure: peers are member ids, time and the choice of peers come from the
// host, and sending is the host's. Every input is bounded: ids per IHAVE or GRAFT, ids remembered, ids
// waited for, peers kept; an id nobody holds costs one bounded entry and a GRAFT that is answered
// with nothing.

export interface TreeConfig {
  /** Peers pushed to at start (and when a peer dies, its replacement). */
  eagerPeers: number;
  /** Peers only told the ids, at start. */
  lazyPeers: number;
  /** IHAVEs are batched over this long (ms). */
  ihaveInterval: number;
  /** An announced id not received within this long (ms) is grafted from its announcer. */
  graftTimeout: number;
  /** How long (ms) a received id is remembered, and its bytes kept to answer GRAFTs. */
  keep: number;
}

export const TREE: TreeConfig = { eagerPeers: 3, lazyPeers: 2, ihaveInterval: 500, graftTimeout: 250, keep: 10_000 };

/** Ids one IHAVE or GRAFT may carry (the codec refuses more). */
export const MAX_IDS = 64;
/** Bytes of a short id on the wire (big-endian). */
export const SHORT_ID_BYTES = 4;

/**
 * The id IHAVE and GRAFT name an update by: FNV-1a (32 bits) of its id, as a signed 32-bit integer
 * (a small integer to V8: no string per announced id, nothing to hash in a look-up).
 */
export function shortId(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h | 0;
}
/** Ids remembered at most (within `keep`), ids waited for, announcers kept per missing id. */
const MAX_SEEN = 20_000;
const MAX_MISSING = 4096;
const ANNOUNCERS = 4;
/** GRAFTs sent for one missing id at most, one per graft timeout. */
const GRAFTS = 4;
/** Eager peers a host does not prune (see duplicate()). */
const MIN_EAGER = 2;
/** Ids waiting to be announced at most; beyond that the oldest go (anti-entropy repairs). */
const MAX_ANNOUNCE = 1024;

/** What the tree needs of the membership. */
export interface TreeHost {
  clock: Clock;
  /** Up to k random live members other than this node and not in `skip`. */
  sample(k: number, skip: (id: string) => boolean): string[];
  /** Hands an update to the delegate; true when it was news there. */
  deliver(data: Uint8Array, from: string): boolean;
  push(to: string, id: string, data: Uint8Array): void;
  ihave(to: string, ids: number[]): void;
  graft(to: string, ids: number[]): void;
  prune(to: string): void;
}

export interface TreeStats {
  /** Updates received by eager push (copies, duplicates included) and how many were news. */
  received: number;
  fresh: number;
  duplicates: number;
  pushesSent: number;
  ihavesSent: number;
  ihaveIds: number;
  graftsSent: number;
  prunesSent: number;
}

interface Seen {
  /** Its id. */
  id: string;
  at: number;
  /** The first peer it came from (not pushed back to it). */
  from?: string;
  /** The bytes passed on, once this node forwarded it (GRAFT answers). */
  data?: Uint8Array;
  /**
   * Peers known to hold it already (they announced it, or pushed a copy): not announced to. Kept
   * until it was passed on and announced (`data` set, `due` back to 0).
   */
  holders?: string[];
  /** Entries of it in `announce`, the IHAVE rounds still to come. */
  due: number;
  /** Its short id (shortId). */
  short: number;
}

/** Holders remembered per update. */
const HOLDERS = 8;

interface Missing {
  announcers: string[];
  timer: Timer | null;
  grafts: number;
}

export class Tree {
  readonly eager = new Set<string>();
  readonly lazy = new Set<string>();
  readonly stats: TreeStats = { received: 0, fresh: 0, duplicates: 0, pushesSent: 0, ihavesSent: 0, ihaveIds: 0, graftsSent: 0, prunesSent: 0 };
  private readonly seen = new Map<string, Seen>();
  /** The updates remembered by their short ids (the last one, on a collision). */
  private readonly byShort = new Map<number, Seen>();
  /** Short ids announced and not received yet. */
  private readonly missing = new Map<number, Missing>();
  /** Updates to announce at the next IHAVE round (`again`: a second round's). */
  private announce: Array<{ seen: Seen; again?: boolean }> = [];
  /** Set while the delegate handles an update from this peer (its forwards skip it). */
  private delivering: string | undefined;

  constructor(
    private readonly host: TreeHost,
    private readonly cfg: TreeConfig = TREE,
  ) {}

  /**
   * Peers kept in all (eager and lazy): twice the start sizes, room for the peers that chose this
   * node. Pruning and grafting only move a peer between the sets; nothing is evicted, so a link
   * both sides know stays known to both.
   */
  private get maxPeers(): number {
    return 2 * (this.cfg.eagerPeers + this.cfg.lazyPeers);
  }

  private known(id: string): boolean {
    return this.eager.has(id) || this.lazy.has(id);
  }

  /** Makes `id` eager: moved from lazy, or added while there is room. */
  private toEager(id: string): void {
    if (this.lazy.delete(id) || (!this.eager.has(id) && this.eager.size + this.lazy.size < this.maxPeers)) this.eager.add(id);
  }

  /** Fills the peer sets from the membership up to their start sizes (new peers are eager). */
  refill(): void {
    const want = this.cfg.eagerPeers + this.cfg.lazyPeers - this.eager.size - this.lazy.size;
    if (want <= 0) return;
    const eagerWant = Math.max(0, this.cfg.eagerPeers - this.eager.size);
    const picked = this.host.sample(want, (id) => this.known(id));
    picked.forEach((id, i) => (i < eagerWant ? this.eager : this.lazy).add(id));
  }

  /** A member that died or left: out of both sets, replaced from the membership. */
  remove(id: string): void {
    const was = this.eager.delete(id) || this.lazy.delete(id);
    for (const m of this.missing.values()) {
      const i = m.announcers.indexOf(id);
      if (i >= 0) m.announcers.splice(i, 1);
    }
    if (was) this.refill();
  }

  /**
   * An update this node passes on (its own, or one the delegate applied): pushed to the eager
   * peers but the one it came from, announced to the lazy ones. Once per id.
   */
  broadcast(id: string, data: Uint8Array): void {
    const now = this.host.clock.now();
    let s = this.seen.get(id);
    if (s?.data) return;
    this.refill();
    if (!s) s = this.remember(id, now, this.delivering);
    s.data = data;
    this.received(s);
    for (const p of this.eager) {
      if (p === s.from) continue;
      this.stats.pushesSent++;
      this.host.push(p, id, data);
    }
    if (this.announce.length >= MAX_ANNOUNCE) this.announced(this.announce.shift()!.seen);
    s.due++;
    this.announce.push({ seen: s });
  }

  /** An eager push from `from`. */
  onPush(id: string, data: Uint8Array, from: string): void {
    this.stats.received++;
    const known = this.seen.get(id);
    if (known) {
      this.holds(known, from);
      return this.duplicate(from);
    }
    this.received(this.remember(id, this.host.clock.now(), from));
    const prev = this.delivering;
    this.delivering = from;
    let fresh: boolean;
    try {
      fresh = this.host.deliver(data, from);
    } finally {
      this.delivering = prev;
    }
    if (!fresh) return this.duplicate(from);
    this.stats.fresh++;
    // The edge it came over is a tree edge: keep pushing that way too.
    this.toEager(from);
  }

  private duplicate(from: string): void {
    this.stats.duplicates++;
    // Updates of different owners cross at once: each would prune one of two alternative paths
    // and together they split the tree (then every update needs grafts). A host keeps its last
    // MIN_EAGER eager peers: a few more copies, half the grafts and prunes (bench/RESULTS.md).
    if (this.eager.has(from) && this.eager.size <= MIN_EAGER) return;
    if (this.eager.delete(from)) this.lazy.add(from);
    this.stats.prunesSent++;
    this.host.prune(from);
  }

  onPrune(from: string): void {
    if (this.eager.delete(from)) this.lazy.add(from);
  }

  /** Announced (short) ids; the ones not received are waited for, then grafted. */
  onIHave(ids: number[], from: string): void {
    // A peer that announces to us is worth announcing to (lazy links both ways).
    if (!this.known(from) && this.eager.size + this.lazy.size < this.maxPeers) this.lazy.add(from);
    const n = Math.min(ids.length, MAX_IDS);
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      const known = this.byShort.get(id);
      if (known) {
        this.holds(known, from);
        continue;
      }
      let m = this.missing.get(id);
      if (!m) {
        if (this.missing.size >= MAX_MISSING) continue;
        this.missing.set(id, (m = { announcers: [], timer: null, grafts: 0 }));
      }
      if (m.announcers.length < ANNOUNCERS && !m.announcers.includes(from)) m.announcers.push(from);
      if (!m.timer) m.timer = this.host.clock.after(this.cfg.graftTimeout, () => this.expire(id));
    }
  }

  /** A wait ran out: graft the next announcer, and wait again. */
  private expire(id: number): void {
    const m = this.missing.get(id);
    if (!m) return;
    m.timer = null;
    // The announcers in turn (the only one, again, in a small cluster: the GRAFT or its answer may be lost too).
    const peer = m.grafts < GRAFTS ? m.announcers[m.grafts++ % m.announcers.length] : undefined;
    if (peer === undefined) return void this.missing.delete(id);
    this.toEager(peer);
    this.stats.graftsSent++;
    this.host.graft(peer, [id]);
    m.timer = this.host.clock.after(this.cfg.graftTimeout, () => this.expire(id));
  }

  /** A peer missed (short) ids: it is eager again, and gets those held here; unknown ids get nothing. */
  onGraft(ids: number[], from: string): void {
    this.toEager(from);
    const n = Math.min(ids.length, MAX_IDS);
    for (let i = 0; i < n; i++) {
      const s = this.byShort.get(ids[i]!);
      if (!s?.data) continue;
      this.stats.pushesSent++;
      this.host.push(from, s.id, s.data);
    }
  }

  /**
   * One IHAVE round: the ids passed on since the last, to each lazy peer, MAX_IDS per packet. A
   * host with fewer lazy peers than lazyPeers (a small cluster: everyone is eager) announces to
   * its eager peers too, so that a lost push is still grafted: packets, unlike the paper's TCP
   * links, get lost. There an id has one or two announcers, not several: each announces it in
   * two rounds, as the first IHAVE may be lost as well.
   */
  tick(): void {
    this.expireSeen();
    this.refill();
    if (this.announce.length === 0) return;
    const batch = this.announce;
    const small = this.lazy.size < this.cfg.lazyPeers;
    this.announce = small ? batch.filter((a) => !a.again).map((a) => ({ ...a, again: true })) : [];
    for (const a of this.announce) a.seen.due++;
    const to = small ? [...this.lazy, ...this.eager] : this.lazy;
    // Each update looked up once for all the peers (still remembered: not forgotten since).
    const held: Array<Seen | undefined> = batch.map((a) => this.seen.get(a.seen.id));
    for (const p of to) {
      const ids: number[] = [];
      for (let i = 0; i < batch.length; i++) {
        const s = held[i];
        if (s && batch[i]!.seen.from !== p && !s.holders?.includes(p)) ids.push(s.short);
      }
      for (let i = 0; i < ids.length; i += MAX_IDS) {
        const part = ids.slice(i, i + MAX_IDS);
        this.stats.ihavesSent++;
        this.stats.ihaveIds += part.length;
        this.host.ihave(p, part);
      }
    }
    for (const a of batch) this.announced(a.seen);
  }

  /** An entry of `s` (passed on) left `announce`: once none is left, who holds it no longer matters. */
  private announced(s: Seen): void {
    if (--s.due === 0) s.holders = undefined;
  }

  /** Ids remembered (tests). */
  get remembered(): number {
    return this.seen.size;
  }

  /** Ids waited for (tests). */
  get waiting(): number {
    return this.missing.size;
  }

  private holds(s: Seen, peer: string): void {
    // Once passed on and announced in every round due, who holds it no longer matters.
    if ((s.data !== undefined && s.due === 0) || peer === s.from) return;
    // Copied on append, each of its exact size (an array pushed to reserves room for 17): a host
    // keeps one per update it received and has not finished announcing.
    if (!s.holders) s.holders = [peer];
    else if (s.holders.length < HOLDERS && !s.holders.includes(peer)) s.holders = s.holders.concat(peer);
  }

  private received(s: Seen): void {
    const m = this.missing.get(s.short);
    if (!m) return;
    m.timer?.cancel();
    this.missing.delete(s.short);
  }

  private remember(id: string, at: number, from: string | undefined): Seen {
    if (this.seen.size >= MAX_SEEN) this.forget(this.seen.keys().next().value!);
    const s: Seen = { id, at, from, short: shortId(id), due: 0 };
    this.seen.set(id, s);
    this.byShort.set(s.short, s);
    return s;
  }

  private forget(id: string): void {
    const s = this.seen.get(id);
    this.seen.delete(id);
    if (s && this.byShort.get(s.short) === s) this.byShort.delete(s.short);
  }

  private expireSeen(): void {
    const old = this.host.clock.now() - this.cfg.keep;
    for (const [id, s] of this.seen) {
      if (s.at > old) break;
      this.forget(id);
    }
  }
}
