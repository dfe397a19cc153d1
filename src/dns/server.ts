import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { showHostPort, type HostPort } from '../config/kinds.js';
import { explainBindError } from '../net/bind-error.js';
import type { DnsHandler } from './handler.js';

// The JS DNS transports: UDP datagrams and DNS over TCP (RFC 7766: length-prefixed, several
// queries per connection, answered as they complete, idle timeout). Bytes in, handler, bytes out.

export interface DnsServerOptions {
  tcpIdleTimeoutMs: number;
  maxTcpConnections: number;
  /** Queries one TCP connection may have in flight before we stop reading from it. */
  maxTcpPipeline: number;
  /** SO_RCVBUF for UDP sockets: bursts are absorbed instead of dropped by the kernel. */
  udpReceiveBuffer: number;
}

export const DEFAULT_SERVER_OPTIONS: DnsServerOptions = {
  tcpIdleTimeoutMs: 10_000,
  maxTcpConnections: 1000,
  maxTcpPipeline: 64,
  udpReceiveBuffer: 4 << 20,
};

export class BindError extends Error {
  constructor(
    readonly address: HostPort,
    message: string,
  ) {
    super(message);
  }
}

interface Listener {
  address: HostPort;
  udp: { close(): void };
  tcp: Server;
}

/** Serves UDP on addr instead of a Node socket (the native fast path, src/native/udp.ts). */
export type UdpBinder = (addr: HostPort) => { port: number; close(): void };

export class DnsServer {
  private readonly listeners: Listener[] = [];
  private readonly connections = new Set<Socket>();

  constructor(
    private readonly handler: DnsHandler,
    private opts: DnsServerOptions,
    private readonly log: Logger,
    private readonly udpBinder?: UdpBinder,
  ) {}

  get addresses(): HostPort[] {
    return this.listeners.map((l) => l.address);
  }

  configure(opts: Partial<DnsServerOptions>): void {
    this.opts = { ...this.opts, ...opts };
  }

  /** Binds UDP and TCP on `addr` (port 0: any free port, the same for both). */
  async listen(addr: HostPort): Promise<HostPort> {
    const udp = this.udpBinder ? this.bindNative(addr, this.udpBinder) : await this.bindUdp(addr);
    const port = 'address' in udp ? udp.address().port : udp.port;
    let tcp: Server;
    try {
      tcp = await this.bindTcp({ host: addr.host, port });
    } catch (e) {
      udp.close();
      throw e;
    }
    const address = { host: addr.host, port };
    this.listeners.push({ address, udp, tcp });
    return address;
  }

  /** Stops serving one address (a Podman network's gateway that went away). */
  async unlisten(addr: HostPort): Promise<void> {
    const i = this.listeners.findIndex((l) => l.address.host === addr.host && l.address.port === addr.port);
    if (i < 0) return;
    const [l] = this.listeners.splice(i, 1);
    await new Promise<void>((resolve) => {
      l!.udp.close();
      l!.tcp.close(() => resolve());
    });
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.destroy();
    await Promise.all(
      this.listeners.splice(0).map(
        (l) => new Promise<void>((resolve) => {
          l.udp.close();
          l.tcp.close(() => resolve());
        }),
      ),
    );
  }

  private bindNative(addr: HostPort, binder: UdpBinder): { port: number; close(): void } {
    try {
      return binder(addr);
    } catch (e) {
      throw new BindError(addr, explainBindError(e as NodeJS.ErrnoException, 'serve DNS', addr.host, addr.port, 'udp', '--dns-listen'));
    }
  }

  private bindUdp(addr: HostPort): Promise<UdpSocket> {
    return new Promise((resolve, reject) => {
      const v6 = isIP(addr.host) === 6;
      const sock = createSocket(v6 ? { type: 'udp6', ipv6Only: true } : { type: 'udp4' });
      const onError = (e: NodeJS.ErrnoException): void => {
        sock.close();
        reject(new BindError(addr, explainBindError(e, 'serve DNS', addr.host, addr.port, 'udp', '--dns-listen')));
      };
      sock.once('error', onError);
      sock.bind({ address: addr.host, port: addr.port, exclusive: true }, () => {
        sock.off('error', onError);
        try {
          sock.setRecvBufferSize(this.opts.udpReceiveBuffer);
        } catch {
          // Capped by net.core.rmem_max; the default still works, only bursts drop earlier.
        }
        sock.on('error', (e) => this.log.warn({ err: e, address: showHostPort(addr) }, 'DNS UDP socket error'));
        sock.on('message', (msg, rinfo) => this.onDatagram(sock, msg, rinfo.address, rinfo.port));
        resolve(sock);
      });
    });
  }

  private onDatagram(sock: UdpSocket, msg: Buffer, address: string, port: number): void {
    const reply = this.handler.handle(msg, { address, port, transport: 'udp' });
    if (reply === null) return;
    if (reply instanceof Promise) {
      reply.then((r) => r && sock.send(r, port, address)).catch(() => undefined);
    } else sock.send(reply, port, address);
  }

  private bindTcp(addr: HostPort): Promise<Server> {
    return new Promise((resolve, reject) => {
      const server = createServer({ noDelay: true, allowHalfOpen: true }, (sock) => this.onConnection(sock));
      server.maxConnections = this.opts.maxTcpConnections;
      const onError = (e: NodeJS.ErrnoException): void => {
        server.close();
        reject(new BindError(addr, explainBindError(e, 'serve DNS', addr.host, addr.port, 'tcp', '--dns-listen')));
      };
      server.once('error', onError);
      server.listen({ host: addr.host, port: addr.port, exclusive: true, ipv6Only: true }, () => {
        server.off('error', onError);
        server.on('error', (e) => this.log.warn({ err: e, address: showHostPort(addr) }, 'DNS TCP server error'));
        resolve(server);
      });
    });
  }

  private onConnection(sock: Socket): void {
    this.connections.add(sock);
    const address = sock.remoteAddress ?? '';
    const port = sock.remotePort ?? 0;
    let buf = Buffer.alloc(0);
    let inflight = 0;
    let ended = false;
    sock.setTimeout(this.opts.tcpIdleTimeoutMs, () => sock.destroy());
    sock.on('close', () => this.connections.delete(sock));
    sock.on('error', () => sock.destroy());
    const send = (reply: Buffer | null): void => {
      if (reply && !sock.destroyed) {
        const len = Buffer.allocUnsafe(2);
        len.writeUInt16BE(reply.length);
        sock.write(Buffer.concat([len, reply]));
      }
    };
    const drain = (): void => {
      while (buf.length >= 2 && inflight < this.opts.maxTcpPipeline) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        const reply = this.handler.handle(msg, { address, port, transport: 'tcp' });
        if (reply instanceof Promise) {
          inflight++;
          reply
            .then(send, () => undefined)
            .finally(() => {
              inflight--;
              if (sock.isPaused()) sock.resume();
              drain();
              // The client half-closed after its last query: close once every answer is out.
              if (ended && inflight === 0) sock.end();
            });
        } else {
          // A query that gets no reply at all (unreadable header) ends the stream: it is not DNS.
          if (reply === null) return void sock.destroy();
          send(reply);
        }
      }
      if (inflight >= this.opts.maxTcpPipeline) sock.pause();
    };
    sock.on('data', (chunk) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      drain();
    });
    sock.on('end', () => {
      ended = true;
      if (inflight === 0) sock.end();
    });
  }
}
