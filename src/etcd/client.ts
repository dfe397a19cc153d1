import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

// A small etcd v3 client over etcd's own JSON gateway (`POST /v3/...`, served by every etcd ≥ 3.4
// on its client port): the key-value, lease, watch and auth calls the registry backend needs, and
// nothing else. Keys and values travel base64-encoded, int64s as decimal strings (lease ids stay
// strings here; revisions fit a double until 2^53). One endpoint at a time: a call that cannot
// reach it moves to the next endpoint of the list and is tried there once per endpoint.
// Every response body is bounded (MAX_BODY), every call has a timeout.

export interface EtcdOptions {
  endpoints: string[];
  /** PEM contents (not paths): the CA that signed the servers' certificates, and a client certificate. */
  ca?: string;
  cert?: string;
  key?: string;
  username?: string;
  password?: string;
  timeoutMs?: number;
}

export interface KeyValue {
  key: string;
  value: string;
  modRevision: number;
  lease: string;
}

export type WatchEvent = { type: 'put'; kv: KeyValue } | { type: 'delete'; key: string; modRevision: number };

/** An error etcd answered (as opposed to one reaching it): `code` is the gRPC status code. */
export class EtcdError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

/** The watch's start revision was compacted away: list again, then watch from the listed revision. */
export class CompactedError extends Error {
  constructor(readonly compactRevision: number) {
    super(`revision compacted (oldest kept: ${compactRevision})`);
  }
}

const MAX_BODY = 64 * 1024 * 1024;
const GRPC_UNAUTHENTICATED = 16;
const GRPC_PERMISSION_DENIED = 7;

/** The user name or password was refused. */
export class EtcdAuthError extends EtcdError {}

/** TLS connections whose handshake completed (a keep-alive connection is reused by later calls). */
const secured = new WeakSet<object>();

/** Node's codes for a TLS handshake that failed on certificates or protocol (not on reachability). */
const TLS_FAILURE = /^(ERR_SSL_|ERR_TLS_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|UNABLE_TO_|EPROTO$|HOSTNAME_MISMATCH$)/;

/**
 * Why an error is the configuration's fault (retrying cannot help): a refused user or password, a
 * permission missing, a TLS handshake that failed on certificates. Null for a cluster that is only
 * unreachable for now (connection refused, timeouts, no leader).
 */
export function configFault(e: Error): string | null {
  if (e instanceof EtcdAuthError) return `authentication failed (${e.message}): check --etcd-username and --etcd-password-file`;
  if (e instanceof EtcdError && e.code === GRPC_PERMISSION_DENIED) return `permission denied (${e.message}): the etcd user needs read and write access to the prefix`;
  const code = (e as NodeJS.ErrnoException).code;
  if (code && TLS_FAILURE.test(code)) return `TLS failed (${code}: ${e.message}): check the https:// URL, --etcd-ca-file, --etcd-cert-file and --etcd-key-file`;
  // The server took the connection and dropped the handshake (closed or reset it, which of the two
  // is a race): a plain-http port, or one that wants a client certificate.
  if ((e as { inHandshake?: boolean }).inHandshake) return `TLS failed (${e.message}): is that port plain http://, or does it want a client certificate (--etcd-cert-file)?`;
  return null;
}

/** The endpoint an error came from, when the client knows it. */
export const endpointOf = (e: Error): string | undefined => (e as Error & { endpoint?: string }).endpoint;

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined): string => (s ? Buffer.from(s, 'base64').toString('utf8') : '');
/** The smallest key greater than every key with this prefix (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): string {
  const b = Buffer.from(prefix, 'utf8');
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const end = Buffer.from(b.subarray(0, i + 1));
      end[i]!++;
      return end.toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64');
}

interface RawKv {
  key?: string;
  value?: string;
  mod_revision?: string;
  lease?: string;
}
const kvOf = (k: RawKv): KeyValue => ({ key: unb64(k.key), value: unb64(k.value), modRevision: Number(k.mod_revision ?? 0), lease: k.lease ?? '0' });

export type TxnOp = { put: string; value: string; lease?: string } | { del: string };

export interface Watch {
  close(): void;
}

export class EtcdClient {
  private current = 0;
  private token: string | null = null;
  private readonly timeoutMs: number;
  /** Bytes of request bodies sent and of answers and watch messages received (HTTP headers not counted). */
  readonly traffic = { sent: 0, received: 0 };

  constructor(private readonly o: EtcdOptions) {
    if (o.endpoints.length === 0) throw new Error('no etcd endpoint given');
    for (const e of o.endpoints) {
      const u = new URL(e);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`etcd endpoint ${e}: not an http:// or https:// URL`);
    }
    this.timeoutMs = o.timeoutMs ?? 5000;
  }

  /** The endpoint calls go to now. */
  get endpoint(): string {
    return this.o.endpoints[this.current]!;
  }

  async range(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }> {
    const r = (await this.call('/v3/kv/range', { key: b64(prefix), range_end: prefixEnd(prefix) })) as { kvs?: RawKv[]; header?: { revision?: string } };
    return { kvs: (r.kvs ?? []).map(kvOf), revision: Number(r.header?.revision ?? 0) };
  }

  /** Applies every operation in one transaction (all or none). */
  async txn(ops: TxnOp[]): Promise<number> {
    const success = ops.map((op) =>
      'put' in op
        ? { request_put: { key: b64(op.put), value: b64(op.value), ...(op.lease ? { lease: op.lease } : {}) } }
        : { request_delete_range: { key: b64(op.del) } },
    );
    const r = (await this.call('/v3/kv/txn', { success })) as { header?: { revision?: string } };
    return Number(r.header?.revision ?? 0);
  }

  async deletePrefix(prefix: string): Promise<void> {
    await this.call('/v3/kv/deleterange', { key: b64(prefix), range_end: prefixEnd(prefix) });
  }

  async grant(ttlSeconds: number): Promise<string> {
    const r = (await this.call('/v3/lease/grant', { TTL: String(ttlSeconds) })) as { ID?: string; error?: string };
    if (!r.ID) throw new EtcdError(`lease grant: ${r.error ?? 'no lease id'}`, 0);
    return r.ID;
  }

  /** Renews a lease; false when it no longer exists (expired or revoked). */
  async keepAlive(id: string): Promise<boolean> {
    const r = (await this.call('/v3/lease/keepalive', { ID: id })) as { result?: { TTL?: string } };
    return Number(r.result?.TTL ?? 0) > 0;
  }

  async revoke(id: string): Promise<void> {
    await this.call('/v3/lease/revoke', { ID: id });
  }

  /**
   * Follows every change under `prefix` from `fromRevision` on. `onEvents` gets each batch with the
   * revision it brings the watcher to; `onEnd` is called once, with why the watch ended (a
   * CompactedError when fromRevision is gone; the connection dropping; close() → no call).
   */
  watch(prefix: string, fromRevision: number, onEvents: (events: WatchEvent[], revision: number) => void, onEnd: (e: Error) => void): Watch {
    let closed = false;
    let ended = false;
    const end = (e: Error): void => {
      if (closed || ended) return;
      ended = true;
      req.destroy();
      onEnd(e);
    };
    const body = { create_request: { key: b64(prefix), range_end: prefixEnd(prefix), start_revision: String(fromRevision), progress_notify: true } };
    const req = this.send('/v3/watch', body, (res) => {
      if (res.statusCode !== 200) return end(new EtcdError(`watch: HTTP ${res.statusCode}`, 0));
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        this.traffic.received += Buffer.byteLength(chunk);
        buf += chunk;
        if (buf.length > MAX_BODY) return end(new Error('watch: a message over 64 MB'));
        // The gateway writes one JSON object per message, each followed by a newline.
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let msg: { result?: { header?: { revision?: string }; events?: Array<{ type?: string; kv?: RawKv }>; compact_revision?: string; canceled?: boolean; cancel_reason?: string }; error?: { message?: string; grpc_code?: number } };
          try {
            msg = JSON.parse(line);
          } catch {
            return end(new Error('watch: a message that is not JSON'));
          }
          if (msg.error) return end(new EtcdError(`watch: ${msg.error.message ?? 'error'}`, msg.error.grpc_code ?? 0));
          const r = msg.result;
          if (!r) continue;
          if (r.compact_revision && Number(r.compact_revision) > 0) return end(new CompactedError(Number(r.compact_revision)));
          if (r.canceled) return end(new EtcdError(`watch canceled: ${r.cancel_reason ?? 'no reason given'}`, 0));
          const events: WatchEvent[] = (r.events ?? []).map((ev) =>
            ev.type === 'DELETE' ? { type: 'delete', key: unb64(ev.kv?.key), modRevision: Number(ev.kv?.mod_revision ?? 0) } : { type: 'put', kv: kvOf(ev.kv ?? {}) },
          );
          onEvents(events, Number(r.header?.revision ?? 0));
        }
      });
      res.on('end', () => end(new Error('watch: the connection ended')));
      res.on('error', (e) => end(e));
    }, false);
    req.on('error', (e) => {
      (e as Error & { endpoint?: string }).endpoint ??= this.endpoint;
      this.next();
      end(e);
    });
    return {
      close: () => {
        closed = true;
        req.destroy();
      },
    };
  }

  /** A unary call, tried once on each endpoint until one answers; re-authenticates once when a token expired. */
  private async call(path: string, body: unknown, retried = false): Promise<unknown> {
    if (this.o.username && !this.token && path !== '/v3/auth/authenticate') await this.authenticate();
    let lastError: Error | null = null;
    for (let i = 0; i < this.o.endpoints.length; i++) {
      try {
        return await this.unary(path, body);
      } catch (e) {
        (e as Error & { endpoint?: string }).endpoint ??= this.endpoint;
        if (e instanceof EtcdError) {
          if (e.code === GRPC_UNAUTHENTICATED && this.o.username && !retried) {
            this.token = null;
            return this.call(path, body, true);
          }
          throw e;
        }
        lastError = e as Error;
        this.next();
      }
    }
    throw lastError ?? new Error('no etcd endpoint answered');
  }

  private async authenticate(): Promise<void> {
    let r: { token?: string };
    try {
      r = (await this.unary('/v3/auth/authenticate', { name: this.o.username, password: this.o.password ?? '' })) as { token?: string };
    } catch (e) {
      const err = e instanceof EtcdError ? new EtcdAuthError(e.message, e.code) : (e as Error);
      (err as Error & { endpoint?: string }).endpoint = this.endpoint;
      if (!(err instanceof EtcdAuthError)) this.next();
      throw err;
    }
    if (!r.token) throw Object.assign(new EtcdAuthError('authentication: no token in the answer', GRPC_UNAUTHENTICATED), { endpoint: this.endpoint });
    this.token = r.token;
  }

  private next(): void {
    this.current = (this.current + 1) % this.o.endpoints.length;
  }

  private unary(path: string, body: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const req = this.send(path, body, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          this.traffic.received += c.length;
          if (size > MAX_BODY) req.destroy(new Error(`${path}: an answer over 64 MB`));
          else chunks.push(c);
        });
        res.on('end', () => {
          let v: { error?: string; message?: string; code?: number };
          try {
            v = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
          } catch {
            return reject(new Error(`${path}: HTTP ${res.statusCode}, not JSON (is ${this.endpoint} an etcd client URL?)`));
          }
          if (res.statusCode !== 200) return reject(new EtcdError(`${path}: ${v.message ?? v.error ?? `HTTP ${res.statusCode}`}`, v.code ?? 0));
          resolve(v);
        });
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  }

  private send(path: string, body: unknown, onResponse: (res: IncomingMessage) => void, timeout = true): ReturnType<typeof httpRequest> {
    const url = new URL(path, this.endpoint);
    const data = JSON.stringify(body);
    this.traffic.sent += Buffer.byteLength(data);
    const opts = {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...(this.token ? { authorization: this.token } : {}) },
      // A watch is a long-lived stream: its own connection, with no idle timeout (Node's shared
      // agent closes sockets idle for 5 s). A dead etcd shows in the lease renewals instead.
      ...(timeout ? { timeout: this.timeoutMs } : { agent: false }),
    };
    const req =
      url.protocol === 'https:'
        ? httpsRequest(url, { ...opts, ca: this.o.ca, cert: this.o.cert, key: this.o.key }, onResponse)
        : httpRequest(url, opts, onResponse);
    req.on('timeout', () => req.destroy(new Error(`${url.origin}: no answer within ${this.timeoutMs} ms`)));
    if (url.protocol === 'https:') {
      req.on('socket', (s) => {
        if (!secured.has(s)) s.once('secureConnect', () => secured.add(s));
      });
      // Listeners run in order: this one marks the error before the caller's sees it.
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (req.socket && !secured.has(req.socket) && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) Object.assign(e, { inHandshake: true });
      });
    }
    req.end(data);
    return req;
  }
}
