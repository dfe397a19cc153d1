import { messageSize, type Message } from './codec.js';

// Updates waiting to be piggy-backed (memberlist's TransmitLimitedQueue): each is sent at most
// `limit(n)` times, the least-sent first, and a newer update about the same subject (a member, a
// node's registry state) replaces the older one instead of queueing behind it.

interface Entry {
  key: string;
  msg: Message;
  size: number;
  transmits: number;
  /** Insertion order breaks ties: newer first, like memberlist. */
  id: number;
}

export class BroadcastQueue {
  private readonly entries = new Map<string, Entry>();
  private nextId = 0;

  constructor(private readonly limit: () => number) {}

  get length(): number {
    return this.entries.size;
  }

  /** Queues `msg`, replacing any queued update with the same key. */
  push(key: string, msg: Message): void {
    this.entries.set(key, { key, msg, size: messageSize(msg), transmits: 0, id: this.nextId++ });
  }

  /** Updates that fit in `bytes` (each costs its size plus `overhead`), counted as sent once. */
  take(bytes: number, overhead = 1): Message[] {
    if (this.entries.size === 0) return [];
    const limit = this.limit();
    const sorted = [...this.entries.values()].sort((a, b) => a.transmits - b.transmits || b.id - a.id);
    const out: Message[] = [];
    let left = bytes;
    for (const e of sorted) {
      if (e.size + overhead > left) continue;
      left -= e.size + overhead;
      out.push(e.msg);
      if (++e.transmits >= limit) this.entries.delete(e.key);
      if (left < 16) break;
    }
    return out;
  }

  /** Transmit counts by key (tests and metrics). */
  transmits(key: string): number | undefined {
    return this.entries.get(key)?.transmits;
  }

  clear(): void {
    this.entries.clear();
  }
}
