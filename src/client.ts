import { request } from 'node:http';

// The CLI's read commands talk to the daemon's API over its unix socket.

export class ClientError extends Error {
  constructor(
    message: string,
    /** HTTP status, or 0 when the daemon could not be reached. */
    readonly status: number,
  ) {
    super(message);
  }
}

export interface ApiResponse<T> {
  status: number;
  body: T;
}

export function apiGet<T>(socketPath: string, path: string, timeoutMs = 10_000): Promise<ApiResponse<T>> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          return reject(new ClientError(`the daemon sent something that is not JSON: ${text.slice(0, 200)}`, res.statusCode ?? 0));
        }
        const status = res.statusCode ?? 0;
        if (status >= 400) {
          return reject(new ClientError((body as { error?: string })?.error ?? `HTTP ${status}`, status));
        }
        resolve({ status, body: body as T });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      const why =
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? 'is the daemon running? (systemctl status podman-swarm-dns)'
          : e.code === 'EACCES'
            ? 'permission denied: run as root or as a member of the socket group'
            : e.message;
      reject(new ClientError(`cannot reach the daemon at unix:${socketPath}: ${why}`, 0));
    });
    req.end();
  });
}
