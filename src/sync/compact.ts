import { isIPv4, isIPv6 } from 'node:net';
import { validEndpoint } from '../registry/remote.js';
import type { Endpoint, NamedPort } from '../registry/types.js';

// The compact wire form of endpoints (pure: no I/O). An endpoint is an array of values in a fixed
// order, not a map with key names, and its parts take their shortest exact form:
//   - strings go through a table shared by one message: a string seen before in the message (or
//     one of the common strings below) is written as its index, so an endpoint's hostname, id and
//     container name, usually the same string, cost one byte after the first;
//   - an IPv4 address is a 32-bit integer, an IPv6 address 16 raw bytes (when the text is the
//     canonical form of those bytes; any other text travels as it is);
//   - a container id of 64 hex digits is 32 raw bytes; a node id of 32 hex digits 16 raw bytes;
//   - lastSeen is written as how long before the message's version it was (a few bytes, 0 for a
//     change seen now), ports as (name, port, hostPort × 2 + udp) triples, flags as one integer.
// Decoding rebuilds exactly the object the owner had (its canonical encoding, and so its hash,
// is the same), or refuses: bad input gives null, never a throw.

/** Strings common in endpoints: the table every message starts with (part of the format). */
const COMMON = ['default', 'tcp', 'udp', 'podman', 'api', 'config', 'none', 'dnsrr', 'vip', 'http', 'https', 'bridge'] as const;
/** Most strings one message may name (bounds the table a hostile message can make a receiver build). */
const MAX_STRINGS = 1 << 16;

/** Writes strings once per message; later uses are an index. */
export class StringsOut {
  private readonly index = new Map<string, number>(COMMON.map((s, i) => [s, i]));
  put(s: string): string | number {
    const i = this.index.get(s);
    if (i !== undefined) return i;
    if (this.index.size < MAX_STRINGS) this.index.set(s, this.index.size);
    return s;
  }
}

/** Reads what StringsOut wrote; throws on anything else. */
export class StringsIn {
  private readonly table: string[] = [...COMMON];
  get(v: unknown, max = 1024): string {
    if (typeof v === 'string') {
      if (v.length > max) bad();
      if (this.table.length < MAX_STRINGS) this.table.push(v);
      return v;
    }
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < this.table.length) {
      const s = this.table[v]!;
      return s.length <= max ? s : bad();
    }
    return bad();
  }
}

/** Thrown inside a decoder, turned into null at its edge (orNull). */
const bad = (): never => {
  throw new Error('not well-formed');
};
/** `fn`'s result, or null when the input was not well-formed (whatever the decoder threw). */
export function orNull<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch {
    return null;
  }
}

const int = (v: unknown): number => (Number.isSafeInteger(v) ? (v as number) : bad());

// ---- ids ----

const HEX32 = /^[0-9a-f]{32}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');

/** A node id: 16 raw bytes when it is a derived id (32 hex digits), else the string. */
export const idOut = (id: string): Uint8Array | string => (HEX32.test(id) ? new Uint8Array(Buffer.from(id, 'hex')) : id);
export function idIn(v: unknown): string | null {
  if (v instanceof Uint8Array) return v.length === 16 ? hex(v) : null;
  return typeof v === 'string' && v.length <= 64 ? v : null;
}

// ---- addresses ----

export function addrOut(a: string): number | Uint8Array | string {
  if (isIPv4(a)) {
    const n = a.split('.').map(Number);
    const v = ((n[0]! << 24) | (n[1]! << 16) | (n[2]! << 8) | n[3]!) >>> 0;
    return v4(v) === a ? v : a;
  }
  if (isIPv6(a)) {
    const b = v6Bytes(a);
    return b && v6(b) === a ? b : a;
  }
  return a;
}

export function addrIn(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? v4(v) : bad();
  if (v instanceof Uint8Array) return v.length === 16 ? v6(v) : bad();
  if (typeof v === 'string' && v.length <= 64) return v;
  return bad();
}

const v4 = (v: number): string => `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;

/** The 16 bytes of an IPv6 address in plain hex-group form (no embedded IPv4), or null. */
function v6Bytes(a: string): Uint8Array | null {
  const halves = a.split('::');
  if (halves.length > 2 || a.includes('.')) return null;
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return null;
  const all = [...head, ...Array<string>(fill).fill('0'), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-f]{1,4}$/.test(all[i]!)) return null;
    const g = parseInt(all[i]!, 16);
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 255;
  }
  return out;
}

/** The canonical text of an IPv6 address (RFC 5952: lower case, the longest run of 2+ zero groups as ::). */
function v6(b: Uint8Array): string {
  const g = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  let best = -1;
  let len = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > len) [best, len] = [i, j - i];
    i = Math.max(i, j);
  }
  const txt = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  return best < 0 ? txt(g) : `${txt(g.slice(0, best))}::${txt(g.slice(best + len))}`;
}

// ---- endpoints ----

const F = { explicit: 1, healthy: 2, mode: 4, ttl: 8, container: 16, network: 32, owner: 64, isolated: 128, isolatedTrue: 256, problems: 512 } as const;

/** `lastSeen` as an offset back from `version` when both are whole numbers, else as it is (a float). */
function timeOut(t: number, version: number): number {
  return Number.isSafeInteger(t) && Number.isSafeInteger(version - t) ? version - t : t;
}
const timeIn = (v: unknown, version: number): number => (Number.isSafeInteger(v) ? version - (v as number) : typeof v === 'number' ? v : bad());

/** The compact form of an endpoint, its strings through `s`, lastSeen relative to `version`. */
export function endpointOut(e: Endpoint, s: StringsOut, version: number): unknown[] {
  const c = e.container;
  let flags = (e.explicit ? F.explicit : 0) | (e.healthy ? F.healthy : 0);
  if (e.mode !== undefined) flags |= F.mode;
  if (e.ttl !== undefined) flags |= F.ttl;
  if (c) {
    flags |= F.container;
    if (c.network !== undefined) flags |= F.network;
    if (c.owner !== undefined) flags |= F.owner;
    if (c.isolated !== undefined) flags |= F.isolated | (c.isolated ? F.isolatedTrue : 0);
  }
  if (e.problems !== undefined) flags |= F.problems;
  // Strings enter the table in the order the decoder reads them: write them in that order.
  const out: unknown[] = [flags, s.put(e.namespace), s.put(e.service), s.put(e.id), s.put(e.hostname), e.addresses.map(addrOut)];
  const ports: unknown[] = [];
  for (const [name, p] of Object.entries(e.ports)) ports.push(s.put(name), p.port, (p.hostPort ?? 0) * 2 + (p.protocol === 'udp' ? 1 : 0));
  out.push(ports, e.weight, s.put(e.health), s.put(e.source), timeOut(e.lastSeen, version));
  if (e.mode !== undefined) out.push(s.put(e.mode));
  if (e.ttl !== undefined) out.push(e.ttl);
  if (c) {
    out.push(HEX64.test(c.id) ? new Uint8Array(Buffer.from(c.id, 'hex')) : s.put(c.id), s.put(c.name));
    if (c.network !== undefined) out.push(s.put(c.network));
    if (c.owner !== undefined) out.push(s.put(c.owner));
  }
  if (e.problems !== undefined) out.push(e.problems.map((p) => s.put(p)));
  return out;
}

/** The endpoint `endpointOut` wrote; throws when `v` is not one (a valid one: validEndpoint). */
export function endpointIn(v: unknown, s: StringsIn, version: number): Endpoint {
  if (!Array.isArray(v) || v.length < 11 || v.length > 19) bad();
  const a = v as unknown[];
  let at = 11;
  const next = (): unknown => (at < a.length ? a[at++] : bad());
  const flags = int(a[0]);
  const [namespace, service, id, hostname] = [s.get(a[1]), s.get(a[2]), s.get(a[3]), s.get(a[4])];
  if (!Array.isArray(a[5]) || a[5].length > 16) bad();
  const addresses = (a[5] as unknown[]).map(addrIn);
  if (!Array.isArray(a[6]) || a[6].length % 3 !== 0 || a[6].length > 3 * 64) bad();
  const p = a[6] as unknown[];
  const ports: Record<string, NamedPort> = {};
  for (let i = 0; i < p.length; i += 3) {
    const name = s.get(p[i], 63);
    const x = int(p[i + 2]);
    const port: NamedPort = { port: int(p[i + 1]), protocol: x % 2 ? 'udp' : 'tcp' };
    if (x >= 2) port.hostPort = Math.floor(x / 2);
    ports[name] = port;
  }
  const e: Endpoint = { id, namespace, service, hostname, addresses, explicit: !!(flags & F.explicit), ports, weight: int(a[7]), health: s.get(a[8]) as Endpoint['health'], healthy: !!(flags & F.healthy), source: s.get(a[9]) as Endpoint['source'], lastSeen: timeIn(a[10], version) };
  if (flags & F.mode) e.mode = s.get(next()) as Endpoint['mode'];
  if (flags & F.ttl) e.ttl = typeof a[at] === 'number' ? (next() as number) : bad();
  if (flags & F.container) {
    const cid = next();
    const c: NonNullable<Endpoint['container']> = { id: cid instanceof Uint8Array ? (cid.length === 32 ? hex(cid) : bad()) : s.get(cid, 256), name: s.get(next(), 256) };
    if (flags & F.network) c.network = s.get(next(), 256);
    if (flags & F.owner) c.owner = s.get(next(), 256);
    if (flags & F.isolated) c.isolated = !!(flags & F.isolatedTrue);
    e.container = c;
  }
  if (flags & F.problems) {
    const ps = next();
    if (!Array.isArray(ps) || ps.length > 64) bad();
    e.problems = (ps as unknown[]).map((x) => s.get(x, 1000));
  }
  if (at !== a.length || flags >= 1024 || !validEndpoint(e)) bad();
  return e;
}
