import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, connect, isIPv6, type Server, type Socket } from 'node:net';
import type { Transport } from './transport.js';

// The real network: gossip packets over UDP, push-pull and other requests over TCP on the same
// port, one length-prefixed frame each way per connection (memberlist's NetTransport).

const MAX_FRAME = 16 << 20;

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

/** Reads one length-prefixed frame from a socket. */
function readFrame(sock: Socket, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      if (buf.length < 4) return;
      const len = buf.readUInt32BE(0);
      if (len > MAX_FRAME) return done(new Error('frame too large'));
      if (buf.length >= 4 + len) done(null, buf.subarray(4, 4 + len));
    };
    const onEnd = (): void => done(new Error('connection closed before a whole frame'));
    const onError = (e: Error): void => done(e);
    const done = (err: Error | null, data?: Buffer): void => {
      clearTimeout(timer);
      sock.off('data', onData).off('end', onEnd).off('error', onError);
      if (err) reject(err);
      else resolve(data!);
    };
    sock.on('data', onData).on('end', onEnd).on('error', onError);
  });
}

export class NetTransport implements Transport {
  private udp!: UdpSocket;
  private tcp!: Server;
  private packetHandler: (data: Uint8Array, from: string) => void = () => undefined;
  private requestHandler: (data: Uint8Array, from: string) => Promise<Uint8Array | null> = async () => null;
  private readonly conns = new Set<Socket>();
  address: string;

  private constructor(
    private readonly host: string,
    private port: number,
    advertise: string,
  ) {
    this.address = advertise;
  }

  /** Binds UDP and TCP on host:port (port 0: any free one, the same for both). */
  static async listen(host: string, port: number, advertiseHost: string): Promise<NetTransport> {
    const t = new NetTransport(host, port, '');
    await t.bind();
    t.address = formatAddr(advertiseHost, t.port);
    return t;
  }

  get boundPort(): number {
    return this.port;
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

  async request(to: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const a = parseAddr(to);
    const sock = connect({ host: a.host, port: a.port });
    this.conns.add(sock);
    try {
      await new Promise<void>((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`cannot connect within ${timeoutMs} ms`)), timeoutMs);
        sock.once('connect', () => (clearTimeout(timer), res()));
        sock.once('error', (e) => (clearTimeout(timer), rej(e)));
      });
      sock.write(frame(data));
      return await readFrame(sock, timeoutMs);
    } finally {
      this.conns.delete(sock);
      sock.destroy();
    }
  }

  private serve(sock: Socket): void {
    this.conns.add(sock);
    sock.on('error', () => undefined);
    sock.on('close', () => this.conns.delete(sock));
    const from = formatAddr(sock.remoteAddress ?? '?', sock.remotePort ?? 0);
    readFrame(sock, 10_000)
      .then((req) => this.requestHandler(req, from))
      .then((reply) => {
        if (reply) sock.end(frame(reply));
        else sock.destroy();
      })
      .catch(() => sock.destroy());
  }

  async close(): Promise<void> {
    for (const s of this.conns) s.destroy();
    await Promise.all([new Promise<void>((r) => this.tcp.close(() => r())), new Promise<void>((r) => this.udp.close(() => r()))]);
  }
}
