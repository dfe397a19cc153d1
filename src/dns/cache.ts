// A bounded cache of upstream responses that respects TTLs (RFC 1035 section 7.4) and caches negative
// answers for the SOA minimum (RFC 2308). Entries are raw packets: a hit copies the bytes, puts
// the client's id and question spelling back, and lowers every TTL by the time spent in cache —
// no decode and re-encode on the hot path.
//
// Serve-stale (RFC 8767): with a stale window, an expired entry is kept that much longer, and
// `stale()` hands it out (every TTL set to STALE_TTL) when no upstream could answer. Stale entries
// count towards maxEntries like fresh ones, so the cache stays bounded.

/** The TTL of a stale answer (RFC 8767 section 4 recommends 30 s). */
export const STALE_TTL = 30;

const MAX_TTL = 86_400;

interface Entry {
  packet: Buffer;
  storedAt: number;
  expires: number;
  /** Byte offsets of the TTL field of every record except OPT, and their original values. */
  ttlAt: number[];
  ttls: number[];
}

export interface CacheStats {
  hits: number;
  misses: number;
  size: number;
  staleHits: number;
}

export class ResponseCache {
  private readonly entries = new Map<string, Entry>();
  hits = 0;
  misses = 0;
  /** Entries dropped to stay within the bound. */
  evictions = 0;
  /** Answers served from expired entries. */
  staleHits = 0;

  constructor(
    private maxEntries: number,
    private readonly now: () => number = () => performance.now(),
    /** How long past its expiry an entry may still be served by `stale()` (0: never). */
    private staleMs = 0,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  resize(maxEntries: number, staleMs = this.staleMs): void {
    this.maxEntries = maxEntries;
    this.staleMs = staleMs;
    this.evict();
  }

  clear(): void {
    this.entries.clear();
  }

  /** Whether `key` holds an unexpired response; unlike get(), not counted and no recency change. */
  has(key: string): boolean {
    const e = this.entries.get(key);
    return e !== undefined && e.expires > this.now();
  }

  /** A copy of the cached response for `key` with `id` and aged TTLs, or undefined. */
  get(key: string, id: number, question?: Buffer): Buffer | undefined {
    const e = this.entries.get(key);
    const now = this.now();
    if (!e || e.expires <= now) {
      if (e && e.expires + this.staleMs <= now) this.entries.delete(key);
      this.misses++;
      return undefined;
    }
    this.hits++;
    const aged = Math.floor((now - e.storedAt) / 1000);
    return this.copy(key, e, id, question, (ttl) => Math.max(0, ttl - aged));
  }

  /**
   * An expired entry still inside the stale window, with `id` and every TTL STALE_TTL; undefined
   * when there is none (or it is still fresh: `get` serves those).
   */
  stale(key: string, id: number, question?: Buffer): Buffer | undefined {
    const e = this.entries.get(key);
    const now = this.now();
    if (!e || e.expires > now) return undefined;
    if (e.expires + this.staleMs <= now) {
      this.entries.delete(key);
      return undefined;
    }
    this.staleHits++;
    return this.copy(key, e, id, question, () => STALE_TTL);
  }

  private copy(key: string, e: Entry, id: number, question: Buffer | undefined, ttl: (original: number) => number): Buffer {
    // Refresh recency: Map iteration order is insertion order, the oldest is evicted first.
    this.entries.delete(key);
    this.entries.set(key, e);
    const out = Buffer.from(e.packet);
    out.writeUInt16BE(id, 0);
    if (question) question.copy(out, 12);
    for (let i = 0; i < e.ttlAt.length; i++) out.writeUInt32BE(ttl(e.ttls[i]!), e.ttlAt[i]!);
    return out;
  }

  /** Stores a response if it is cacheable; returns the TTL used (0: not stored). */
  set(key: string, packet: Buffer): number {
    if (this.maxEntries <= 0) return 0;
    const info = inspect(packet);
    if (!info || info.ttl <= 0) return 0;
    const now = this.now();
    this.entries.delete(key);
    this.entries.set(key, { packet: Buffer.from(packet), storedAt: now, expires: now + info.ttl * 1000, ttlAt: info.ttlAt, ttls: info.ttls });
    this.evict();
    return info.ttl;
  }

  private evict(): void {
    while (this.entries.size > this.maxEntries) {
      this.entries.delete(this.entries.keys().next().value as string);
      this.evictions++;
    }
  }
}

interface Info {
  ttl: number;
  ttlAt: number[];
  ttls: number[];
}

/**
 * How long a response may be cached, and where its TTLs are; null when it must not be cached
 * (truncated, server failure, refused, unparseable).
 */
export function inspect(buf: Buffer): Info | null {
  if (buf.length < 12) return null;
  const flags = buf.readUInt16BE(2);
  const rcode = flags & 0xf;
  if (flags & 0x0200 || (rcode !== 0 && rcode !== 3)) return null;
  const counts = [buf.readUInt16BE(4), buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)];
  let off = 12;
  for (let i = 0; i < counts[0]!; i++) {
    off = skipName(buf, off);
    if (off < 0) return null;
    off += 4;
  }
  const ttlAt: number[] = [];
  const ttls: number[] = [];
  let answerTtl = Infinity;
  let negativeTtl = Infinity;
  for (let section = 1; section <= 3; section++) {
    for (let i = 0; i < counts[section]!; i++) {
      off = skipName(buf, off);
      if (off < 0 || off + 10 > buf.length) return null;
      const type = buf.readUInt16BE(off);
      const ttl = Math.min(buf.readUInt32BE(off + 4), MAX_TTL);
      const rdlen = buf.readUInt16BE(off + 8);
      if (off + 10 + rdlen > buf.length) return null;
      if (type !== 41) {
        ttlAt.push(off + 4);
        ttls.push(ttl);
        if (section === 1) answerTtl = Math.min(answerTtl, ttl);
        if (section === 2 && type === 6) {
          // SOA: the negative TTL is min(SOA record TTL, SOA MINIMUM) (RFC 2308 section 5).
          const minimum = buf.readUInt32BE(off + 10 + rdlen - 4);
          negativeTtl = Math.min(ttl, minimum);
        }
      }
      off += 10 + rdlen;
    }
  }
  const positive = rcode === 0 && counts[1]! > 0;
  const ttl = positive ? answerTtl : negativeTtl;
  return Number.isFinite(ttl) ? { ttl, ttlAt, ttls } : null;
}

/** Offset just past the name at `off`, or -1 when it is malformed. */
export function skipName(buf: Buffer, off: number): number {
  for (let guard = 0; guard < 128; guard++) {
    if (off >= buf.length) return -1;
    const len = buf[off]!;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2 <= buf.length ? off + 2 : -1;
    if (len & 0xc0) return -1;
    off += len + 1;
  }
  return -1;
}
