import { timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, isIP } from 'node:net';
import { dirname } from 'node:path';
import type { ApiListen } from '../config/kinds.js';
import { apiListen } from '../config/kinds.js';
import { explainBindError } from '../net/bind-error.js';
import { cidrContains, parseCidr } from '../net/cidr.js';
import { NO_SOCKET_STORE, serverFd, socketName, type SocketStore } from '../net/sockets.js';
import { HttpError, sendJson } from './http.js';
import { match, type ApiContext } from './routes.js';

// The HTTP API listeners: TCP and unix sockets, one request handler. Token rules: on TCP
// listeners writes always need the token (--api-token-file, or the one made in the state
// directory) and reads need it off loopback; on a unix socket the socket's permissions decide. A
// non-loopback listener without --api-token-file is refused at start.

const LOOPBACK = ['127.0.0.0/8', '::1/128'].map((c) => parseCidr(c)!);

export const isLoopbackListen = (l: ApiListen): boolean =>
  l.kind === 'unix' || (isIP(l.host) !== 0 && LOOPBACK.some((c) => cidrContains(c, l.host)));

/** Longest unix socket path the kernel takes (sun_path less its NUL); Node cuts longer ones silently. */
const MAX_SOCKET_PATH = 107;

/** Problem with the listen set, or null: a non-loopback listener needs a token, a socket path must fit. */
export function checkApiListen(listen: ApiListen[], hasToken: boolean): string | null {
  for (const l of listen) {
    if (l.kind === 'unix' && Buffer.byteLength(l.path) > MAX_SOCKET_PATH) {
      return `the API socket path ${l.path} is ${Buffer.byteLength(l.path)} bytes, more than a unix socket takes (${MAX_SOCKET_PATH}); ` +
        'choose a shorter --state-dir (the default socket is <state-dir>/api.sock) or a shorter --api-listen unix:PATH';
    }
  }
  const open = listen.filter((l) => !isLoopbackListen(l));
  if (open.length === 0 || hasToken) return null;
  return `--api-listen ${open.map((l) => apiListen.show(l)).join(',')} is reachable from the network but no --api-token-file is set; ` +
    'set --api-token-file (a file holding a secret token) or listen on loopback/unix only';
}

export class ApiServer {
  private readonly servers: Array<{ listen: ApiListen; server: Server }> = [];
  /**
   * TCP listeners come from and are kept in it across restarts (systemd's descriptor store). Not
   * unix sockets: the path is unlinked when the server closes, so a kept descriptor would serve
   * no path.
   */
  sockets: SocketStore = NO_SOCKET_STORE;
  private token: Buffer;

  constructor(
    private readonly ctx: ApiContext,
    token: string,
  ) {
    this.token = Buffer.from(token);
  }

  setToken(token: string): void {
    this.token = Buffer.from(token);
  }

  get listening(): ApiListen[] {
    return this.servers.map((s) => s.listen);
  }

  async listen(l: ApiListen): Promise<ApiListen> {
    const server = createServer((req, res) => void this.onRequest(req, res, l.kind === 'unix' ? 'socket' : isLoopbackListen(l) ? 'loopback' : 'open'));
    server.keepAliveTimeout = 5000;
    if (l.kind === 'unix') await prepareUnixSocket(l.path);
    const name = l.kind === 'tcp' ? socketName('api', l.host, l.port) : null;
    const adopted = name ? this.sockets.take(name)[0] : undefined;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        reject(
          new Error(
            l.kind === 'unix'
              ? `cannot serve the API on unix:${l.path}: ${e.message}`
              : explainBindError(e, 'serve the API', l.host, l.port, 'tcp', '--api-listen'),
          ),
        );
      });
      if (l.kind === 'unix') server.listen(l.path, resolve);
      else server.listen(adopted !== undefined ? { fd: adopted } : { host: l.host, port: l.port, ipv6Only: true }, resolve);
    });
    const fd = serverFd(server);
    if (name && adopted === undefined && fd !== undefined) this.sockets.keep(name, [fd]);
    if (l.kind === 'unix') chmodSync(l.path, 0o660);
    const addr = server.address();
    const bound: ApiListen = l.kind === 'tcp' && addr && typeof addr === 'object' ? { kind: 'tcp', host: l.host, port: addr.port } : l;
    this.servers.push({ listen: bound, server });
    return bound;
  }

  async close(): Promise<void> {
    await Promise.all(
      this.servers.splice(0).map(({ listen, server }) =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
          if (listen.kind === 'unix') {
            try {
              unlinkSync(listen.path);
            } catch {
              /* already gone */
            }
          }
        }),
      ),
    );
  }

  /**
   * The token as a Bearer token, or as the password of Basic authentication: browsers ask for that
   * themselves, so the status page works on a listener that needs the token (any user name).
   */
  private authorized(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? '';
    const bearer = /^Bearer\s+(\S+)$/i.exec(header);
    const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
    const secret = bearer ? bearer[1]! : basic ? Buffer.from(basic[1]!, 'base64').toString('utf8').replace(/^[^:]*:/, '') : null;
    if (secret === null) return false;
    const given = Buffer.from(secret);
    return given.length === this.token.length && timingSafeEqual(given, this.token);
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse, listener: 'socket' | 'loopback' | 'open'): Promise<void> {
    const { ctx } = this;
    let routeName = 'unmatched';
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const { route, params } = match(req.method ?? 'GET', url.pathname);
      routeName = route.name;
      const needsToken = listener === 'open' || (listener === 'loopback' && route.write);
      if (needsToken && !this.authorized(req)) {
        throw new HttpError(401, 'missing or wrong API token: send "Authorization: Bearer <token>" (the token is in --api-token-file, by default <state-dir>/api-token), or use the unix socket');
      }
      await route.handler(ctx, { req, res, url, params, signal: abort.signal });
    } catch (e) {
      const status = e instanceof HttpError ? e.status : e instanceof URIError ? 400 : 500;
      if (status === 500) ctx.log.error({ err: e, url: req.url }, 'API request failed');
      if (!res.headersSent) {
        sendJson(res, status, { error: status === 500 ? `internal error: ${(e as Error).message}` : (e as Error).message },
          status === 401 ? { 'www-authenticate': routeName.startsWith('/ui') ? 'Basic realm="podman-swarm-dns", charset="UTF-8"' : 'Bearer' } : {});
      } else res.destroy();
    } finally {
      ctx.metrics.apiRequests.inc({ method: req.method ?? '', route: routeName, code: String(res.statusCode) });
    }
  }
}

/** Another process (a daemon) answers on the unix socket this one was to serve. */
export class ApiSocketInUse extends Error {
  constructor(readonly path: string) {
    super(`cannot serve the API on unix:${path}: another daemon is already listening there`);
  }
}

/** Whether a process accepts connections on the unix socket `path`. */
export function unixSocketAlive(path: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Creates the socket's directory and removes a stale socket left by a crashed daemon. */
async function prepareUnixSocket(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  if (await unixSocketAlive(path)) throw new ApiSocketInUse(path);
  try {
    unlinkSync(path);
  } catch {
    /* nothing to remove */
  }
}
