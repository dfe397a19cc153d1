import { open } from 'node:fs/promises';
import { isIP } from 'node:net';
import { endianness } from 'node:os';
import { ipBytes } from '../net/cidr.js';

// Which user a query from this host's own address comes from: the uid of the socket that sent it,
// found in /proc/net/{udp,tcp}{,6} by its port. A rootless container's queries reach the host
// through slirp4netns or pasta (its own network mode, or a rootless bridge network's namespace),
// which send them from sockets of the container's user in the host's network namespace; root's
// containers on bridges ask from their own addresses, and this host's other programs from
// sockets of whoever runs them. The rule is in docs/architecture.md#container-names.

/** Bytes read of each table at most: about 6,500 sockets; a busier host's later sockets are not looked at. */
export const PROC_NET_MAX = 1 << 20;
/** Lookups remembered (by transport, address, port) and for how long: a resolver reuses its socket for a burst of queries. */
const MEMO_SIZE = 1024;
const MEMO_MS = 2_000;

export interface Querier {
  address: string;
  port: number;
  transport: 'udp' | 'tcp';
}

/** The address column of /proc/net/*: 32-bit words as the kernel holds them, printed as hex. */
function procAddress(hex: string, little: boolean): Buffer | null {
  if (hex.length !== 8 && hex.length !== 32) return null;
  const raw = Buffer.from(hex, 'hex');
  if (raw.length * 2 !== hex.length) return null;
  if (little) for (let i = 0; i < raw.length; i += 4) raw.subarray(i, i + 4).reverse();
  return raw;
}

const isZero = (b: Buffer): boolean => b.every((x) => x === 0);
/** `b` is `ip`, or ::ffff:`ip` for an IPv4 `ip`. */
function sameAddress(b: Buffer, ip: Uint8Array): boolean {
  if (b.length === ip.length) return b.equals(ip);
  return b.length === 16 && ip.length === 4 && isZero(b.subarray(0, 10)) && b[10] === 0xff && b[11] === 0xff && b.subarray(12).equals(ip);
}

/**
 * The uid owning the socket bound to `port` at `address` (or at the wildcard address, which an
 * unbound sending socket has) in /proc/net/udp-style `text`; undefined when there is none. Pure.
 */
export function socketUid(text: string, address: string, port: number, little = endianness() === 'LE'): number | undefined {
  const ip = ipBytes(address);
  if (!ip || !Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  const portHex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let wildcard: number | undefined;
  for (const line of text.split('\n')) {
    // "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid ..."
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !f[1]?.endsWith(portHex)) continue;
    const local = procAddress(f[1].slice(0, -5), little);
    const uid = Number(f[7]);
    if (!local || !Number.isInteger(uid) || uid < 0) continue;
    if (sameAddress(local, ip)) return uid;
    if (isZero(local)) wildcard ??= uid;
  }
  return wildcard;
}

async function readBounded(path: string, max: number): Promise<string> {
  const fh = await open(path, 'r').catch(() => null);
  if (!fh) return '';
  try {
    const buf = Buffer.alloc(max);
    let n = 0;
    while (n < max) {
      const { bytesRead } = await fh.read(buf, n, max - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return buf.toString('latin1', 0, n);
  } finally {
    await fh.close();
  }
}

/** The uid a query from this host's own address came from (see above), remembered for a moment. */
export class QuerierOwners {
  private readonly memo = new Map<string, { uid: number | undefined; at: number }>();

  constructor(private readonly read: (path: string) => Promise<string> = (p) => readBounded(p, PROC_NET_MAX)) {}

  async uid(q: Querier): Promise<number | undefined> {
    const key = `${q.transport} ${q.address} ${q.port}`;
    const now = Date.now();
    const hit = this.memo.get(key);
    if (hit && now - hit.at < MEMO_MS) return hit.uid;
    // An IPv4 querier may have sent from a dual-stack socket: both tables, IPv4's first.
    const tables = isIP(q.address) === 6 ? [`${q.transport}6`] : [q.transport, `${q.transport}6`];
    let uid: number | undefined;
    for (const table of tables) {
      uid = socketUid(await this.read(`/proc/net/${table}`), q.address, q.port);
      if (uid !== undefined) break;
    }
    if (this.memo.size >= MEMO_SIZE) this.memo.clear();
    this.memo.set(key, { uid, at: now });
    return uid;
  }
}
