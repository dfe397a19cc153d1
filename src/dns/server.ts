import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { closeSync } from 'node:fs';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { showHostPort, type HostPort } from '../config/kinds.js';
import { explainBindError } from '../net/bind-error.js';
import { NO_SOCKET_STORE, serverFd, socketName, udpFd, type SocketStore } from '../net/sockets.js';
import type { DnsHandler, ShedReason } from './handler.js';
import { TcpFramer } from './tcp-framer.js';

// The JS DNS transports: UDP datagrams and DNS over TCP (RFC 7766: length-prefixed, several
// queries per connection, answered as they complete, idle timeout). Bytes in, handler, bytes out.
// Every TCP client is bounded: connections in total and per client address, a deadline for the
// whole of each query once its first byte is in (a client trickling bytes cannot hold a slot),
// an idle timeout, and the answers waiting to be sent (a client that does not read them is not
// read from either, and is closed if it stays that way).

export interface DnsServerOptions {
  tcpIdleTimeoutMs: number;
  /** Time from a query's first byte to its last. */
  tcpReadTimeoutMs: number;
  maxTcpConnections: number;
  maxTcpPerClient: number;
  /** Queries one TCP connection may have in flight before we stop reading from it. */
  maxTcpPipeline: number;
  /** Answers waiting to be sent on one connection beyond this: stop reading its queries. */
  maxTcpOutput: number;
  /** SO_RCVBUF for UDP sockets: bursts are absorbed instead of dropped by the kernel. */
  udpReceiveBuffer: number;
  /** Response rate limiting of UDP replies (rrl.ts): the reply, a truncated one, or null. */
  udpLimit?: (ip: string, reply: Buffer) => Buffer | null;
}

export const DEFAULT_SERVER_OPTIONS: DnsServerOptions = {
  tcpIdleTimeoutMs: 10_000,
  tcpReadTimeoutMs: 5000,
  maxTcpConnections: 1000,
  maxTcpPerClient: 100,
  maxTcpPipeline: 64,
  maxTcpOutput: 128 << 10,
  udpReceiveBuffer: 4 << 20,
};

interface Connection {
  sock: Socket;
  client: string;
  /** Queries handed to the handler whose answers are not written yet. */
  inflight: number;
}

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

/**
 * Serves UDP on addr instead of a Node socket (the native fast path, src/native/udp.ts), serving
 * the `adopt`ed sockets first; `fds`: all of its sockets.
 */
export type UdpBinder = (addr: HostPort, adopt: number[]) => { port: number; fds: number[]; close(): void };

export class DnsServer {
  private readonly listeners: Listener[] = [];
  /** Open TCP connections, oldest first. */
  private readonly connections = new Set<Connection>();
  private readonly perClient = new Map<string, number>();
  /** Where listening sockets come from and are kept across restarts (systemd's descriptor store). */
  sockets: SocketStore = NO_SOCKET_STORE;

  constructor(
    private readonly handler: DnsHandler,
    private opts: DnsServerOptions,
    private readonly log: Logger,
    private readonly udpBinder?: UdpBinder,
    private readonly shed: (reason: ShedReason) => void = () => undefined,
  ) {}

  get addresses(): HostPort[] {
    return this.listeners.map((l) => l.address);
  }

  configure(opts: Partial<DnsServerOptions>): void {
    this.opts = { ...this.opts, ...opts };
  }

  /**
   * Binds UDP and TCP on `addr` (port 0: any free port, the same for both), or serves the
   * sockets an earlier process kept for it; keeps the new ones for the next process.
   */
  async listen(addr: HostPort): Promise<HostPort> {
    const names = { udp: socketName('dns-udp', addr.host, addr.port), tcp: socketName('dns-tcp', addr.host, addr.port) };
    const adopted = { udp: this.sockets.take(names.udp), tcp: this.sockets.take(names.tcp) };
    const udp = this.udpBinder ? this.bindNative(addr, this.udpBinder, adopted.udp) : await this.bindUdp(addr, adopted.udp);
    const port = 'address' in udp ? udp.address().port : udp.port;
    let tcp: Server;
    try {
      tcp = await this.bindTcp({ host: addr.host, port }, adopted.tcp[0]);
    } catch (e) {
      udp.close();
      throw e;
    }
    const udpFds = 'address' in udp ? [udpFd(udp)] : udp.fds;
    this.sockets.keep(names.udp, udpFds.filter((fd): fd is number => fd !== undefined && !adopted.udp.includes(fd)));
    if (adopted.tcp.length === 0) this.sockets.keep(names.tcp, [serverFd(tcp)].filter((fd): fd is number => fd !== undefined));
    const address = { host: addr.host, port };
    this.listeners.push({ address, udp, tcp });
    return address;
  }

  /** Stops serving one address (a Podman network's gateway that went away). */
  async unlisten(addr: HostPort): Promise<void> {
    const i = this.listeners.findIndex((l) => l.address.host === addr.host && l.address.port === addr.port);
    if (i < 0) return;
    const [l] = this.listeners.splice(i, 1);
    this.sockets.forget(socketName('dns-udp', addr.host, addr.port));
    this.sockets.forget(socketName('dns-tcp', addr.host, addr.port));
    await new Promise<void>((resolve) => {
      l!.udp.close();
      l!.tcp.close(() => resolve());
    });
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.sock.destroy();
    await Promise.all(
      this.listeners.splice(0).map(
        (l) => new Promise<void>((resolve) => {
          l.udp.close();
          l.tcp.close(() => resolve());
        }),
      ),
    );
  }

  private bindNative(addr: HostPort, binder: UdpBinder, adopt: number[]): ReturnType<UdpBinder> {
    try {
      return binder(addr, adopt);
    } catch (e) {
      throw new BindError(addr, explainBindError(e as NodeJS.ErrnoException, 'serve DNS', addr.host, addr.port, 'udp', '--dns-listen'));
    }
  }

  /** `adopt`: one socket already bound to addr; more (an earlier native path's) are closed. */
  private bindUdp(addr: HostPort, adopt: number[]): Promise<UdpSocket> {
    for (const fd of adopt.slice(1)) closeFd(fd);
    return new Promise((resolve, reject) => {
      const v6 = isIP(addr.host) === 6;
      const sock = createSocket(v6 ? { type: 'udp6', ipv6Only: true } : { type: 'udp4' });
      const onError = (e: NodeJS.ErrnoException): void => {
        sock.close();
        reject(new BindError(addr, explainBindError(e, 'serve DNS', addr.host, addr.port, 'udp', '--dns-listen')));
      };
      sock.once('error', onError);
      sock.bind(adopt.length ? { fd: adopt[0]! } : { address: addr.host, port: addr.port, exclusive: true }, () => {
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
    const send = (r: Buffer | null): void => {
      const out = r && (this.opts.udpLimit ? this.opts.udpLimit(address, r) : r);
      if (out) sock.send(out, port, address);
    };
    if (reply instanceof Promise) reply.then(send).catch(() => undefined);
    else send(reply);
  }

  private bindTcp(addr: HostPort, adopt?: number): Promise<Server> {
    return new Promise((resolve, reject) => {
      const server = createServer({ noDelay: true, allowHalfOpen: true }, (sock) => this.onConnection(sock));
      const onError = (e: NodeJS.ErrnoException): void => {
        server.close();
        reject(new BindError(addr, explainBindError(e, 'serve DNS', addr.host, addr.port, 'tcp', '--dns-listen')));
      };
      server.once('error', onError);
      server.listen(adopt !== undefined ? { fd: adopt } : { host: addr.host, port: addr.port, exclusive: true, ipv6Only: true }, () => {
        server.off('error', onError);
        server.on('error', (e) => this.log.warn({ err: e, address: showHostPort(addr) }, 'DNS TCP server error'));
        resolve(server);
      });
    });
  }

  /** Room for a new connection from `client`: false (counted) when it must be refused. */
  private admit(client: string): boolean {
    if ((this.perClient.get(client) ?? 0) >= this.opts.maxTcpPerClient) {
      this.shed('tcp_client_limit');
      return false;
    }
    if (this.connections.size < this.opts.maxTcpConnections) return true;
    // Full: the oldest connection with no answer pending makes room (it may be idle or trickling;
    // new clients must not be locked out by connections that do nothing).
    this.shed('tcp_total_limit');
    for (const c of this.connections) {
      if (c.inflight === 0) {
        this.drop(c);
        return true;
      }
    }
    return false;
  }

  private drop(c: Connection): void {
    if (!this.connections.delete(c)) return;
    const n = (this.perClient.get(c.client) ?? 1) - 1;
    if (n > 0) this.perClient.set(c.client, n);
    else this.perClient.delete(c.client);
    c.sock.destroy();
  }

  private onConnection(sock: Socket): void {
    const address = sock.remoteAddress ?? '';
    const port = sock.remotePort ?? 0;
    sock.on('error', () => sock.destroy());
    if (!this.admit(address)) return void sock.destroy();
    const c: Connection = { sock, client: address, inflight: 0 };
    this.connections.add(c);
    this.perClient.set(address, (this.perClient.get(address) ?? 0) + 1);
    sock.on('close', () => this.drop(c));
    const framer = new TcpFramer();
    let ended = false;
    /** Complete queries taken so far: a new one restarts the idle and read deadlines. */
    let taken = 0;
    let timer: NodeJS.Timeout | undefined;
    let armed = '';
    const arm = (reason: ShedReason, ms: number): void => {
      const key = reason === 'tcp_output_full' ? reason : `${reason}:${taken}`;
      if (armed === key) return;
      armed = key;
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.shed(reason);
        this.drop(c);
      }, ms);
    };
    /** The one deadline that applies now. */
    const rearm = (): void => {
      if (sock.destroyed) return;
      if (sock.writableLength > this.opts.maxTcpOutput) arm('tcp_output_full', this.opts.tcpIdleTimeoutMs);
      else if (c.inflight > 0) {
        // Our turn: answers are on their way (the next queries wait for them).
        clearTimeout(timer);
        armed = '';
      } else if (framer.partial) arm('tcp_read_timeout', this.opts.tcpReadTimeoutMs);
      else arm('tcp_idle', this.opts.tcpIdleTimeoutMs);
    };
    sock.on('close', () => clearTimeout(timer));
    const send = (reply: Buffer | null): void => {
      if (reply && !sock.destroyed) {
        const len = Buffer.allocUnsafe(2);
        len.writeUInt16BE(reply.length);
        sock.write(Buffer.concat([len, reply]));
      }
    };
    const drain = (): void => {
      while (c.inflight < this.opts.maxTcpPipeline && sock.writableLength <= this.opts.maxTcpOutput && !sock.destroyed) {
        const msg = framer.next();
        if (!msg) break;
        taken++;
        const reply = this.handler.handle(msg, { address, port, transport: 'tcp' });
        if (reply instanceof Promise) {
          c.inflight++;
          reply
            .then(send, () => undefined)
            .finally(() => {
              c.inflight--;
              drain();
              // The client half-closed after its last query: close once every answer is out.
              if (ended && c.inflight === 0) sock.end();
            });
        } else {
          // A query that gets no reply at all (unreadable header) ends the stream: it is not DNS.
          if (reply === null) return void this.drop(c);
          send(reply);
        }
      }
      const outputFull = sock.writableLength > this.opts.maxTcpOutput;
      if (c.inflight >= this.opts.maxTcpPipeline || outputFull) {
        if (outputFull && !sock.isPaused()) this.shed('tcp_output_paused');
        sock.pause();
      } else if (sock.isPaused()) sock.resume();
      rearm();
    };
    sock.on('drain', drain);
    sock.on('data', (chunk) => {
      framer.push(chunk);
      drain();
    });
    sock.on('end', () => {
      ended = true;
      if (c.inflight === 0) sock.end();
    });
    rearm();
  }
}

function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* not open */
  }
}
