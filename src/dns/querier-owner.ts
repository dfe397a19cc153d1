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

export interface Querier {
  address: string;
  port: number;
  transport: 'udp' | 'tcp';
}

/** Sockets of one /proc/net table by local port: their local address and owner. */
export type SocketTable = Map<number, Array<{ local: Buffer; uid: number }>>;

/** The address column of /proc/net/*: 32-bit words as the kernel holds them, printed as hex. */
function procAddress(hex: string, little: boolean): Buffer | null {
  if (hex.length !== 8 && hex.length !== 32) return null;
  const raw = Buffer.from(hex, 'hex');
  if (raw.length * 2 !== hex.length) return null;
  if (little) for (let i = 0; i < raw.length; i += 4) raw.subarray(i, i + 4).reverse();
  return raw;
}

const isZero = (b: Uint8Array): boolean => b.every((x) => x === 0);
/** `b` is `ip`, or ::ffff:`ip` for an IPv4 `ip`. */
function sameAddress(b: Buffer, ip: Uint8Array): boolean {
  if (b.length === ip.length) return b.equals(ip);
  return b.length === 16 && ip.length === 4 && isZero(b.subarray(0, 10)) && b[10] === 0xff && b[11] === 0xff && b.subarray(12).equals(ip);
}

/** /proc/net/udp-style text → its sockets by local port. Pure. */
export function parseSocketTable(text: string, little = endianness() === 'LE'): SocketTable {
  const out: SocketTable = new Map();
  for (const line of text.split('\n')) {
    // "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid ..."
    const f = line.trim().split(/\s+/);
    const m = f.length >= 8 ? /^([0-9A-Fa-f]+):([0-9A-Fa-f]{4})$/.exec(f[1]!) : null;
    if (!m) continue;
    const local = procAddress(m[1]!, little);
    const uid = Number(f[7]);
    if (!local || !Number.isInteger(uid) || uid < 0) continue;
    const port = parseInt(m[2]!, 16);
    const list = out.get(port);
    if (list) list.push({ local, uid });
    else out.set(port, [{ local, uid }]);
  }
  return out;
}

/**
 * The uid owning the socket bound to `port` at `address` (or at the wildcard address, which an
 * unbound sending socket has); undefined when there is none. Pure.
 */
export function socketUid(table: SocketTable, address: string, port: number): number | undefined {
  const ip = ipBytes(address);
  if (!ip) return undefined;
  let wildcard: number | undefined;
  for (const s of table.get(port) ?? []) {
    if (sameAddress(s.local, ip)) return s.uid;
    if (isZero(s.local)) wildcard ??= s.uid;
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

interface Read {
  started: number;
  done: boolean;
  table: Promise<SocketTable>;
}

/**
 * The uid a query from this host's own address came from (see above). A lookup needs a read of
 * the table that started after the query arrived (its socket is there then); queries arriving
 * meanwhile share the reads: per table at most one read runs and one waits, whatever the rate.
 */
export class QuerierOwners {
  private readonly current = new Map<string, Read>();
  private readonly next = new Map<string, Promise<SocketTable>>();

  constructor(private readonly read: (path: string) => Promise<string> = (p) => readBounded(p, PROC_NET_MAX)) {}

  async uid(q: Querier): Promise<number | undefined> {
    if (!Number.isInteger(q.port) || q.port <= 0 || q.port > 65535) return undefined;
    const arrived = performance.now();
    // An IPv4 querier may have sent from a dual-stack socket: both tables, IPv4's first.
    const tables = isIP(q.address) === 6 ? [`${q.transport}6`] : [q.transport, `${q.transport}6`];
    for (const name of tables) {
      const uid = socketUid(await this.table(`/proc/net/${name}`, arrived), q.address, q.port);
      if (uid !== undefined) return uid;
    }
    return undefined;
  }

  /** A read of `path` started at `since` or later: the running one if it did, else the one after it. */
  private table(path: string, since: number): Promise<SocketTable> {
    const cur = this.current.get(path);
    if (cur && cur.started >= since) return cur.table;
    if (!cur || cur.done) return this.start(path);
    let queued = this.next.get(path);
    if (!queued) {
      queued = cur.table.then(() => this.start(path));
      this.next.set(path, queued);
    }
    return queued;
  }

  private start(path: string): Promise<SocketTable> {
    this.next.delete(path);
    const r: Read = { started: performance.now(), done: false, table: Promise.resolve(new Map()) };
    r.table = this.read(path)
      .then((text) => parseSocketTable(text))
      .catch(() => new Map() as SocketTable)
      .finally(() => (r.done = true));
    this.current.set(path, r);
    return r.table;
  }
}
