import { createHash } from 'node:crypto';

// Bucketed digests for anti-entropy (pure: no I/O). Instead of listing every entry (a member at
// an incarnation, a node state at a version), a push-pull first sends one 8-byte hash per
// bucket: entries fall in buckets by a hash of their id, and a bucket's hash is the XOR of its
// entries' hashes. Two sides holding the same entries send each other nothing more; where a
// bucket differs, only its entries are exchanged. The hashes only find differences: whatever
// then moves is still checked (signatures) by the receiver, so a wrong hash costs an exchange, no
// more.

/** Bytes of one bucket's hash. */
export const HASH = 8;
/** Most buckets a digest may have (bounds what a peer's digest makes this node compute and send). */
export const MAX_BUCKETS = 4096;

/** Buckets for `n` entries: about four entries each, a power of two. */
export function bucketsFor(n: number): number {
  let b = 1;
  while (b * 4 < n && b < MAX_BUCKETS) b *= 2;
  return b;
}

/** The bucket of id `id` (FNV-1a of its characters). */
export function bucketOf(id: string, buckets: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (h >>> 0) & (buckets - 1);
}

/** Entry hashes computed, shared by every digest in the process (the simulator's hosts hash the same entries); the oldest go first. */
const CACHE = 1 << 16;
const cache = new Map<string, Uint8Array>();

/** The hash an entry adds to its bucket: the first 8 bytes of SHA-256 of what identifies its content. */
export function entryHash(key: string): Uint8Array {
  let h = cache.get(key);
  if (!h) {
    h = new Uint8Array(createHash('sha256').update(key).digest().subarray(0, HASH));
    if (cache.size >= CACHE) cache.delete(cache.keys().next().value!);
    cache.set(key, h);
  }
  return h;
}

/** Whether `b` is a digest (a power of two of 8-byte hashes, at most MAX_BUCKETS). */
export function bucketCount(b: Uint8Array): number | null {
  const n = b.length / HASH;
  return Number.isInteger(n) && n >= 1 && n <= MAX_BUCKETS && (n & (n - 1)) === 0 ? n : null;
}

export class Digest {
  readonly hashes: Uint8Array;

  constructor(readonly buckets: number) {
    this.hashes = new Uint8Array(buckets * HASH);
  }

  add(id: string, h: Uint8Array): void {
    const at = bucketOf(id, this.buckets) * HASH;
    for (let i = 0; i < HASH; i++) this.hashes[at + i]! ^= h[i]!;
  }

  /** The buckets where `remote` (a digest of as many buckets) differs from this one. */
  differing(remote: Uint8Array): Set<number> {
    const out = new Set<number>();
    for (let b = 0; b < this.buckets; b++) {
      for (let i = b * HASH; i < (b + 1) * HASH; i++) {
        if (remote[i] !== this.hashes[i]) {
          out.add(b);
          break;
        }
      }
    }
    return out;
  }
}

/** A set of bucket numbers as bytes (two each, big-endian). */
export function indexesOut(set: Iterable<number>): Uint8Array {
  const list = [...set];
  const out = new Uint8Array(2 * list.length);
  list.forEach((b, i) => ((out[2 * i] = b >> 8), (out[2 * i + 1] = b & 255)));
  return out;
}

/** The bucket numbers `indexesOut` wrote, each below `buckets`; null when `b` is not that. */
export function indexesIn(b: Uint8Array, buckets: number): Set<number> | null {
  if (b.length % 2 !== 0 || b.length / 2 > buckets) return null;
  const out = new Set<number>();
  for (let i = 0; i < b.length; i += 2) {
    const x = (b[i]! << 8) | b[i + 1]!;
    if (x >= buckets) return null;
    out.add(x);
  }
  return out;
}
