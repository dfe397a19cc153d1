import type { Transport } from '../transport.js';
import { VirtualClock } from './clock.js';

// The simulator's network: packets and request/response streams between in-memory transports,
// delivered on the virtual clock with latency and jitter; packets are lost with probability
// `loss`; streams are reliable (TCP) but, like packets, never cross a partition or reach a
// crashed node. Addresses are plain strings ("n17:7946").

export interface NetworkOptions {
  latencyMs: number;
  jitterMs: number;
  /** Packet loss probability, 0–1. */
  loss: number;
}

export class SimNetwork {
  private readonly nodes = new Map<string, SimTransport>();
  /** addr → partition group; nodes in different groups cannot talk. Absent = group 0. */
  private readonly group = new Map<string, number>();
  private readonly down = new Set<string>();
  /** Set when a promise was settled, so the driver lets async code run before the next event. */
  needsFlush = false;
  bytes = 0;
  packets = 0;

  constructor(
    readonly clock: VirtualClock,
    private readonly random: () => number,
    readonly opts: NetworkOptions = { latencyMs: 1, jitterMs: 1, loss: 0 },
  ) {}

  transport(addr: string): SimTransport {
    const t = new SimTransport(addr, this);
    this.nodes.set(addr, t);
    return t;
  }

  /** Puts `addrs` in their own partition group. */
  partition(addrs: Iterable<string>, group = 1): void {
    for (const a of addrs) this.group.set(a, group);
  }

  heal(): void {
    this.group.clear();
  }

  crash(addr: string): void {
    this.down.add(addr);
  }

  reachable(from: string, to: string): boolean {
    if (this.down.size === 0 && this.group.size === 0) return this.nodes.has(to);
    return !this.down.has(from) && !this.down.has(to) && this.nodes.has(to) && (this.group.get(from) ?? 0) === (this.group.get(to) ?? 0);
  }

  private delay(): number {
    return this.opts.latencyMs + this.random() * this.opts.jitterMs;
  }

  packet(from: string, to: string, data: Uint8Array): void {
    this.bytes += data.length;
    this.packets++;
    if (!this.reachable(from, to) || this.random() < this.opts.loss) return;
    const t = this.nodes.get(to)!;
    this.clock.post(this.delay(), () => {
      if ((this.down.size === 0 && this.group.size === 0) || this.reachable(from, to)) t.deliverPacket(data, from);
    });
  }

  request(from: string, to: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    this.bytes += data.length;
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err: Error | null, v?: Uint8Array): void => {
        if (settled) return;
        settled = true;
        timer.cancel();
        this.needsFlush = true;
        if (err) reject(err);
        else resolve(v!);
      };
      const timer = this.clock.after(timeoutMs, () => settle(new Error('timeout')));
      if (!this.reachable(from, to)) return;
      this.clock.after(this.delay(), () => {
        if (!this.reachable(from, to)) return;
        this.needsFlush = true;
        this.nodes
          .get(to)!
          .deliverRequest(data, from)
          .then(
            (reply) => {
              this.needsFlush = true;
              if (!reply) return settle(new Error('refused'));
              this.bytes += reply.length;
              this.nodes.get(to)!.bytesSent += reply.length;
              this.clock.after(this.delay(), () => (this.reachable(to, from) ? settle(null, reply) : undefined));
            },
            (e: Error) => settle(e),
          );
      });
    });
  }
}

export class SimTransport implements Transport {
  private onPkt: (data: Uint8Array, from: string) => void = () => undefined;
  private onReq: (data: Uint8Array, from: string) => Promise<Uint8Array | null> = async () => null;
  bytesSent = 0;

  constructor(
    readonly address: string,
    private readonly net: SimNetwork,
  ) {}

  sendPacket(to: string, data: Uint8Array): void {
    this.bytesSent += data.length;
    this.net.packet(this.address, to, data);
  }

  onPacket(h: (data: Uint8Array, from: string) => void): void {
    this.onPkt = h;
  }

  request(to: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    this.bytesSent += data.length;
    return this.net.request(this.address, to, data, timeoutMs);
  }

  onRequest(h: (data: Uint8Array, from: string) => Promise<Uint8Array | null>): void {
    this.onReq = h;
  }

  deliverPacket(data: Uint8Array, from: string): void {
    this.onPkt(data, from);
  }

  deliverRequest(data: Uint8Array, from: string): Promise<Uint8Array | null> {
    return this.onReq(data, from);
  }

  async close(): Promise<void> {}
}
