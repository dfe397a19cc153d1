import { encodeMessage, type Message } from './codec.js';

// Membership updates waiting to be piggy-backed (memberlist's TransmitLimitedQueue): each is sent
// at most `limit(n)` times, the least-sent first, and a newer update about the same member
// replaces the older one instead of queueing behind it (registry updates travel on the broadcast
// tree, plumtree.ts). Entries sit in buckets by transmit count, each a linked list in insertion
// order, so taking a packet's worth costs what it takes, not a sort or a walk over the whole queue
// (after a partition heals, queues hold thousands of updates). Lists rather than Maps: a Map used as a FIFO keeps the deleted
// entries at its front until it rehashes, and every walk from the front steps over them again.

interface Entry {
  key: string;
  msg: Message;
  /** The message encoded once, when queued. */
  bytes: Uint8Array;
  size: number;
  transmits: number;
  prev: Entry | null;
  next: Entry | null;
}

class Bucket {
  head: Entry | null = null;
  tail: Entry | null = null;

  append(e: Entry): void {
    e.prev = this.tail;
    e.next = null;
    if (this.tail) this.tail.next = e;
    else this.head = e;
    this.tail = e;
  }

  remove(e: Entry): void {
    if (e.prev) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = e.next = null;
  }
}

/** Entries in a row that do not fit after which a packet is considered full. */
const MAX_MISSES = 64;

export class BroadcastQueue {
  private readonly byKey = new Map<string, Entry>();
  /** buckets[k]: entries sent k times, in insertion order. */
  private readonly buckets: Bucket[] = [];

  constructor(private readonly limit: () => number) {}

  get length(): number {
    return this.byKey.size;
  }

  /** Queues `msg`, replacing any queued update with the same key. */
  push(key: string, msg: Message): void {
    const old = this.byKey.get(key);
    if (old) this.buckets[old.transmits]!.remove(old);
    const bytes = encodeMessage(msg);
    const e: Entry = { key, msg, bytes, size: bytes.length, transmits: 0, prev: null, next: null };
    this.byKey.set(key, e);
    this.bucket(0).append(e);
  }

  /** Updates that fit in `bytes` (each costs its size plus `overhead`), counted as sent once. */
  take(bytes: number, overhead = 1): Message[] {
    return this.takeEntries(bytes, overhead).map((e) => e.msg);
  }

  /** As take(), the updates' encoded bytes (for encodeBody). */
  takeEncoded(bytes: number, overhead = 1): Uint8Array[] {
    return this.takeEntries(bytes, overhead).map((e) => e.bytes);
  }

  private takeEntries(bytes: number, overhead: number): Entry[] {
    if (this.byKey.size === 0) return [];
    const limit = this.limit();
    const out: Entry[] = [];
    let left = bytes;
    let misses = 0;
    outer: for (const bucket of this.buckets) {
      for (let e = bucket?.head ?? null; e; e = e.next) {
        if (left < 16) break outer;
        if (e.size + overhead > left) {
          // A nearly full packet does not look through thousands of queued updates for a small one.
          if (++misses >= MAX_MISSES) break outer;
          continue;
        }
        misses = 0;
        left -= e.size + overhead;
        out.push(e);
      }
    }
    // Moved after the scan, so an entry is never taken twice in one packet.
    for (const e of out) {
      this.buckets[e.transmits]!.remove(e);
      if (++e.transmits >= limit) this.byKey.delete(e.key);
      else this.bucket(e.transmits).append(e);
    }
    return out;
  }

  /** Transmit counts by key (tests and metrics). */
  transmits(key: string): number | undefined {
    return this.byKey.get(key)?.transmits;
  }

  clear(): void {
    this.byKey.clear();
    this.buckets.length = 0;
  }

  private bucket(k: number): Bucket {
    let b = this.buckets[k];
    if (!b) this.buckets[k] = b = new Bucket();
    return b;
  }
}
