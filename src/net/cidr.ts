import { isIP, isIPv4 } from 'node:net';

// CIDR parsing and matching for ACLs and local-subnet checks. Addresses are compared as bytes so
// that IPv4 and IPv6 share one code path; IPv4-mapped IPv6 sources (::ffff:a.b.c.d, as a dual-stack
// socket reports them) match IPv4 ranges.

export interface Cidr {
  text: string;
  family: 4 | 6;
  bytes: Uint8Array;
  prefix: number;
}

export function ipBytes(ip: string): Uint8Array | null {
  const family = isIP(ip);
  if (family === 4) return v4Bytes(ip);
  if (family !== 6) return null;
  const out = new Uint8Array(16);
  let s = ip;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  // Trailing dotted quad: ::ffff:1.2.3.4
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  let tail: number[] = [];
  if (quad) {
    tail = quad[1]!.split('.').map(Number);
    s = s.slice(0, -quad[1]!.length) + '0:0';
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest ? rest.split(':') : [];
  const groups = [...h, ...Array<string>(8 - h.length - r.length).fill('0'), ...r];
  groups.forEach((g, i) => {
    const v = parseInt(g || '0', 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  if (quad) out.set(tail, 12);
  return out;
}

/** The four numbers of a dotted quad isIP() accepted (digits and three dots), read in place. */
function v4Bytes(ip: string): Uint8Array {
  const out = new Uint8Array(4);
  let at = 0;
  let v = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 0x2e) {
      out[at++] = v;
      v = 0;
    } else v = v * 10 + c - 0x30;
  }
  out[at] = v;
  return out;
}

export function parseCidr(text: string): Cidr | null {
  const [addr, len, extra] = text.split('/');
  if (extra !== undefined || !addr) return null;
  const bytes = ipBytes(addr);
  if (!bytes) return null;
  const max = bytes.length * 8;
  const prefix = len === undefined ? max : /^\d+$/.test(len) ? Number(len) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return null;
  return { text: len === undefined ? `${addr}/${max}` : text, family: bytes.length === 4 ? 4 : 6, bytes, prefix };
}

/** IPv4 bytes of an IPv4 or IPv4-mapped IPv6 address, else the bytes as they are. */
function normalise(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 16 && bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return bytes.subarray(12);
  }
  return bytes;
}

export function cidrContains(c: Cidr, ip: string | Uint8Array): boolean {
  const raw = typeof ip === 'string' ? ipBytes(ip) : ip;
  if (!raw) return false;
  const b = normalise(raw);
  if (b.length !== c.bytes.length) return false;
  let bits = c.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((b[i]! & mask) !== (c.bytes[i]! & mask)) return false;
  }
  return true;
}

/** A set of CIDRs that answers "is this address inside any of them". */
export class CidrSet {
  constructor(private cidrs: Cidr[] = []) {}

  get list(): readonly Cidr[] {
    return this.cidrs;
  }

  has(ip: string): boolean {
    const b = ipBytes(ip);
    return b !== null && this.cidrs.some((c) => cidrContains(c, b));
  }
}

/** The address at `offset` inside a CIDR (offset 10 of 10.223.0.0/16 is 10.223.0.10). */
export function addressAt(c: Cidr, offset: number): string {
  const b = Uint8Array.from(c.bytes);
  let carry = offset;
  for (let i = b.length - 1; i >= 0 && carry > 0; i--) {
    const v = b[i]! + (carry & 0xff);
    b[i] = v & 0xff;
    carry = (carry >>> 8) + (v >> 8);
  }
  return formatIp(b);
}

export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return b.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** One spelling per address (RFC 5952 for IPv6), so lookups by address match. */
export function canonicalIp(ip: string): string {
  // A dotted quad isIPv4() accepts has no leading zeros: it is its one spelling already (every
  // endpoint address goes through here when the registry indexes it).
  if (isIPv4(ip)) return ip;
  const b = ipBytes(ip);
  return b ? formatIp(b) : ip;
}
