import { createHash } from 'node:crypto';
import { addressAt, type Cidr } from '../net/cidr.js';

// docs/architecture.md#load-balancer: every host must give a service the same VIP from the same registry, with no
// coordination. The VIP is a pure function of the set of service keys: each key hashes to a home
// slot in the service range; when several keys share a slot, the smallest key (byte order) keeps
// it and the others probe forward, in sorted key order. Insertion order plays no part, so hosts
// that learnt the services in different orders agree. A new service moves an existing VIP only
// when it hashes onto that VIP's home slot and sorts before it.

/** Offsets below this are kept for the daemon (10: the cluster DNS address). */
export const RESERVED_LOW = 16;

/** Number of slots VIPs may use: the range minus the reserved low offsets and the last address. */
export function vipSlots(range: Cidr): number {
  const hostBits = range.bytes.length * 8 - range.prefix;
  // IPv6 ranges are huge; 2^24 slots keep the arithmetic in safe integers and are plenty.
  const size = 2 ** Math.min(hostBits, 24);
  return Math.max(0, size - RESERVED_LOW - 1);
}

export function homeSlot(key: string, slots: number): number {
  const h = createHash('sha256').update(key).digest();
  return h.readUInt32BE(0) % slots;
}

/**
 * VIPs for `keys` (`<ns>/<svc>`) inside `range`. Keys that do not fit (range full) get none;
 * which ones is deterministic too (the largest keys).
 */
export function allocateVips(keys: Iterable<string>, range: Cidr): Map<string, string> {
  const slots = vipSlots(range);
  const out = new Map<string, string>();
  if (slots <= 0) return out;
  const sorted = [...new Set(keys)].sort(byteOrder);
  const taken = new Uint8Array(slots);
  // Pass 1: each home slot goes to its smallest key; the others wait, in sorted order.
  const waiting: Array<[string, number]> = [];
  for (const key of sorted) {
    const home = homeSlot(key, slots);
    if (taken[home] === 0) {
      taken[home] = 1;
      out.set(key, addressAt(range, RESERVED_LOW + home));
    } else {
      waiting.push([key, home]);
    }
  }
  // Pass 2: losers probe forward from their home slot (linear probing, wrapping).
  let free = slots - out.size;
  for (const [key, home] of waiting) {
    if (free === 0) break;
    let s = home;
    while (taken[s] !== 0) s = (s + 1) % slots;
    taken[s] = 1;
    free--;
    out.set(key, addressAt(range, RESERVED_LOW + s));
  }
  return out;
}

const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
