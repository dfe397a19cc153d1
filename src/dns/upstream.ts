import { createSocket } from 'node:dgram';
import { isIP, Socket } from 'node:net';
import type { HostPort } from '../config/kinds.js';
import { canonicalIp } from '../net/cidr.js';

// One query to one upstream server, over UDP or TCP. Each UDP exchange uses a fresh socket, so
// the source port is random per query, and the reply must come from the server we asked, carry
// our id and repeat our question — the usual defences against spoofed answers.

export class UpstreamError extends Error {
  constructor(
    readonly upstream: string,
    readonly reason: 'timeout' | 'network' | 'mismatch',
    message: string,
  ) {
    super(message);
  }
}

const label = (u: HostPort): string => (isIP(u.host) === 6 ? `[${u.host}]:${u.port}` : `${u.host}:${u.port}`);

/** Same id and the same question bytes (names compared case-insensitively). */
function matches(query: Buffer, reply: Buffer): boolean {
  if (reply.length < 12 || reply.readUInt16BE(0) !== query.readUInt16BE(0)) return false;
  if (!(reply.readUInt16BE(2) & 0x8000)) return false;
  const qdcount = query.readUInt16BE(4);
  if (reply.readUInt16BE(4) !== qdcount) return false;
  if (qdcount === 0) return true;
  let end = 12;
  while (end < query.length && query[end] !== 0) end += query[end]! + 1;
  end += 5;
  if (end > query.length || end > reply.length) return false;
  return query.subarray(12, end).toString('latin1').toLowerCase() === reply.subarray(12, end).toString('latin1').toLowerCase();
}

export function exchangeUdp(upstream: HostPort, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(isIP(upstream.host) === 6 ? 'udp6' : 'udp4');
    const from = canonicalIp(upstream.host);
    const done = (err: Error | null, reply?: Buffer): void => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(
      () => done(new UpstreamError(label(upstream), 'timeout', `no answer from ${label(upstream)} in ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on('error', (e) => done(new UpstreamError(label(upstream), 'network', `${label(upstream)}: ${e.message}`)));
    sock.on('message', (msg, rinfo) => {
      // Anything else arriving on this port is ignored, not trusted.
      if (rinfo.port !== upstream.port || canonicalIp(rinfo.address) !== from || !matches(query, msg)) return;
      done(null, msg);
    });
    sock.send(query, upstream.port, upstream.host);
  });
}

export function exchangeTcp(upstream: HostPort, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = new Socket();
    let buf = Buffer.alloc(0);
    const done = (err: Error | null, reply?: Buffer): void => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(
      () => done(new UpstreamError(label(upstream), 'timeout', `no TCP answer from ${label(upstream)} in ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on('error', (e) => done(new UpstreamError(label(upstream), 'network', `${label(upstream)} (tcp): ${e.message}`)));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 2) return;
      const len = buf.readUInt16BE(0);
      if (buf.length < len + 2) return;
      const reply = buf.subarray(2, len + 2);
      if (!matches(query, reply)) done(new UpstreamError(label(upstream), 'mismatch', `${label(upstream)} (tcp) answered another question`));
      else done(null, reply);
    });
    sock.on('end', () => done(new UpstreamError(label(upstream), 'network', `${label(upstream)} (tcp) closed the connection`)));
    sock.connect(upstream.port, upstream.host, () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
  });
}

export { label as upstreamLabel };
