import { encodeMessage, type Message } from './codec.js';

// Updates waiting to be piggy-backed (memberlist's TransmitLimitedQueue): each is sent at most
// `limit(n)` times, the least-sent first, and a newer update about the same subject (a member, a
// node's registry state) replaces the older one instead of queueing behind it. Entries sit in
// buckets by transmit count, so taking a packet's worth costs what it takes, not a sort of the
// whole queue (after a partition heals, queues hold thousands of updates).

interface Entry {
  key: string;
  msg: Message;
  /** The message encoded once, when queued. */
  bytes: Uint8Array;
  size: number;
  transmits: number;
}

/** Entries in a row that do not fit after which a packet is considered full. */
const MAX_MISSES = 64;

export class BroadcastQueue {
  private readonly byKey = new Map<string, Entry>();
  /** buckets[k]: entries sent k times, in insertion order. */
  private readonly buckets: Array<Map<string, Entry>> = [];

  constructor(private readonly limit: () => number) {}

  get length(): number {
    return this.byKey.size;
  }

  /** Queues `msg`, replacing any queued update with the same key. */
  push(key: string, msg: Message): void {
    const old = this.byKey.get(key);
    if (old) this.buckets[old.transmits]?.delete(key);
    const bytes = encodeMessage(msg);
    const e: Entry = { key, msg, bytes, size: bytes.length, transmits: 0 };
    this.byKey.set(key, e);
    this.bucket(0).set(key, e);
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
      if (!bucket) continue;
      for (const e of bucket.values()) {
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
      this.buckets[e.transmits]!.delete(e.key);
      if (++e.transmits >= limit) this.byKey.delete(e.key);
      else this.bucket(e.transmits).set(e.key, e);
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

  private bucket(k: number): Map<string, Entry> {
    let b = this.buckets[k];
    if (!b) this.buckets[k] = b = new Map();
    return b;
  }
}
