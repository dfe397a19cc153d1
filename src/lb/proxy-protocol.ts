import { isIP } from 'node:net';
import { ipBytes } from '../net/cidr.js';

// PROXY protocol version 2 (haproxy.org/download/2.9/doc/proxy-protocol.txt section 2.2): a binary header
// sent to the backend before the client's bytes, so the backend sees the real client address
// instead of the proxy's. Only the PROXY command with TCP over IPv4/IPv6 is produced.

const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

export interface ProxyEnds {
  sourceAddress: string;
  sourcePort: number;
  destAddress: string;
  destPort: number;
}

/** Strips the ::ffff: of an IPv4-mapped address, as dual-stack sockets report IPv4 peers. */
function unmap(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

export function proxyV2Header(e: ProxyEnds, protocol: 'tcp' | 'udp' = 'tcp'): Buffer {
  let src = ipBytes(unmap(e.sourceAddress));
  let dst = ipBytes(unmap(e.destAddress));
  if (!src || !dst) return localHeader();
  // Both ends must be the same family: widen an IPv4 one to IPv4-mapped IPv6.
  if (src.length !== dst.length) {
    if (src.length === 4) src = mapped(src);
    if (dst.length === 4) dst = mapped(dst);
  }
  const v6 = src.length === 16;
  const addrLen = v6 ? 36 : 12;
  const out = Buffer.alloc(16 + addrLen);
  SIGNATURE.copy(out, 0);
  out[12] = 0x21; // version 2, PROXY
  out[13] = (v6 ? 0x20 : 0x10) | (protocol === 'tcp' ? 0x01 : 0x02);
  out.writeUInt16BE(addrLen, 14);
  out.set(src, 16);
  out.set(dst, 16 + src.length);
  out.writeUInt16BE(e.sourcePort, 16 + 2 * src.length);
  out.writeUInt16BE(e.destPort, 18 + 2 * src.length);
  return out;
}

/** LOCAL command: the backend uses the connection's own addresses (unknown client). */
function localHeader(): Buffer {
  const out = Buffer.alloc(16);
  SIGNATURE.copy(out, 0);
  out[12] = 0x20;
  out[13] = 0x00;
  return out;
}

function mapped(v4: Uint8Array): Uint8Array {
  const b = new Uint8Array(16);
  b[10] = 0xff;
  b[11] = 0xff;
  b.set(v4, 12);
  return b;
}

/** Parses a v2 header at the start of `buf` (tests, and backends written in JS). */
export function parseProxyV2(buf: Buffer): { length: number; ends: ProxyEnds | null } | null {
  if (buf.length < 16 || !buf.subarray(0, 12).equals(SIGNATURE)) return null;
  const len = buf.readUInt16BE(14);
  if (buf.length < 16 + len) return null;
  const fam = buf[13]! >> 4;
  if ((buf[12]! & 0x0f) === 0 || (fam !== 1 && fam !== 2)) return { length: 16 + len, ends: null };
  const n = fam === 1 ? 4 : 16;
  const ip = (o: number) => (n === 4 ? [...buf.subarray(o, o + 4)].join('.') : formatV6(buf.subarray(o, o + 16)));
  return {
    length: 16 + len,
    ends: {
      sourceAddress: ip(16),
      destAddress: ip(16 + n),
      sourcePort: buf.readUInt16BE(16 + 2 * n),
      destPort: buf.readUInt16BE(18 + 2 * n),
    },
  };
}

function formatV6(b: Uint8Array): string {
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return g.join(':');
}
