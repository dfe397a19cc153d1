import { request } from 'node:http';
import { connect } from 'node:net';

// The network probes of docs/architecture.md#health. Each resolves to null on success or a short reason on failure;
// none of them ever rejects.

export function tcpProbe(host: string, port: number, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (reason: string | null): void => {
      sock.destroy();
      resolve(reason);
    };
    sock.setTimeout(timeoutMs, () => done(`tcp ${host}:${port}: no connection within ${timeoutMs} ms`));
    sock.once('connect', () => done(null));
    sock.once('error', (e) => done(`tcp ${host}:${port}: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
  });
}

/** GET; 2xx and 3xx are healthy. */
export function httpProbe(host: string, port: number, path: string, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const hostHeader = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const req = request({ host, port, path, method: 'GET', timeout: timeoutMs, headers: { host: hostHeader, 'user-agent': 'podman-swarm-dns health' } }, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      resolve(code >= 200 && code < 400 ? null : `http ${hostHeader}${path}: status ${code}`);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve(`http ${hostHeader}${path}: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    req.end();
  });
}

/**
 * A probe that found no route at all (ENETUNREACH): the address lives where this host cannot go
 * (a container IP inside a rootless user's network namespace). Such an endpoint is "not checkable"
 * rather than unhealthy: a failing check would withdraw it from the whole cluster although its
 * clients, who reach it another way, are fine.
 */
export const noRoute = (reason: string | null): boolean => reason !== null && /: (ENETUNREACH|EADDRNOTAVAIL)$/.test(reason);
