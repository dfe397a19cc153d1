import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { addressMismatch, closeFds, udpFd } from '../net/sockets.js';
import type { Backend, BackendSet } from './backends.js';

// One UDP listener (a VIP:port). Each client address:port gets a session: its own socket
// connected to one backend, so the backend's replies come back to that client alone and a
// client's datagrams stay on one backend (DNS, QUIC, game protocols need that). A session with no
// datagram either way for `idleTimeoutMs` ends; at `maxSessions` the least recently used one
// ends for the new client (counted in `evicted`). The session map is kept in that order (a used
// session moves to its end), so eviction and the idle sweep look only at the sessions they end.
// The addon's relay does the same without JS per datagram (native-udp-proxy.ts).

export interface UdpProxyOptions {
  idleTimeoutMs: number;
  maxSessions: number;
}

interface Session {
  key: string;
  client: RemoteInfo;
  socket: Socket;
  backend: Backend;
  last: number;
  ready: boolean;
  queue: Buffer[];
}

export class UdpProxy {
  readonly native = false;
  /** Sessions ended early to make room for a new client at the session bound. */
  evicted = 0;
  private socket: Socket | null = null;
  private readonly sessions = new Map<string, Session>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(public backends: BackendSet, public opts: UdpProxyOptions) {}

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** The counters live here already; the endpoints are read from `backends` per session. */
  refresh(): void {}
  backendsChanged(): void {}

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return this.serve(host, { address: host, port });
  }

  /** Serves the socket an earlier process kept (systemd's store), with the datagrams queued on it; closed when it does not fit. */
  async adopt(fds: number[], host: string, port: number): Promise<{ host: string; port: number }> {
    try {
      if (fds.length !== 1) throw new Error(`stored ${fds.length} sockets, the proxy serves 1`);
      // Not a UDP socket: Node refuses it without taking it (closed here).
      await this.serve(host, { fd: fds[0]! });
    } catch (e) {
      this.close();
      closeFds(fds);
      throw e;
    }
    const a = this.socket!.address();
    const why = addressMismatch(a, host, port);
    if (why) {
      this.close();
      throw new Error(why);
    }
    return { host: a.address, port: a.port };
  }

  fds(): number[] {
    const fd = this.socket ? udpFd(this.socket) : undefined;
    return fd === undefined ? [] : [fd];
  }

  private serve(host: string, how: { address: string; port: number } | { fd: number }): Promise<{ host: string; port: number }> {
    const s = createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4', reuseAddr: false });
    this.socket = s;
    return new Promise((resolve, reject) => {
      s.once('error', reject);
      s.bind(how, () => {
        s.off('error', reject);
        s.on('error', () => {});
        s.on('message', (msg, rinfo) => this.fromClient(msg, rinfo));
        const every = Math.max(100, Math.min(5000, this.opts.idleTimeoutMs / 4));
        this.sweeper = setInterval(() => this.sweep(), every).unref();
        const a = s.address();
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    for (const s of this.sessions.values()) this.end(s);
    try {
      this.socket?.close();
    } catch {
      /* already closed */
    }
    this.socket = null;
  }

  private fromClient(msg: Buffer, client: RemoteInfo): void {
    const key = `${client.address}|${client.port}`;
    let s = this.sessions.get(key);
    if (s && !s.backend.current) {
      // Its endpoint left the registry: the next datagram starts a session elsewhere.
      this.end(s);
      s = undefined;
    }
    if (!s) {
      const backend = this.backends.pick();
      if (!backend) return;
      if (this.sessions.size >= this.opts.maxSessions) this.evictOldest();
      s = this.open(key, client, backend);
    }
    this.touch(s);
    s.backend.bytesOut += msg.length;
    if (s.ready) s.socket.send(msg);
    else if (s.queue.length < 64) s.queue.push(msg);
  }

  private open(key: string, client: RemoteInfo, backend: Backend): Session {
    const socket = createSocket(isIP(backend.host) === 6 ? 'udp6' : 'udp4');
    const s: Session = { key, client, socket, backend, last: Date.now(), ready: false, queue: [] };
    this.sessions.set(key, s);
    backend.active++;
    backend.connections++;
    socket.on('error', () => {
      // ICMP port unreachable shows up here (ECONNREFUSED) on a connected UDP socket.
      if (this.backends.failed(backend)) void 0;
      this.end(s);
    });
    socket.on('message', (reply) => {
      this.touch(s);
      backend.bytesIn += reply.length;
      this.socket?.send(reply, client.port, client.address);
    });
    socket.connect(backend.port, backend.host, () => {
      s.ready = true;
      for (const m of s.queue) socket.send(m);
      s.queue = [];
    });
    return s;
  }

  /** Used now: it moves to the map's end (the most recently used). */
  private touch(s: Session): void {
    s.last = Date.now();
    if (this.sessions.get(s.key) !== s) return;
    this.sessions.delete(s.key);
    this.sessions.set(s.key, s);
  }

  private end(s: Session): void {
    if (this.sessions.get(s.key) !== s) return;
    this.sessions.delete(s.key);
    s.backend.active--;
    try {
      s.socket.close();
    } catch {
      /* already closed */
    }
  }

  private sweep(): void {
    const cutoff = Date.now() - this.opts.idleTimeoutMs;
    for (const s of this.sessions.values()) {
      if (s.last > cutoff) break;
      this.end(s);
    }
  }

  private evictOldest(): void {
    const oldest = this.sessions.values().next();
    if (oldest.done) return;
    this.end(oldest.value);
    this.evicted++;
  }
}
