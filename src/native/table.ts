import type { Answer as RR } from 'dns-packet';
import type { Cidr } from '../net/cidr.js';
import { ipBytes } from '../net/cidr.js';
import { ByteWriter, encodeRecord, nameContext, type Wire } from '../dns/message.js';
import { answerQuestion, type Answer, type Zone, type ZoneSource } from '../dns/records.js';
import { PODMAN_SOA } from '../dns/scoped.js';
import { servable, type ServiceView, type ViewEndpoint } from '../registry/view.js';

// The compiled answer table for the native fast path (native/src/answer.rs reads it). Pure: the
// zone view in, bytes out. Every entry is produced by the JS path's own answerQuestion() and its
// records by the JS path's own encoder (src/dns/message.ts), so the two paths cannot disagree on
// what a name means or how a record is written; only the final assembly (rotation, prefer-local
// grouping, zone pointers, EDNS size, truncation) is repeated natively.

/** Client classes the native side needs: recursion (RA flag) and local (prefer-local variant). */
export const CLIENT_RECURSION = 1;
export const CLIENT_LOCAL = 2;
/** One of this host's own addresses: sees the container names of every network. */
export const CLIENT_HOST = 4;

export interface ClientClass {
  cidr: Cidr;
  flags: number;
}

/** Podman container names per network (src/dns/scoped.ts ContainerNames). */
export interface ContainerScopes {
  scopes(): Iterable<{ subnets: readonly Cidr[]; names: ReadonlyMap<string, string[]>; reverse: ReadonlyMap<string, string[]> }>;
}

export interface TableInput {
  zone: Zone;
  services: Iterable<ServiceView>;
  clients: ClientClass[];
  containers?: ContainerScopes;
}

/** Format version of the table (answer.rs refuses others). */
export const TABLE_VERSION = 2;
const ZONE_TYPES = ['A', 'AAAA', 'SRV', 'SOA', 'NS', 'TXT'] as const;
const TYPE_CODES: Record<string, number> = { A: 1, NS: 2, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33 };
const RCODE: Record<string, number> = { NOERROR: 0, NXDOMAIN: 3 };

class Writer extends ByteWriter {
  constructor() {
    super(256);
  }
  /**
   * Drops the growth slack (up to half the buffer) of bytes that stay in a cache. The copy is
   * not from Node's buffer pool: a pooled slice would keep its whole 8 KB slab alive, mostly
   * garbage of the same compilation.
   */
  compact(): void {
    if (this.buf.length === this.n && this.n >= 4096) return;
    const exact = Buffer.allocUnsafeSlow(this.n);
    this.buf.copy(exact, 0, 0, this.n);
    this.buf = exact;
  }
}

/** `name` (no trailing dot) in wire form, lower case, with the root label. */
export function wireName(name: string): Buffer {
  const parts = name === '' ? [] : name.toLowerCase().split('.');
  return Buffer.concat([...parts.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);
}

/** 16-byte form (IPv4 mapped into ::ffff:0:0/96) and prefix, as answer.rs matches clients. */
function cidr16(c: Cidr): { addr: Uint8Array; prefix: number } {
  if (c.family === 6) return { addr: c.bytes, prefix: c.prefix };
  const addr = new Uint8Array(16);
  addr[10] = 0xff;
  addr[11] = 0xff;
  addr.set(c.bytes, 12);
  return { addr, prefix: c.prefix + 96 };
}

interface Item {
  /** 0: a record; 1: the zone's negative SOA (by reference, its serial changes with every table). */
  kind: 0 | 1;
  wire: Wire;
}

interface Variant {
  groups: Item[][];
  additional: Item[];
}

interface Entry {
  /** Also the answer of the same name with `svc.` before the zone (see answer.rs svc_alias). */
  alias?: boolean;
  scopes: Cidr[];
  rcode: number;
  variants: Variant[];
  authority: Item[];
}

/** The records of answers to `qname` (under `domain`, or not), encoded as the JS path encodes them. */
function items(rrs: RR[], qname: string, domain: string): Item[] {
  const ctx = nameContext(qname, domain);
  return rrs.map((rr) => ({ kind: 0, wire: encodeRecord(rr, ctx) }));
}

function dedup(list: Item[], seen: Set<string> = new Set()): Item[] {
  return list.filter((it) => {
    const k = `${it.kind}${it.wire.bytes.toString('latin1')}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * A zone whose service `key` shows only the servable endpoints `keep` accepts. The restricted
 * view is made once per view, not per question: a service's names then cost O(endpoints).
 */
function restricted(zone: Zone, key: string, keep: (e: ViewEndpoint) => boolean): Zone {
  const src = zone.source;
  const failOpen = zone.settings.failOpen;
  let of: ServiceView | undefined;
  let only: ServiceView | undefined;
  const source: ZoneSource = {
    service: (ns, svc) => {
      const v = src.service(ns, svc);
      if (!v || v.key !== key) return v;
      if (v !== of) only = { ...(of = v), endpoints: servable(v, failOpen).filter(keep) };
      return only;
    },
    hasNamespace: (ns) => src.hasNamespace(ns),
    get serviceCount() {
      return src.serviceCount;
    },
    lookupAddress: (ip) => src.lookupAddress(ip),
  };
  return { settings: zone.settings, source };
}

/** Serialized entries (key + entry, answer.rs format) and how many. */
class Chunk {
  readonly w = new Writer();
  count = 0;

  /** Entries added while set answer for `<name>` with `svc.` before the zone too. */
  alias = false;

  add(name: string, type: number, e: Entry): void {
    if (this.alias) e.alias = true;
    const k = wireName(name);
    this.w.u16(k.length + 2);
    this.w.bytes(k);
    this.w.u16(type);
    writeEntry(this.w, e);
    this.count++;
  }
}

function writeItem(w: Writer, it: Item): void {
  w.u8(it.kind);
  w.u8(it.wire.patches.length);
  for (const p of it.wire.patches) w.u16(p);
  w.u16(it.wire.bytes.length);
  w.bytes(it.wire.bytes);
}

function writeItems(w: Writer, list: Item[]): void {
  w.u16(list.length);
  for (const it of list) writeItem(w, it);
}

const ZONE_SOA: Item = { kind: 1, wire: { bytes: Buffer.alloc(0), patches: [] } };

function writeCidr(w: Writer, c: Cidr): void {
  const { addr, prefix } = cidr16(c);
  w.bytes(addr);
  w.u8(prefix);
}

function writeEntry(w: Writer, e: Entry): void {
  w.u8(e.scopes.length);
  for (const s of e.scopes) writeCidr(w, s);
  w.u8(e.rcode);
  w.u8(1 | (e.alias ? 2 : 0)); // authoritative, alias
  w.u8(e.variants.length);
  for (const v of e.variants) {
    w.u8(v.groups.length);
    for (const g of v.groups) writeItems(w, g);
    writeItems(w, v.additional);
  }
  writeItems(w, e.authority);
}

/** One answer as an entry; the SOA of negative answers becomes a reference. */
function single(a: Answer, q: string, domain: string): Entry {
  const negative = a.answers.length === 0;
  return {
    scopes: [],
    rcode: RCODE[a.rcode]!,
    variants: [{ groups: [items(a.answers, q, domain)], additional: items(a.additionals, q, domain) }],
    authority: negative && a.authorities.length === 1 && a.authorities[0]!.type === 'SOA' ? [ZONE_SOA] : items(a.authorities, q, domain),
  };
}

const fixedZone = (zone: Zone): Zone => ({ settings: zone.settings, source: zone.source });
const ALL = { local: false, fullAny: true };

/** A service's endpoints split for prefer-local: this host's and the others' (null: one group). */
interface LocalSplit {
  mine: Zone;
  theirs: Zone;
}

function localSplit(zone: Zone, view: ServiceView): LocalSplit | null {
  if (!zone.settings.preferLocal) return null;
  const eps = servable(view, zone.settings.failOpen);
  if (!eps.some((e) => e.local) || !eps.some((e) => !e.local)) return null;
  return { mine: restricted(zone, view.key, (e) => e.local), theirs: restricted(zone, view.key, (e) => !e.local) };
}

/** All entries of one in-zone name; `split`: the prefer-local groups of the service it names. */
function addName(out: Chunk, zone: Zone, name: string, split: LocalSplit | null = null): void {
  const fixed = fixedZone(zone);
  const domain = zone.settings.domain;
  const q = name.toUpperCase();
  // ANY with every record (records.ts) finds which types to ask for.
  const any = answerQuestion({ name: q, type: 'ANY' }, fixed, ALL);
  if (!any || any.rcode === 'NXDOMAIN') return; // not a name of the zone: the native default
  const present = new Set(any.answers.map((rr) => rr.type));
  for (const type of ZONE_TYPES) {
    if (!present.has(type)) continue;
    const a = answerQuestion({ name: q, type }, fixed, ALL);
    if (!a || a.answers.length === 0) continue;
    const e = single(a, q, domain);
    const local = split ? localVariant(split, q, type, domain) : null;
    if (local) e.variants.push(local);
    out.add(name, TYPE_CODES[type]!, e);
  }
  // Any other type (MX, CAA, ...): NODATA, the same for every type; ANY gets RFC 8482's HINFO.
  const other = answerQuestion({ name: q, type: 'MX' }, fixed, ALL);
  if (other && other.answers.length === 0) out.add(name, 0, single(other, q, domain));
}

/** Prefer-local: this host's endpoints first, then the others, each group rotated alone. */
function localVariant(split: LocalSplit, q: string, type: string, d: string): Variant {
  const mine = answerQuestion({ name: q, type }, split.mine, ALL);
  const theirs = answerQuestion({ name: q, type }, split.theirs, ALL);
  const seen = new Set<string>();
  const g1 = dedup(items(mine?.answers ?? [], q, d), seen);
  const g2 = dedup(items(theirs?.answers ?? [], q, d), seen);
  const additional = dedup([...items(mine?.additionals ?? [], q, d), ...items(theirs?.additionals ?? [], q, d)]);
  return { groups: [g1, g2], additional };
}

/** Services compiled between two yields of TableCompiler.steps(). */
const SLICE = 50;

/** PTR of `ip`, when the registry knows it. */
function addReverse(out: Chunk, fixed: Zone, ip: string): void {
  const name = reverseName(ip);
  if (!name) return;
  const q = name.toUpperCase();
  const a = answerQuestion({ name: q, type: 'PTR' }, fixed, ALL);
  if (a && a.answers.length > 0) out.add(name, 12, single(a, q, fixed.settings.domain));
}

/** The names of one service (records.ts / names.ts decide which exist and what they answer). */
function serviceChunk(zone: Zone, view: ServiceView, ownIps: string[]): Chunk {
  const out = new Chunk();
  const fixed = fixedZone(zone);
  for (const ip of ownIps) addReverse(out, fixed, ip);
  const domain = zone.settings.domain;
  // `<name>.svc.<zone>` reads as `<name>.<zone>` first (names.ts) for every name of a service, so
  // the native side finds the short form's entries under both; only a namespace called "svc",
  // whose names can mean other things with `svc.` added, gets both forms spelled out.
  const spelled = view.namespace === 'svc';
  const split = localSplit(zone, view);
  const hosts = new Set(view.endpoints.map((e) => e.endpoint.hostname));
  for (const suffix of spelled ? ['', '.svc'] : ['']) {
    out.alias = !spelled;
    const base = `${view.name}.${view.namespace}${suffix}.${domain}`;
    addName(out, zone, base, split);
    for (const h of hosts) addName(out, zone, `${h}.${base}`, split);
    const protocols = new Set(Object.values(view.ports));
    for (const p of protocols) addName(out, zone, `_${p}.${base}`, split);
    for (const [port, p] of Object.entries(view.ports)) addName(out, zone, `_${port}._${p}.${base}`, split);
  }
  out.alias = false;
  return out;
}

/**
 * Compiles tables, reusing the entries of services whose view did not change (views are rebuilt
 * per changed service, so object identity says "unchanged") and of reverse names whose registry
 * entries did not change. A change therefore costs the changed services, not the whole zone.
 */
export class TableCompiler {
  private services = new WeakMap<ServiceView, { sig: string; chunk: Chunk }>();

  compile(input: TableInput): Buffer {
    const steps = this.steps(input);
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
    }
  }

  /**
   * The compilation in slices: it yields after every SLICE services, so that a large registry
   * does not hold the event loop (the daemon keeps answering from JS meanwhile).
   */
  *steps(input: TableInput): Generator<void, Buffer> {
    const { zone } = input;
    const domain = zone.settings.domain;
    // Everything an entry depends on besides its service: the settings, minus the serial.
    const sig = JSON.stringify({ ...zone.settings, serial: 0 });
    const chunks: Chunk[] = [];

    const global = new Chunk();
    addName(global, zone, domain);
    for (const n of ['dns-version', 'dns', 'ns.dns', 'svc']) addName(global, zone, `${n}.${domain}`);
    const namespaces = new Set<string>();
    const addresses = new Set<string>();
    let done = 0;
    for (const view of input.services) {
      namespaces.add(view.namespace);
      // Reverse names: those of addresses only this service has go with the service; addresses
      // several services share are compiled below, every time.
      const own: string[] = [];
      const ips = new Set<string>(view.endpoints.flatMap((e) => e.reach?.addresses ?? []));
      if (view.vip) ips.add(view.vip);
      for (const ip of ips) {
        const owners = zone.source.lookupAddress(ip);
        if (owners.length > 0 && owners.every((o) => o.service === view.key)) own.push(ip);
        else addresses.add(ip);
      }
      // The registry sets a view's VIP in place (registry.ts refreshVips): part of the signature.
      const vsig = `${sig}${own.join(',')}|${view.vip ?? ''}`;
      // A service in namespace "svc" can share names with others (`<host>.<svc>.svc`): never reused.
      const cached = view.namespace === 'svc' ? undefined : this.services.get(view);
      if (cached && cached.sig === vsig) {
        chunks.push(cached.chunk);
        continue;
      }
      const chunk = serviceChunk(zone, view, own);
      chunk.w.compact();
      this.services.set(view, { sig: vsig, chunk });
      chunks.push(chunk);
      if (++done % SLICE === 0) yield;
    }
    for (const ns of namespaces) {
      addName(global, zone, `${ns}.${domain}`);
      addName(global, zone, `${ns}.svc.${domain}`);
    }
    chunks.push(global);

    // Reverse names of addresses several services share (others are forwarded, by JS).
    const fixed = fixedZone(zone);
    const shared = new Chunk();
    for (const ip of addresses) addReverse(shared, fixed, ip);
    chunks.push(shared);

    const scoped = new Chunk();
    if (input.containers) containerEntries(scoped, input.containers, domain);
    chunks.push(scoped);

    const w = new Writer();
    w.bytes(Buffer.from('PSDT'));
    w.u16(TABLE_VERSION);
    w.u16(zone.settings.udpAnswerLimit ?? 0);
    const zoneWire = wireName(domain);
    w.u16(zoneWire.length - 1);
    w.bytes(zoneWire.subarray(0, zoneWire.length - 1));
    // The negative SOA as any name under the zone has it: owner and names point at the zone.
    const nxName = `a.b.c.d.e.f.${domain}`.toUpperCase();
    const nx = answerQuestion({ name: nxName, type: 'A' }, fixed, ALL)!;
    writeItem(w, { kind: 0, wire: encodeRecord(nx.authorities[0]!, nameContext(nxName, domain)) });
    writeEntry(w, single(nx, nxName, domain));
    w.u32(input.clients.length);
    for (const c of input.clients) {
      writeCidr(w, c.cidr);
      w.u8(c.flags);
    }
    w.u32(chunks.reduce((n, c) => n + c.count, 0));
    return Buffer.concat([w.done(), ...chunks.map((c) => c.w.done())]);
  }
}

/**
 * Container names as ContainerNames.answer() gives them (aardvark-style, TTL 0), one set of
 * entries per network scoped to its subnets (and to this host's own addresses, which see every
 * network: the first network that has a name answers them): `<name>` and `<name>.dns.podman` (A,
 * AAAA, any other type NODATA, with the dns.podman SOA under dns.podman), and the PTR of each
 * container IP. The JS path asks the zone first; so does the table (registry PTRs come first).
 */
function containerEntries(out: Chunk, containers: ContainerScopes, domain: string): void {
  const entry = (scopes: Cidr[], answers: Item[], authority: Item[] = []): Entry => ({ scopes, rcode: 0, variants: [{ groups: [answers], additional: [] }], authority });
  for (const net of containers.scopes()) {
    const scopes = [...net.subnets];
    if (scopes.length === 0) continue;
    for (const [name, all] of net.names) {
      if (!name || name.includes('.')) continue;
      const ips = [...new Set(all)];
      for (const owner of [name, `${name}.dns.podman`]) {
        const q = owner.toUpperCase();
        const soa = owner === name ? [] : items([PODMAN_SOA], q, domain);
        for (const [type, v6] of [['A', false], ['AAAA', true]] as const) {
          const rrs = ips.filter((ip) => (ipBytes(ip)?.length === 16) === v6).map((ip) => ({ type, name: q, ttl: 0, class: 'IN', data: ip }) as RR);
          out.add(owner, TYPE_CODES[type]!, entry(scopes, items(rrs, q, domain), rrs.length === 0 ? soa : []));
        }
        out.add(owner, 0, entry(scopes, [], soa));
      }
    }
    for (const [ip, names] of net.reverse) {
      const owner = reverseName(ip);
      if (!owner) continue;
      const q = owner.toUpperCase();
      const rrs = names.map((n) => ({ type: 'PTR', name: q, ttl: 0, class: 'IN', data: `${n}.` }) as RR);
      out.add(owner, 12, entry(scopes, items(rrs, q, domain)));
      out.add(owner, 0, entry(scopes, []));
    }
  }
}

/** A table from scratch (tests; the daemon keeps a TableCompiler to reuse unchanged parts). */
export function compileTable(input: TableInput): Buffer {
  return new TableCompiler().compile(input);
}

/** The reverse name of an IP, lower case, without the trailing dot. */
export function reverseName(ip: string): string | null {
  const b = ipBytes(ip);
  if (!b) return null;
  if (b.length === 4) return `${[...b].reverse().join('.')}.in-addr.arpa`;
  const nibbles: string[] = [];
  for (const byte of b) nibbles.push((byte >> 4).toString(16), (byte & 0xf).toString(16));
  return `${nibbles.reverse().join('.')}.ip6.arpa`;
}
