import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, connect, isIPv6, type Server, type Socket } from 'node:net';
import { WireError } from './codec.js';
import type { StreamGate, Transport } from './transport.js';

// The real network: gossip packets over UDP, push-pull and other requests over TCP on the same
// port, one request and one answer per connection (memberlist's NetTransport). Each way, a
// stream carries two length-prefixed frames: a small sealed header announcing the length of
// the frame that follows (StreamGate), then that frame. A receiver reads no more than the
// header (HEADER_MAX) from a peer until the header opens with the cluster key, then exactly the
// announced length, never more than the frame limit; slow senders are cut off by deadlines and
// the number of open incoming streams is capped.

/** Largest header (a refusal saying why fits too). */
const HEADER_MAX = 1024;
/** A connected peer must send its header within this, and its frame within BODY_TIMEOUT after. */
const HEADER_TIMEOUT = 5000;
const BODY_TIMEOUT = 10_000;
/** After answering, what the peer still sends is read and dropped for this long, then the stream is closed. */
const LINGER = 2000;

export interface StreamLimits {
  /** Largest frame accepted (push-pull answers hold every node state the other side lacks). */
  maxFrame: number;
  /** Incoming streams open at once; more are closed at once. */
  maxConnections: number;
}

/** A frame limit in proportion to the state limits: a full node state of `maxEndpoints` fits. */
export const frameLimit = (maxEndpoints: number): number => Math.max(1 << 20, maxEndpoints * 1600);

export const DEFAULT_LIMITS: StreamLimits = { maxFrame: frameLimit(10_000), maxConnections: 64 };

export const formatAddr = (host: string, port: number): string => (isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`);

export function parseAddr(addr: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(addr) ?? /^([^:]+):(\d+)$/.exec(addr);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new Error(`not a host:port address: ${addr}`);
  return { host: m[1]!, port: Number(m[2]) };
}

function frame(data: Uint8Array): Buffer {
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(data.length);
  return Buffer.concat([head, data]);
}

/**
 * Reads length-prefixed frames from a socket, one at a time: chunks are kept in a list and
 * joined once, when a frame is complete (no copy per chunk), and the socket is paused whenever
 * no frame is asked for, so nothing more than one chunk past the asked frame is buffered.
 */
class FrameReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private want: { max: number; resolve(b: Buffer): void; reject(e: Error): void; timer: NodeJS.Timeout } | null = null;
  private ended: Error | null = null;
  private discarding = false;

  constructor(private readonly sock: Socket) {
    sock.pause();
    sock.on('data', (c: Buffer) => {
      if (this.discarding) return;
      this.chunks.push(c);
      this.size += c.length;
      this.check();
    });
    const end = (e?: Error): void => {
      this.ended ??= e ?? new Error('connection closed before a whole frame');
      this.finish(this.ended);
    };
    sock.on('end', () => end()).on('close', () => end()).on('error', end);
  }

  /**
   * Drops whatever else arrives, then closes the stream after `ms`: a peer that is answered
   * (a refusal, a reply) gets to read the answer instead of a reset, and cannot keep the stream.
   */
  linger(ms: number): void {
    this.discarding = true;
    this.chunks = [];
    this.size = 0;
    this.sock.resume();
    setTimeout(() => this.sock.destroy(), ms).unref();
  }

  next(max: number, timeoutMs: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.finish(new WireError(`no whole frame within ${timeoutMs} ms`, 'frame')), timeoutMs);
      this.want = { max, resolve, reject, timer };
      this.check();
      // What was buffered before the peer closed may still hold the frame: checked first.
      if (this.ended) this.finish(this.ended);
      else if (this.want) this.sock.resume();
    });
  }

  private check(): void {
    const w = this.want;
    if (!w) return void this.sock.pause();
    if (this.size < 4) return;
    if (this.chunks[0]!.length < 4) this.chunks = [Buffer.concat(this.chunks, this.size)];
    const len = this.chunks[0]!.readUInt32BE(0);
    if (len > w.max) return this.finish(new WireError(`a frame of ${len} bytes, over the limit of ${w.max}`, 'frame'));
    if (this.size < 4 + len) return;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    const rest = all.subarray(4 + len);
    this.chunks = rest.length ? [rest] : [];
    this.size = rest.length;
    this.finish(null, all.subarray(4, 4 + len));
  }

  private finish(err: Error | null, data?: Buffer): void {
    const w = this.want;
    if (!w) return;
    this.want = null;
    clearTimeout(w.timer);
    this.sock.pause();
    if (err) w.reject(err);
    else w.resolve(data!);
  }
}

export class NetTransport implements Transport {
  private udp!: UdpSocket;
  private tcp!: Server;
  private packetHandler: (data: Uint8Array, from: string) => void = () => undefined;
  private requestHandler: (data: Uint8Array, from: string) => Promise<Uint8Array | null> = async () => null;
  private gate: StreamGate | null = null;
  private readonly conns = new Set<Socket>();
  private incoming = 0;
  /** Told about every stream dropped before its frame was handed on (counted by the membership). */
  onReject: (err: WireError, from: string) => void = () => undefined;
  address: string;

  private constructor(
    private readonly host: string,
    private port: number,
    advertise: string,
    private readonly limits: StreamLimits,
  ) {
    this.address = advertise;
  }

  /** Binds UDP and TCP on host:port (port 0: any free one, the same for both). */
  static async listen(host: string, port: number, advertiseHost: string, limits: StreamLimits = DEFAULT_LIMITS): Promise<NetTransport> {
    const t = new NetTransport(host, port, '', limits);
    await t.bind();
    t.address = formatAddr(advertiseHost, t.port);
    return t;
  }

  get boundPort(): number {
    return this.port;
  }

  /** Incoming streams open now. */
  get openStreams(): number {
    return this.incoming;
  }

  private async bind(): Promise<void> {
    this.tcp = createServer((sock) => this.serve(sock));
    await new Promise<void>((res, rej) => {
      this.tcp.once('error', rej);
      this.tcp.listen(this.port, this.host, () => {
        this.tcp.off('error', rej);
        res();
      });
    });
    this.port = (this.tcp.address() as { port: number }).port;
    this.udp = createSocket({ type: isIPv6(this.host) ? 'udp6' : 'udp4', reuseAddr: false });
    await new Promise<void>((res, rej) => {
      this.udp.once('error', (e) => {
        this.tcp.close();
        rej(e);
      });
      this.udp.bind(this.port, this.host, () => res());
    });
    this.udp.removeAllListeners('error');
    // Send errors (unreachable hosts, ICMP) mean nothing here: SWIM treats silence as the signal.
    this.udp.on('error', () => undefined);
    this.udp.on('message', (msg, rinfo) => this.packetHandler(msg, formatAddr(rinfo.address, rinfo.port)));
  }

  sendPacket(to: string, data: Uint8Array): void {
    let a: { host: string; port: number };
    try {
      a = parseAddr(to);
    } catch {
      return;
    }
    this.udp.send(data, a.port, a.host, () => undefined);
  }

  onPacket(handler: (data: Uint8Array, from: string) => void): void {
    this.packetHandler = handler;
  }

  onRequest(handler: (data: Uint8Array, from: string) => Promise<Uint8Array | null>): void {
    this.requestHandler = handler;
  }

  setGate(gate: StreamGate): void {
    this.gate = gate;
  }

  private send(sock: Socket, data: Uint8Array): void {
    sock.write(Buffer.concat([frame(this.gate!.header(data.length)), frame(data)]));
  }

  /** Answers `data` (already framed) and closes the stream soon after. */
  private answer(sock: Socket, reader: FrameReader, data: Buffer): void {
    sock.end(data);
    reader.linger(LINGER);
  }

  async request(to: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (!this.gate) throw new Error('the gossip transport is not started');
    const a = parseAddr(to);
    const sock = connect({ host: a.host, port: a.port });
    this.conns.add(sock);
    try {
      const reader = new FrameReader(sock);
      await new Promise<void>((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`cannot connect within ${timeoutMs} ms`)), timeoutMs);
        sock.once('connect', () => (clearTimeout(timer), res()));
        sock.once('error', (e) => (clearTimeout(timer), rej(e)));
      });
      this.send(sock, data);
      const head = await reader.next(HEADER_MAX, timeoutMs);
      let len: number;
      try {
        len = this.gate.admit(head);
      } catch {
        // Not a header of ours: a refusal saying why (the membership reads it) or garbage.
        return head;
      }
      if (len > this.limits.maxFrame) throw new Error(`${to} announced an answer of ${len} bytes, over the limit of ${this.limits.maxFrame}`);
      const body = await reader.next(len, timeoutMs);
      if (body.length !== len) throw new Error(`${to} sent ${body.length} bytes where its header announced ${len}`);
      return body;
    } finally {
      this.conns.delete(sock);
      sock.destroy();
    }
  }

  reachable(to: string, timeoutMs: number): Promise<boolean> {
    const a = parseAddr(to);
    return new Promise((res) => {
      const sock = connect({ host: a.host, port: a.port });
      const done = (up: boolean): void => {
        clearTimeout(timer);
        sock.destroy();
        res(up);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      sock.once('connect', () => done(true));
      // Refused: the host's kernel answered (the daemon is down or restarting); anything else
      // (unreachable, no route, reset by a middlebox) counts as not there.
      sock.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED'));
    });
  }

  private serve(sock: Socket): void {
    sock.on('error', () => undefined);
    const from = formatAddr(sock.remoteAddress ?? '?', sock.remotePort ?? 0);
    if (!this.gate || this.incoming >= this.limits.maxConnections) {
      sock.destroy();
      if (this.gate) this.onReject(new WireError(`${this.incoming} gossip streams already open (the limit, --gossip-max-connections): connection closed`, 'connections'), from);
      return;
    }
    const gate = this.gate;
    this.incoming++;
    this.conns.add(sock);
    sock.on('close', () => {
      this.conns.delete(sock);
      this.incoming--;
    });
    void (async () => {
      const reader = new FrameReader(sock);
      let len: number;
      try {
        len = gate.admit(await reader.next(HEADER_MAX, HEADER_TIMEOUT));
      } catch (e) {
        const err = e instanceof WireError ? e : new WireError((e as Error).message, 'frame');
        this.onReject(err, from);
        const refusal = err.reason === 'frame' ? null : gate.refusal(err);
        if (refusal) this.answer(sock, reader, frame(refusal));
        else sock.destroy();
        return;
      }
      try {
        if (len > this.limits.maxFrame) throw new WireError(`a stream announcing ${len} bytes, over the limit of ${this.limits.maxFrame}`, 'frame');
        const body = await reader.next(len, BODY_TIMEOUT);
        if (body.length !== len) throw new WireError(`a stream of ${body.length} bytes where its header announced ${len}`, 'frame');
        const reply = await this.requestHandler(body, from);
        if (reply) this.answer(sock, reader, Buffer.concat([frame(gate.header(reply.length)), frame(reply)]));
        else sock.destroy();
      } catch (e) {
        if (e instanceof WireError) this.onReject(e, from);
        sock.destroy();
      }
    })();
  }

  async close(): Promise<void> {
    for (const s of this.conns) s.destroy();
    await Promise.all([new Promise<void>((r) => this.tcp.close(() => r())), new Promise<void>((r) => this.udp.close(() => r()))]);
  }
}
