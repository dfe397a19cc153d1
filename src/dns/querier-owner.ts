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

/** Sockets of one /proc/net table by local port: their local address (as the table prints it) and owner. */
export type SocketTable = Map<number, Array<{ local: string; uid: number }>>;

/** `ip` as the address column of /proc/net/* prints it: 32-bit words as the kernel holds them, in hex. */
function procHex(ip: Uint8Array, little: boolean): string {
  const b = Buffer.from(ip);
  if (little) for (let i = 0; i < b.length; i += 4) b.subarray(i, i + 4).reverse();
  return b.toString('hex').toUpperCase();
}

const LINE = /^\s*\d+: ([0-9A-F]{8}|[0-9A-F]{32}):([0-9A-F]{4}) \S+ \S+ \S+ \S+ \S+\s+(\d+) /gm;

/** /proc/net/udp-style text → its sockets by local port. Pure; one regular expression over the text (no per-line allocations beyond the match). */
export function parseSocketTable(text: string, out: SocketTable = new Map()): SocketTable {
  for (const m of text.matchAll(LINE)) {
    const port = parseInt(m[2]!, 16);
    const entry = { local: m[1]!, uid: Number(m[3]) };
    const list = out.get(port);
    if (list) list.push(entry);
    else out.set(port, [entry]);
  }
  return out;
}

/**
 * The uid owning the socket bound to `port` at `address` (or to ::ffff:`address`, or at the
 * wildcard address, which an unbound sending socket has); undefined when there is none. Pure.
 */
export function socketUid(table: SocketTable, address: string, port: number, little = endianness() === 'LE'): number | undefined {
  const ip = ipBytes(address);
  if (!ip) return undefined;
  const exact = new Set([procHex(ip, little)]);
  if (ip.length === 4) exact.add(procHex(Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...ip]), little));
  let wildcard: number | undefined;
  for (const s of table.get(port) ?? []) {
    if (exact.has(s.local)) return s.uid;
    if (/^0+$/.test(s.local)) wildcard ??= s.uid;
  }
  return wildcard;
}

/** Up to `max` bytes of `path`, in as few reads as the kernel allows (each read of a /proc/net table walks it again). */
async function readBounded(path: string, max: number): Promise<string> {
  const fh = await open(path, 'r').catch(() => null);
  if (!fh) return '';
  try {
    const buf = Buffer.allocUnsafe(max);
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

/** Text parsed per PARSE_SLICE bytes (whole lines), a turn of the event loop each: a full 1 MiB table never holds it long. */
const PARSE_SLICE = 64 << 10;

async function parseInSlices(text: string): Promise<SocketTable> {
  const out: SocketTable = new Map();
  for (let at = 0; at < text.length; ) {
    const nl = text.indexOf('\n', Math.min(at + PARSE_SLICE, text.length));
    const end = nl < 0 ? text.length : nl + 1;
    parseSocketTable(text.slice(at, end), out);
    at = end;
    if (at < text.length) await new Promise((r) => setImmediate(r));
  }
  return out;
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
      .then(parseInSlices)
      .catch(() => new Map() as SocketTable)
      .finally(() => (r.done = true));
    this.current.set(path, r);
    return r.table;
  }
}
