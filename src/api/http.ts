import type { IncomingMessage, ServerResponse } from 'node:http';

// Small HTTP helpers: JSON in and out, errors as {"error": "..."} with a status code.

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const MAX_BODY = 64 * 1024;

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    ...(text ? { 'content-type': 'application/json; charset=utf-8' } : {}),
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `request body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new HttpError(400, 'request body is empty; expected a JSON object');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `request body is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Where a request's time went, as a Server-Timing header (`read;dur=0.41, save;dur=5.2`): each
 * mark closes the phase since the one before (the first since the request's handler began).
 */
export class ServerTiming {
  private last = performance.now();
  private readonly phases: string[] = [];

  mark(name: string): void {
    const now = performance.now();
    this.phases.push(`${name};dur=${(now - this.last).toFixed(2)}`);
    this.last = now;
  }

  header(): string {
    return this.phases.join(', ');
  }
}

/** Consul-style durations for `?wait=`: `30s`, `5m`, `500ms`; a bare number is seconds. */
export function parseWait(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw);
  if (!m) throw new HttpError(400, `wait=${raw} is not a duration (e.g. 30s, 5m)`);
  const ms = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
  return Math.min(ms, 10 * 60_000);
}
