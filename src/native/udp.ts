import type { HostPort } from '../config/kinds.js';
import type { DnsHandler } from '../dns/handler.js';
import { socketName } from '../net/sockets.js';
import { claimEarly } from '../systemd/early-dns.js';
import { fdBuffer, fdsOf, type Addon } from './index.js';

// UDP served by the addon's threads; the queries they hand over (forwarding, odd types,
// malformed-but-parseable) are answered by the JS handler and sent back through the same socket.
// The event loop that answers them also runs gossip, timers and the API, so JS pulls them within
// a budget per turn and yields (setImmediate: timers and I/O run in between); what waited too
// long is dropped by the addon, counted, instead of delaying everything behind it.

/** A handed-over query older than this when JS gets to it is dropped: its client has retried. */
export const HANDOFF_MAX_AGE_MS = 200;
/** Per event-loop turn, JS answers handed-over queries for at most this long ... */
const TURN_BUDGET_MS = 5;
/** ... or this many, whichever comes first. */
const TURN_MAX_QUERIES = 256;

export interface UdpEndpoint {
  port: number;
  /** The sockets' descriptors (for systemd's descriptor store). */
  fds: number[];
  close(): void;
}

export interface NativeCounters {
  /** [type, rcode, count] of answers the native path sent since the last call. */
  answers: Array<[string, string, number]>;
  formerr: number;
  dropped: number;
  /** Handed to JS but dropped: the queue was full, or they waited too long. */
  handoffFull: number;
  handoffLate: number;
  /** Native replies over the --dns-rrl rate: dropped, or sent truncated. */
  rrlDrop: number;
  rrlSlip: number;
  /** Per-bucket counts (the metrics' buckets, then +Inf), sum in seconds, count. */
  latency: { buckets: number[]; sum: number; count: number };
}

/** The addon's stats(): answers by [type * RCODES.length + rcode], then the counters below (native/src/udp.rs STAT_*). */
export const TYPES = ['A', 'AAAA', 'SRV', 'PTR', 'SOA', 'NS', 'TXT', 'OTHER'];
export const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
export const STAT = {
  toJs: 48, formerr: 49, notimp: 50, dropped: 51, jsFull: 52,
  /** Latency buckets (the JS histogram's, +Inf last) up to latSumNs, then their sum in ns. */
  lat: 53, latSumNs: 68, jsLate: 69, rrlDrop: 70, rrlSlip: 71,
  /** Length of the array. */
  count: 72,
} as const;

export class NativeUdp {
  private last: number[] = [];

  constructor(
    private readonly addon: Addon,
    private readonly handler: DnsHandler,
    private readonly threads: number,
    private readonly receiveBuffer: number,
    /** Response rate limiting of the replies JS sends (the native threads apply their own). */
    private readonly limit: (ip: string, reply: Buffer) => Buffer | null = (_ip, r) => r,
  ) {}

  /**
   * Binds addr (port 0: a free port); throws errors with .code like Node's bind errors. `adopt`:
   * sockets an earlier process bound there (kept by systemd), served first.
   */
  listen(addr: HostPort, adopt: number[] = []): UdpEndpoint {
    let id = 0;
    let scheduled = false;
    const pump = (): void => {
      scheduled = false;
      const deadline = performance.now() + TURN_BUDGET_MS;
      for (let n = 0; n < TURN_MAX_QUERIES; n++) {
        const q = this.addon.udpTake(id, HANDOFF_MAX_AGE_MS);
        if (!q) return; // drained: the addon wakes us for the next one
        this.onQuery(q[0], q[1], q[2], q[3]);
        if (performance.now() >= deadline) break;
      }
      scheduled = true;
      setImmediate(pump);
    };
    const wake = (): void => {
      if (!scheduled) pump();
    };
    // Served since the process started, from the previous run's table (src/systemd/early-dns.ts):
    // taken over as it is, with what waits for JS meanwhile.
    const early = adopt.length ? claimEarly(socketName('dns-udp', addr.host, addr.port)) : undefined;
    if (early) {
      id = early.id;
      early.wake = wake;
      wake();
      return { port: early.port, fds: early.fds, close: () => this.addon.closeUdp(early.id) };
    }
    // The addon calls back on the JS thread, so never before `id` is set below.
    const [lid, port] = this.addon.openUdp(addr.host, addr.port, this.threads, this.receiveBuffer, wake, adopt.length ? fdBuffer(adopt) : undefined);
    id = lid;
    return { port, fds: fdsOf(this.addon.udpFds(id)), close: () => this.addon.closeUdp(id) };
  }

  private onQuery(packet: Buffer, ip: string, port: number, sock: number): void {
    try {
      const reply = this.handler.handle(packet, { address: ip, port, transport: 'udp' });
      if (reply === null) return;
      const send = (r: Buffer | null): void => {
        const out = r && this.limit(ip, r);
        if (out) this.addon.reply(sock, ip, port, out);
      };
      if (reply instanceof Promise) reply.then(send).catch(() => undefined);
      else send(reply);
    } catch {
      // The handler answers SERVFAIL on its own errors; nothing may escape into the addon.
    }
  }

  /** What the native path did since the previous call (for the metrics). */
  drain(): NativeCounters {
    const now = this.addon.stats();
    const d = now.map((v, i) => v - (this.last[i] ?? 0));
    this.last = now;
    const answers: Array<[string, string, number]> = [];
    for (let t = 0; t < TYPES.length; t++) {
      for (let r = 0; r < RCODES.length; r++) {
        const n = d[t * RCODES.length + r] ?? 0;
        if (n > 0) answers.push([TYPES[t]!, RCODES[r]!, n]);
      }
    }
    const at = (i: number): number => d[i] ?? 0;
    const buckets = d.slice(STAT.lat, STAT.latSumNs);
    const latency = { buckets, sum: at(STAT.latSumNs) / 1e9, count: buckets.reduce((a, b) => a + b, 0) };
    return {
      answers, formerr: at(STAT.formerr) + at(STAT.notimp), dropped: at(STAT.dropped), handoffFull: at(STAT.jsFull), handoffLate: at(STAT.jsLate),
      rrlDrop: at(STAT.rrlDrop), rrlSlip: at(STAT.rrlSlip), latency,
    };
  }
}
