import { randomInt } from 'node:crypto';
import * as packet from 'dns-packet';
import type { HostPort } from '../config/kinds.js';
import { ResponseCache } from './cache.js';
import { exchangeTcp, exchangeUdp, UpstreamError, upstreamLabel } from './upstream.js';
import { encodeRcode, type Query } from './wire.js';

// Names outside the zone (docs/architecture.md#dns): upstreams in order with failover, TCP when an upstream
// truncates, one upstream query per distinct question in flight, a TTL-respecting cache, and the
// optional `--forward-allow` policy. When every upstream fails (no answer in time, SERVFAIL or
// REFUSED), an expired cache entry younger than `--serve-stale` is answered instead (RFC 8767).
// Only names outside the zone reach the forwarder, so in-zone names are never served stale.

export interface ForwarderOptions {
  upstreams: HostPort[];
  timeoutMs: number;
  cacheSize: number;
  /** Domain suffixes that may be forwarded; empty: all. */
  forwardAllow: string[];
  /** How long past its TTL a cached answer may be served when every upstream fails (0, the default: never). */
  serveStaleMs?: number;
}

/** stale: an expired cache entry, served because no upstream answered (RFC 8767). */
export type ForwardSource = 'cache' | 'upstream' | 'refused' | 'failed' | 'stale';

export interface ForwardEvents {
  upstreamFailed?(upstream: string, reason: string): void;
  upstreamRecovered?(upstream: string): void;
}

/** A second cache that follows this one: the native path's (src/native/cache.ts). */
export interface CacheSink {
  /** `reply` to `query` was stored in the cache. */
  stored(query: Buffer, reply: Buffer): void;
  /** The bound changed, or (`clear`) what is cached no longer holds. */
  configure(size: number, clear: boolean): void;
}

export interface Forwarded {
  packet: Buffer;
  source: ForwardSource;
}

export class Forwarder {
  readonly cache: ResponseCache;
  private opts: ForwarderOptions;
  private preferred = 0;
  private readonly inflight = new Map<string, Promise<Forwarded>>();
  private readonly down = new Set<string>();
  private sink?: CacheSink;

  constructor(opts: ForwarderOptions, private readonly events: ForwardEvents = {}) {
    this.opts = opts;
    this.cache = new ResponseCache(opts.cacheSize, undefined, opts.serveStaleMs ?? 0);
  }

  get upstreams(): readonly HostPort[] {
    return this.opts.upstreams;
  }

  /** How long past their TTL answers may be served when every upstream fails (0: never). */
  get serveStaleMs(): number {
    return this.opts.serveStaleMs ?? 0;
  }

  configure(opts: ForwarderOptions): void {
    const changed = JSON.stringify(opts.upstreams) !== JSON.stringify(this.opts.upstreams) ||
      JSON.stringify(opts.forwardAllow) !== JSON.stringify(this.opts.forwardAllow);
    this.opts = opts;
    this.cache.resize(opts.cacheSize, opts.serveStaleMs ?? 0);
    if (changed) {
      this.cache.clear();
      this.preferred = 0;
      this.down.clear();
    }
    this.sink?.configure(opts.cacheSize, changed);
  }

  /** Every answer cached from now on is also given to `sink`. */
  follow(sink: CacheSink): void {
    this.sink = sink;
    sink.configure(this.opts.cacheSize, true);
  }

  /** The --forward-allow suffixes (empty: every name may be forwarded). */
  get forwardAllow(): readonly string[] {
    return this.opts.forwardAllow;
  }

  /** Upstreams in the order the next forwarded query tries them (the one that last answered first). */
  get order(): HostPort[] {
    const ups = this.opts.upstreams;
    return ups.map((_, n) => ups[(this.preferred + n) % ups.length]!);
  }

  /** Whether a query for `name` and `type` (with or without EDNS, DO) is answered from the cache now. */
  cached(name: string, type: string): boolean {
    const base = `${name.toLowerCase().replace(/\.$/, '')}|${type.toUpperCase()}|IN|`;
    return ['-', 'e', 'do'].some((edns) => this.cache.has(`${base}${edns}|`));
  }

  allowed(name: string): boolean {
    const allow = this.opts.forwardAllow;
    if (allow.length === 0) return true;
    const lower = name.toLowerCase().replace(/\.$/, '');
    return allow.some((d) => lower === d || lower.endsWith(`.${d}`));
  }

  /** The response to send for `raw` (a query for a name outside the zone), with the client's id. */
  async forward(raw: Buffer, q: Query): Promise<Forwarded> {
    if (!this.allowed(q.question.name)) return { packet: encodeRcode(q, 'REFUSED', true), source: 'refused' };
    const key = cacheKey(q);
    const qEnd = questionEnd(raw);
    const cached = this.cache.get(key, q.id, raw.subarray(12, qEnd));
    if (cached) return { packet: cached, source: 'cache' };

    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.resolve(raw, q, key).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    const result = await pending;
    const out = Buffer.from(result.packet);
    out.writeUInt16BE(q.id, 0);
    // Coalesced queries may differ in the case of the name: give each its own spelling back.
    if (out.length >= qEnd) raw.copy(out, 12, 12, qEnd);
    return { packet: out, source: result.source };
  }

  private async resolve(raw: Buffer, q: Query, key: string): Promise<Forwarded> {
    const ups = this.opts.upstreams;
    if (ups.length === 0) return { packet: encodeRcode(q, 'SERVFAIL', true), source: 'failed' };
    const query = Buffer.from(raw);
    query.writeUInt16BE(randomInt(0, 0x10000), 0);
    let lastAnswer: Buffer | undefined;
    for (let n = 0; n < ups.length; n++) {
      const i = (this.preferred + n) % ups.length;
      const up = ups[i]!;
      let reply: Buffer;
      try {
        reply = await exchangeUdp(up, query, this.opts.timeoutMs);
        if (reply.readUInt16BE(2) & 0x0200) reply = await exchangeTcp(up, query, this.opts.timeoutMs);
      } catch (e) {
        this.markDown(up, e instanceof UpstreamError ? e.message : String(e));
        continue;
      }
      const rcode = reply.readUInt16BE(2) & 0xf;
      if (rcode === 2 || rcode === 5) {
        // SERVFAIL or REFUSED: another upstream may do better; keep this answer as a fallback.
        lastAnswer = reply;
        this.markDown(up, rcode === 2 ? 'answered SERVFAIL' : 'answered REFUSED');
        continue;
      }
      this.markUp(up);
      this.preferred = i;
      if (!this.chainAllowed(reply)) return { packet: encodeRcode(q, 'REFUSED', true), source: 'refused' };
      if (this.cache.set(key, reply) > 0) this.sink?.stored(raw, reply);
      return { packet: reply, source: 'upstream' };
    }
    const stale = this.cache.stale(key, q.id);
    if (stale) return { packet: stale, source: 'stale' };
    return { packet: lastAnswer ?? encodeRcode(q, 'SERVFAIL', true), source: 'failed' };
  }

  /** With --forward-allow, an answer whose CNAME chain leaves the allowed domains is refused. */
  private chainAllowed(reply: Buffer): boolean {
    if (this.opts.forwardAllow.length === 0) return true;
    try {
      const decoded = packet.decode(reply);
      return (decoded.answers ?? []).every(
        (a) => this.allowed(a.name) && (a.type !== 'CNAME' && a.type !== 'DNAME' ? true : this.allowed(String(a.data))),
      );
    } catch {
      return false;
    }
  }

  private markDown(up: HostPort, reason: string): void {
    const name = upstreamLabel(up);
    if (!this.down.has(name)) {
      this.down.add(name);
      this.events.upstreamFailed?.(name, reason);
    }
  }

  private markUp(up: HostPort): void {
    const name = upstreamLabel(up);
    if (this.down.delete(name)) this.events.upstreamRecovered?.(name);
  }
}

function cacheKey(q: Query): string {
  const { name, type, class: klass } = q.question;
  // Answers differ with EDNS (OPT record present or not), the DO bit and checking-disabled.
  const edns = q.opt ? (q.opt.flags ?? 0) & 0x8000 ? 'do' : 'e' : '-';
  return `${name.toLowerCase()}|${type}|${klass}|${edns}|${q.flags & 0x0010 ? 'cd' : ''}`;
}

/** Offset just past the question section of a query with one question. */
function questionEnd(raw: Buffer): number {
  let off = 12;
  while (off < raw.length && raw[off] !== 0) off += raw[off]! + 1;
  return off + 5;
}
