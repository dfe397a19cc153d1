import { request, type ClientRequest, type IncomingMessage } from 'node:http';

// The libpod REST API over its unix socket. Node's http with `socketPath` is all it takes; the
// event stream is newline-delimited JSON on a response that never ends.

export const API_PREFIX = '/v4.0.0/libpod';

export class PodmanError extends Error {
  constructor(
    message: string,
    /** HTTP status, or 0 when the socket could not be reached at all. */
    readonly status: number,
  ) {
    super(message);
  }
}

export interface EventStream {
  /** Resolves when the stream ends (Podman stopped or restarted), rejects on a connection error. */
  done: Promise<void>;
  close(): void;
}

export class PodmanClient {
  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = 10_000,
  ) {}

  getJson<T>(path: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, path: API_PREFIX + path, timeout: this.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if ((res.statusCode ?? 0) >= 300) {
            let msg = body.trim();
            try {
              msg = (JSON.parse(body) as { message?: string }).message ?? msg;
            } catch {
              // not JSON: keep the raw text
            }
            return reject(new PodmanError(`GET ${path}: ${res.statusCode} ${msg}`, res.statusCode ?? 500));
          }
          try {
            resolve(JSON.parse(body) as T);
          } catch (e) {
            reject(new PodmanError(`GET ${path}: not JSON (${(e as Error).message})`, 502));
          }
        });
      });
      req.on('timeout', () => req.destroy(new PodmanError(`GET ${path}: no answer within ${this.timeoutMs} ms`, 0)));
      req.on('error', (e) => reject(e instanceof PodmanError ? e : new PodmanError(e.message, 0)));
      req.end();
    });
  }

  /**
   * Streams events; `onConnect` fires once the socket is connected (before any event: Podman
   * sends nothing until something happens), `onEvent` for every parsed line.
   */
  events(filters: Record<string, string[]>, onConnect: () => void, onEvent: (e: unknown) => void): EventStream {
    let req: ClientRequest;
    const done = new Promise<void>((resolve, reject) => {
      const path = `${API_PREFIX}/events?stream=true&filters=${encodeURIComponent(JSON.stringify(filters))}`;
      req = request({ socketPath: this.socketPath, path }, (res: IncomingMessage) => {
        if ((res.statusCode ?? 0) >= 300) {
          res.resume();
          return reject(new PodmanError(`events: HTTP ${res.statusCode}`, res.statusCode ?? 500));
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            let parsed: unknown;
            try {
              parsed = JSON.parse(line);
            } catch {
              continue; // a garbled line is skipped; the periodic resync repairs anything missed
            }
            onEvent(parsed);
          }
        });
        res.on('end', () => resolve());
        res.on('close', () => resolve());
        res.on('error', () => resolve());
      });
      req.on('socket', (s) => {
        if (s.connecting) s.once('connect', onConnect);
        else onConnect();
      });
      req.on('error', (e) => reject(new PodmanError(e.message, 0)));
      req.end();
    });
    return { done, close: () => req.destroy() };
  }
}
