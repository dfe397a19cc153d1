import { Counter, Gauge, type Registry as PromRegistry } from 'prom-client';
import { inspect } from '../dns/cache.js';
import type { CacheSink } from '../dns/forwarder.js';
import type { Addon } from './index.js';

// The native path's copy of the forwarding cache (native/src/cache.rs). Every upstream answer
// the JS cache keeps is installed there too, keyed as the UDP threads key a query; they answer
// repeats of it for clients that may recurse, and hand JS what they do not have (a miss, an
// expired entry, a reply too big for the client). Answers the forward-allow policy refused,
// truncated ones and failures never reach the JS cache, so never this one either.

/** Key flags, as cache.rs: the query had an OPT record, with the DO bit; checking disabled. */
const KEY_EDNS = 1;
const KEY_DO = 2;
const KEY_CD = 4;

/** Letters, digits, '-' and '_': the names the native path answers (answer.rs scan_name). */
function plain(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x5f;
}

/**
 * The key the UDP threads look `query` up by — lower-case wire name, qtype, key flags — or null
 * when they never would (not one plain IN question, with at most an OPT record after it), so the
 * answer is kept in the JS cache only.
 */
export function nativeCacheKey(query: Buffer): Buffer | null {
  if (query.length < 12 || query.readUInt16BE(4) !== 1 || query.readUInt16BE(6) !== 0 || query.readUInt16BE(8) !== 0) return null;
  const key: number[] = [];
  let i = 12;
  for (;;) {
    const len = query[i];
    if (len === undefined) return null;
    if (len === 0) break;
    if (len > 63 || i + 1 + len >= query.length || i - 12 + 1 + len >= 255) return null;
    key.push(len);
    for (let j = i + 1; j <= i + len; j++) {
      const c = query[j]!;
      if (!plain(c)) return null;
      key.push(c >= 0x41 && c <= 0x5a ? c + 0x20 : c);
    }
    i += len + 1;
  }
  const qend = i + 5;
  if (query.length < qend || query.readUInt16BE(i + 3) !== 1) return null;
  key.push(0, query[i + 1]!, query[i + 2]!);
  let flags = query[3]! & 0x10 ? KEY_CD : 0;
  const ar = query.readUInt16BE(10);
  if (ar === 1) {
    if (query.length < qend + 11 || query[qend] !== 0 || query.readUInt16BE(qend + 1) !== 41) return null;
    flags |= KEY_EDNS | (query[qend + 7]! & 0x80 ? KEY_DO : 0);
  } else if (ar !== 0) {
    return null;
  }
  key.push(flags);
  return Buffer.from(key);
}

/** What the native cache did: answers by [type, rcode], misses, evictions, entries now. */
export interface NativeCacheCounters {
  answers: Array<[string, string, number]>;
  misses: number;
  evictions: number;
  entries: number;
}

const TYPES = ['A', 'AAAA', 'SRV', 'PTR', 'SOA', 'NS', 'TXT', 'OTHER'];
const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

export class NativeCache implements CacheSink {
  private last: number[] = [];
  /** Totals since start, for the metrics. */
  readonly total = { misses: 0, evictions: 0, entries: 0 };

  constructor(private readonly addon: Addon) {}

  stored(query: Buffer, reply: Buffer): void {
    const key = nativeCacheKey(query);
    const info = key && inspect(reply);
    if (!key || !info || info.ttl <= 0) return;
    const ttls = Buffer.alloc(info.ttlAt.length * 6);
    info.ttlAt.forEach((at, k) => {
      ttls.writeUInt16BE(at, k * 6);
      ttls.writeUInt32BE(info.ttls[k]!, k * 6 + 2);
    });
    this.addon.cachePut(key, reply, info.ttl, ttls);
  }

  configure(size: number, clear: boolean): void {
    this.addon.cacheConfigure(size, clear);
  }

  /** Counts since the previous call. */
  drain(): NativeCacheCounters {
    const now = this.addon.cacheStats();
    const d = now.map((v, i) => v - (this.last[i] ?? 0));
    this.last = now;
    const answers: Array<[string, string, number]> = [];
    for (let t = 0; t < TYPES.length; t++) {
      for (let r = 0; r < RCODES.length; r++) {
        const n = d[t * 6 + r] ?? 0;
        if (n > 0) answers.push([TYPES[t]!, RCODES[r]!, n]);
      }
    }
    const c = { answers, misses: d[48] ?? 0, evictions: d[49] ?? 0, entries: now[50] ?? 0 };
    this.total.misses += c.misses;
    this.total.evictions += c.evictions;
    this.total.entries = c.entries;
    return c;
  }
}

/** native_cache_{misses,evictions}_total and native_cache_entries (hits: dns_queries_total{source="cache",path="native"}). */
export function registerNativeCacheMetrics(prom: PromRegistry, cache: NativeCache): void {
  const P = 'podman_swarm_dns_';
  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({ name: `${P}${name}`, help, registers: [prom], collect() { this.reset(); this.inc(read()); } });
  };
  counter('native_cache_misses_total', 'Forwarded queries the native path did not find in its cache (or found expired, or too big for the client): handed to JS', () => cache.total.misses);
  counter('native_cache_evictions_total', 'Entries the native forwarding cache dropped to stay within --cache-size', () => cache.total.evictions);
  new Gauge({ name: `${P}native_cache_entries`, help: 'Answers held in the native forwarding cache', registers: [prom], collect() { this.set(cache.total.entries); } });
}
