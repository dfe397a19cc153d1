import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Backend, BackendSet } from './backends.js';
import { addressMismatch, closeFds, serverFd } from '../net/sockets.js';
import { proxyV2Header } from './proxy-protocol.js';

// One TCP listener (a VIP:port) relaying each client connection to one backend.
//  - Backpressure: a side's reads pause while the other side's write buffer is full, so a slow
//    reader holds at most about one socket buffer per direction in this process.
//  - Half-close: a FIN from one side is passed on as a FIN to the other (allowHalfOpen), and the
//    other direction keeps flowing until it ends too.
//  - Idle timeout: a connection with no bytes either way for that long is closed (socket
//    timeouts are refreshed by reads and writes on that socket, and every relayed byte is one of
//    each, so one timer per socket covers both directions).
//  - Connection limit: shared by all listeners of the daemon; beyond it a client is closed at once.
//  - Connect failure: the next endpoint is tried (up to `attempts`) and the failed one ejected.
// The relay uses 'data'/'drain' handlers rather than stream.pipe(): same semantics, fewer layers
// per chunk, which is what the keep-alive benchmark measures.

export interface TcpProxyOptions {
  idleTimeoutMs: number;
  connectTimeoutMs: number;
  proxyProtocol: boolean;
  /** Endpoints tried per client connection before giving up. */
  attempts: number;
}

export interface ConnectionLimit {
  active: number;
  max: number;
  refused: number;
}

export interface TcpEvents {
  ejected?(backend: Backend): void;
}

export class TcpProxy {
  private readonly server: Server;
  private readonly open = new Set<Socket>();
  private closing = false;

  constructor(
    public backends: BackendSet,
    public opts: TcpProxyOptions,
    private readonly limit: ConnectionLimit,
    private readonly events: TcpEvents = {},
  ) {
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (c) => this.accept(c));
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return this.serve({ host, port, backlog: 4096 });
  }

  /** Serves a listening socket an earlier process kept (systemd's store); it is closed when it does not fit. */
  async adopt(fds: number[], host: string, port: number): Promise<{ host: string; port: number }> {
    if (fds.length !== 1) {
      closeFds(fds);
      throw new Error(`stored ${fds.length} sockets, the proxy serves 1`);
    }
    // Not a TCP socket: Node refuses it without taking it (closed here).
    const got = await this.serve({ fd: fds[0]!, backlog: 4096 }).catch((e: Error) => {
      closeFds(fds);
      throw e;
    });
    const why = addressMismatch(this.server.address(), host, port);
    if (why) {
      await this.close(true);
      throw new Error(why);
    }
    return got;
  }

  fds(): number[] {
    const fd = serverFd(this.server);
    return fd === undefined ? [] : [fd];
  }

  private serve(how: { host: string; port: number; backlog: number } | { fd: number; backlog: number }): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.server.once('error', onError);
      this.server.listen(how, () => {
        this.server.off('error', onError);
        this.server.on('error', () => {}); // accept errors (EMFILE) are per connection, not fatal
        const a = this.server.address() as { address: string; port: number };
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /**
   * Stops accepting; open connections drain unless `force`. Node closes the listening socket
   * without shutting it down, so on a restart (`_restart`) systemd's copy keeps listening.
   */
  close(force = false, _restart = false): Promise<void> {
    this.closing = true;
    if (force) for (const s of this.open) s.destroy();
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      if (!force) resolve(); // do not wait for draining connections
    });
  }

  get connections(): number {
    return this.open.size;
  }

  /** Resolves once no client connection is open (after close(): the listener has drained). */
  drained(): Promise<void> {
    if (this.open.size === 0) return Promise.resolve();
    return new Promise((resolve) => (this.onDrained = resolve));
  }

  private onDrained: (() => void) | null = null;

  private accept(client: Socket): void {
    const limit = this.limit;
    if (this.closing || limit.active >= limit.max) {
      limit.refused++;
      client.destroy();
      return;
    }
    limit.active++;
    this.open.add(client);
    client.once('close', () => {
      limit.active--;
      this.open.delete(client);
      if (this.open.size === 0 && this.onDrained) {
        this.onDrained();
        this.onDrained = null;
      }
    });
    client.on('error', noop);
    // One timer per connection: every relayed byte is a read or a write on the client socket,
    // and both refresh its timeout, so it sees activity in either direction.
    client.setTimeout(this.opts.idleTimeoutMs, () => client.destroy());
    this.dial(client, undefined);
  }

  private dial(client: Socket, tried: Set<Backend> | undefined): void {
    if (client.destroyed) return;
    const b = this.backends.pick(tried);
    if (!b || (tried && tried.size >= this.opts.attempts)) {
      client.destroy();
      return;
    }
    const rb: ReadBuf = { buf: null };
    const up = connect({
      host: b.host, port: b.port, allowHalfOpen: true, noDelay: true,
      onread: { buffer: () => (rb.buf ??= takeBuffer()), callback: (n, buf) => toClient(n, buf, client, b, rb) },
    });
    up.once('close', () => giveBack(rb));
    b.active++;
    b.connections++;
    const connectTimer = setTimeout(() => up.destroy(new Error('connect timeout')), this.opts.connectTimeoutMs);
    const onFail = (e: NodeJS.ErrnoException) => {
      clearTimeout(connectTimer);
      b.active--;
      b.connections--;
      // Out of file descriptors is this host's problem, not the endpoint's: no ejection.
      if (e.code === 'EMFILE' || e.code === 'ENFILE') return void client.destroy();
      if (this.backends.failed(b)) this.events.ejected?.(b);
      (tried ??= new Set()).add(b);
      this.dial(client, tried);
    };
    up.once('error', onFail);
    up.once('connect', () => {
      clearTimeout(connectTimer);
      up.off('error', onFail);
      up.on('error', noop);
      up.once('close', () => b.active--);
      this.backends.succeeded(b);
      if (client.destroyed) return void up.destroy();
      if (this.opts.proxyProtocol) {
        up.write(proxyV2Header({
          sourceAddress: client.remoteAddress ?? '',
          sourcePort: client.remotePort ?? 0,
          destAddress: client.localAddress ?? '',
          destPort: client.localPort ?? 0,
        }));
      }
      relay(client, up, b);
      closeTogether(up, client);
      client.on('drain', () => up.resume());
      client.resume();
    });
  }
}

// Backend → client goes through `onread`: the bytes land in the connection's read buffer and are
// written straight on, with no Readable stream in between (no per-chunk Buffer, push, emit). The
// socket reads into whatever buffer it was handed after the previous read, so each connection
// has its own; it is reused only when the write completed synchronously (the kernel took every
// byte, nothing queued). Otherwise the queued write keeps it and the next read gets another.
// Buffers come from a small free list, so steady traffic allocates nothing per chunk.
const READ_SIZE = 16 * 1024;
const FREE_MAX = 256;
const free: Buffer[] = [];
interface ReadBuf {
  buf: Buffer | null;
}
const takeBuffer = (): Buffer => free.pop() ?? Buffer.allocUnsafeSlow(READ_SIZE);
function giveBack(rb: ReadBuf): void {
  if (rb.buf && free.length < FREE_MAX) free.push(rb.buf);
  rb.buf = null;
}

function toClient(n: number, buf: Uint8Array, client: Socket, b: Backend, rb: ReadBuf): boolean {
  b.bytesIn += n;
  const ok = client.write(buf.subarray(0, n));
  if (client.writableLength !== 0) rb.buf = null; // lent to the queued write
  return ok; // false pauses the backend socket until the client drains
}

/** Copies client → backend with backpressure (the stream path: accepted sockets have no onread). */
function relay(src: Socket, dst: Socket, b: Backend): void {
  src.on('data', (chunk: Buffer) => {
    b.bytesOut += chunk.length;
    if (!dst.write(chunk)) src.pause();
  });
  dst.on('drain', () => src.resume());
}

/** Passes each side's FIN on, and takes one side down when the other has closed. */
function closeTogether(a: Socket, c: Socket): void {
  for (const [src, dst] of [[a, c], [c, a]] as const) {
    src.once('end', () => {
      if (!dst.destroyed) dst.end();
    });
    src.once('close', () => {
      if (dst.destroyed) return;
      // With `src` gone nothing more can reach its peer: flush what was written to `dst`, close it.
      if (dst.writableFinished || !dst.writable) dst.destroy();
      else {
        dst.end();
        dst.once('finish', () => dst.destroy());
      }
    });
  }
}

function noop(): void {}
