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
  /** Other owners' (rootless users') names are known: this host's own addresses are not answered here (CLIENT_HOST off). */
  readonly ownersKnown?: boolean;
}

export interface TableInput {
  zone: Zone;
  services: Iterable<ServiceView>;
  clients: ClientClass[];
  containers?: ContainerScopes;
  /** During the start grace (src/dns/start-grace.ts): a name of the zone the table does not know
   *  gets SERVFAIL, which clients do not cache, instead of NXDOMAIN. */
  unknownServfail?: boolean;
}

/** Format version of tables and patches (answer.rs refuses others). */
export const TABLE_VERSION = 5;
const ZONE_TYPES = ['A', 'AAAA', 'SRV', 'SOA', 'NS', 'TXT'] as const;
const TYPE_CODES: Record<string, number> = { A: 1, NS: 2, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33 };
const RCODE: Record<string, number> = { NOERROR: 0, NXDOMAIN: 3 };

class Writer extends ByteWriter {
  constructor() {
    super(256);
  }
}

/**
 * `name` (no trailing dot) in wire form, lower case, with the root label: each label's length
 * byte, then its characters as latin1 bytes. One buffer, written in place (every entry of the
 * table has a key made here).
 */
export function wireName(name: string): Buffer {
  if (name === '') return Buffer.from([0]);
  const lower = name.toLowerCase();
  const n = lower.length;
  const out = Buffer.allocUnsafe(n + 2);
  // Character i goes to i + 1; a dot's place holds the length of the label after it.
  let lengthAt = 0;
  for (let i = 0; i < n; i++) {
    const c = lower.charCodeAt(i);
    if (c === 0x2e) {
      out[lengthAt] = i - lengthAt;
      lengthAt = i + 1;
    } else out[i + 1] = c;
  }
  out[lengthAt] = n - lengthAt;
  out[n + 1] = 0;
  return out;
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
  /** The AA flag (default true). */
  aa?: boolean;
  /** Also the answer of the same name with `svc.` before the zone (see answer.rs svc_alias). */
  alias?: boolean;
  /**
   * Any type its name has no entry for gets the zone's NODATA (no records, the negative SOA):
   * stored once for the table (answer.rs Data::nodata), not as an entry of its own per name.
   */
  nodata?: boolean;
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

/**
 * The zone as the compile of one service sees it: that service is a copy of its view, made for
 * this compile only. What the JS path memoises per view (records.ts: its answer groups, its host
 * names) then lives as long as the compile, not as long as the view: the native path answers
 * from the table, and the JS path builds them only for the services it is asked about.
 */
function compiling(zone: Zone, view: ServiceView): Zone {
  const src = zone.source;
  const own: ServiceView = { ...view };
  const source: ZoneSource = {
    service: (ns, svc) => {
      const v = src.service(ns, svc);
      return v === view ? own : v;
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
  w.u8((e.aa === false ? 0 : 1) | (e.alias ? 2 : 0) | (e.nodata ? 4 : 0)); // authoritative, alias, other types NODATA
  w.u8(e.variants.length);
  for (const v of e.variants) {
    w.u8(v.groups.length);
    for (const g of v.groups) writeItems(w, g);
    writeItems(w, v.additional);
  }
  writeItems(w, e.authority);
}

/** What an unknown name of the zone gets during the start grace: as the JS path's SERVFAIL. */
const SERVFAIL_ENTRY: Entry = { scopes: [], rcode: 2, aa: false, variants: [{ groups: [[]], additional: [] }], authority: [] };

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
  // Any other type (MX, CAA, ...): NODATA, the same for every type; ANY gets RFC 8482's HINFO.
  // The zone's own NODATA is a flag on the name's entries; another (or a name without entries
  // of its own) is an entry of type 0.
  const other = answerQuestion({ name: q, type: 'MX' }, fixed, ALL);
  const otherEntry = other && other.answers.length === 0 ? single(other, q, domain) : null;
  const flag = otherEntry !== null && zoneNodata(otherEntry) && ZONE_TYPES.some((type) => present.has(type));
  let typed = 0;
  for (const type of ZONE_TYPES) {
    if (!present.has(type)) continue;
    const a = answerQuestion({ name: q, type }, fixed, ALL);
    if (!a || a.answers.length === 0) continue;
    const e = single(a, q, domain);
    const local = split ? localVariant(split, q, type, domain) : null;
    if (local) e.variants.push(local);
    if (flag) e.nodata = true;
    out.add(name, TYPE_CODES[type]!, e);
    typed++;
  }
  if (otherEntry && !(flag && typed > 0)) out.add(name, 0, otherEntry);
}

/** The zone's NODATA: no records, the negative SOA, authoritative, for everyone. */
function zoneNodata(e: Entry): boolean {
  const v = e.variants;
  return e.rcode === 0 && e.aa !== false && e.scopes.length === 0 && v.length === 1 && v[0]!.groups.every((g) => g.length === 0) && v[0]!.additional.length === 0 && e.authority.length === 1 && e.authority[0] === ZONE_SOA;
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

/** Services compiled into one patch while a whole table is built in parts. */
const SLICE = 50;

/**
 * The one service whose reverse entries are all of `ip`'s (its PTR is then in that service's
 * group), or null (none, or shared by several: a group of the address's own, `p:<ip>`).
 */
function soleOwner(source: ZoneSource, ip: string): string | null {
  let owner: string | null = null;
  for (const r of source.lookupAddress(ip)) {
    if (owner !== null && r.service !== owner) return null;
    owner = r.service;
  }
  return owner;
}

/** PTR of `ip`, when the registry knows it. */
function addReverse(out: Chunk, fixed: Zone, ip: string): void {
  const name = reverseName(ip);
  if (!name) return;
  const q = name.toUpperCase();
  const a = answerQuestion({ name: q, type: 'PTR' }, fixed, ALL);
  if (a && a.answers.length > 0) out.add(name, 12, single(a, q, fixed.settings.domain));
}

/**
 * Compiling is done in steps: a step yields `undefined` between two names, so that whoever drives
 * it can stop at a time budget and go on in a later event-loop turn (see LiveTable). A service
 * with thousands of endpoints then never holds the event loop for long.
 */
export type Steps<T> = Generator<undefined, T, void>;

/** Runs steps to their end at once (whole tables for tests, patches of a known small size). */
export function finish<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** The names of one service (records.ts / names.ts decide which exist and what they answer). */
function* serviceChunk(viewZone: Zone, view: ServiceView): Steps<Chunk> {
  const zone = compiling(viewZone, view);
  const out = new Chunk();
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
    yield;
    for (const h of hosts) {
      addName(out, zone, `${h}.${base}`, split);
      yield;
    }
    const protocols = new Set(Object.values(view.ports));
    for (const p of protocols) addName(out, zone, `_${p}.${base}`, split);
    for (const [port, p] of Object.entries(view.ports)) addName(out, zone, `_${port}._${p}.${base}`, split);
  }
  out.alias = false;
  // The reverse names of the addresses only this service answers: a group per address cost
  // more than its entry (docs/architecture.md, Answer table).
  const fixed = fixedZone(viewZone);
  for (const ip of serviceIps(view)) if (soleOwner(fixed.source, ip) === view.key) addReverse(out, fixed, ip);
  return out;
}

/** The addresses whose reverse names a service answers (its endpoints' and its VIP). */
function serviceIps(view: ServiceView): string[] {
  const ips = new Set<string>(view.endpoints.flatMap((e) => e.reach?.addresses ?? []));
  if (view.vip) ips.add(view.vip);
  return [...ips];
}

/**
 * One group of entries as the table and patches carry it: u16 len + id, u8 rank, u32 count, the
 * entries. A group replaces the native side's group of the same id; rank 1 (container names)
 * answers after rank 0 (the registry) under a name both have.
 */
function group(id: string, chunk: Chunk, rank = 0): Buffer {
  const entries = chunk.w.done();
  const idLength = Buffer.byteLength(id, 'utf8');
  const out = Buffer.allocUnsafe(2 + idLength + 1 + 4 + entries.length);
  out.writeUInt16BE(idLength, 0);
  out.write(id, 2, 'utf8');
  out[2 + idLength] = rank;
  out.writeUInt32BE(chunk.count, 3 + idLength);
  entries.copy(out, 7 + idLength);
  return out;
}

/** The negative SOA as any name under the zone has it: owner and names point at the zone. */
function negativeSoa(fixed: Zone): { item: Item; nx: Answer; q: string } {
  const q = `a.b.c.d.e.f.${fixed.settings.domain}`.toUpperCase();
  const nx = answerQuestion({ name: q, type: 'A' }, fixed, ALL)!;
  return { item: { kind: 0, wire: encodeRecord(nx.authorities[0]!, nameContext(q, fixed.settings.domain)) }, nx, q };
}

/**
 * Compiles the table in groups: one per service (its names and the reverse names of the
 * addresses it alone answers), one per address several services answer (its reverse name), the
 * zone's own names, the namespace names and the container names. A whole table is every group;
 * a registry change is a patch of the groups of the services it touched and of their addresses,
 * old and new (the change names them), and of the one other service that answers such an
 * address, if there is one (it may have answered it alone before or after): its cost follows
 * the change, not the zone. Remembers the namespaces it compiled last to know when their group changes.
 */
export class TableCompiler {
  private namespaces = new Set<string>();
  /** Services of namespace "svc": their names can mean other services' names too, so they are
   *  compiled again with every patch (see serviceChunk). */
  private svcNamespace = new Set<string>();

  /** A compiler that remembers what this one has compiled so far (to patch that table). */
  fork(): TableCompiler {
    const c = new TableCompiler();
    c.namespaces = new Set(this.namespaces);
    c.svcNamespace = new Set(this.svcNamespace);
    return c;
  }

  /** A whole table in one buffer. */
  compile(input: TableInput): Buffer {
    const { header, groups } = this.whole(input);
    return Buffer.concat([header.subarray(0, header.length - 4), u32(groups.length), ...groups]);
  }

  /** All of parts() at once: the header (its group count still 0) and the groups. */
  whole(input: TableInput): { header: Buffer; groups: Buffer[] } {
    const parts = this.parts(input);
    const header = parts.next().value as Buffer;
    const groups: Buffer[] = [];
    for (let r = parts.next(); !r.done; r = parts.next()) if (r.value) groups.push(...(r.value as Buffer[]));
    return { header, groups };
  }

  /**
   * The table without groups (its group count 0): settings, the negative SOA, what a name of the
   * zone the table does not know gets, the client classes.
   */
  header(input: TableInput): Buffer {
    const { zone } = input;
    const w = new Writer();
    w.bytes(Buffer.from('PSDT'));
    w.u16(TABLE_VERSION);
    w.u16(zone.settings.udpAnswerLimit ?? 0);
    const zoneWire = wireName(zone.settings.domain);
    w.u16(zoneWire.length - 1);
    w.bytes(zoneWire.subarray(0, zoneWire.length - 1));
    const soa = negativeSoa(fixedZone(zone));
    writeItem(w, soa.item);
    writeEntry(w, input.unknownServfail ? SERVFAIL_ENTRY : single(soa.nx, soa.q, zone.settings.domain));
    w.u32(input.clients.length);
    for (const c of input.clients) {
      writeCidr(w, c.cidr);
      w.u8(c.flags);
    }
    w.u32(0);
    return w.done();
  }

  /**
   * Remembers what a whole table of `input` holds (the namespaces) without compiling it: for a
   * table compiled before (the previous run's, see table-file.ts), so that later changes patch it
   * as they would one compiled here.
   */
  know(input: TableInput): void {
    this.namespaces = new Set();
    this.svcNamespace = new Set();
    for (const view of input.services) {
      this.namespaces.add(view.namespace);
      if (view.namespace === 'svc') this.svcNamespace.add(view.key);
    }
  }

  /**
   * A whole table in parts: first the table without groups (its header), then lists of groups,
   * each list SLICE services, with pauses (`undefined`) between names, so that a large registry
   * does not hold the event loop (the previous table answers meanwhile; the parts go to a staged
   * table, see LiveTable).
   */
  *parts(input: TableInput): Generator<Buffer | Buffer[] | undefined, void, void> {
    const { zone } = input;
    const fixed = fixedZone(zone);
    this.namespaces = new Set();
    this.svcNamespace = new Set();
    yield this.header(input);

    const ips = new Set<string>();
    let slice: Buffer[] = [];
    for (const view of input.services) {
      this.namespaces.add(view.namespace);
      slice.push(yield* this.service(zone, view.key, view));
      for (const ip of serviceIps(view)) ips.add(ip);
      if (slice.length >= SLICE) {
        yield slice;
        slice = [];
      }
    }
    for (const ip of ips) {
      if (soleOwner(fixed.source, ip) !== null) continue;
      slice.push(this.reverse(fixed, ip));
      if (slice.length >= SLICE * 4) {
        yield slice;
        slice = [];
      } else if (slice.length % SLICE === 0) yield;
    }
    slice.push(this.apex(zone), this.namespaceGroup(zone));
    if (input.containers) slice.push(this.containers(input.containers, zone.settings.domain));
    yield slice;
  }

  /**
   * A patch: the groups of services `keys` (in the registry now or removed), of the addresses
   * whose reverse entries moved (`addresses`: the registry's changes name them, old and new), the
   * zone's own names (the SOA serial moved), the namespace names when the set of namespaces
   * changed, and the container names when `containers` is given. Made in steps (finish() runs
   * them at once); the registry may change between them (LiveTable then patches again).
   */
  *patchSteps(zone: Zone, keys: Iterable<string>, addresses: Iterable<string>, containers?: ContainerScopes): Steps<Buffer> {
    const fixed = fixedZone(zone);
    const groups: Buffer[] = [];
    const ips = new Set<string>(addresses);
    let namespacesMoved = false;
    const services = new Set([...keys, ...this.svcNamespace]);
    // An address the change moved, answered by exactly one service the change did not touch:
    // that service may hold its reverse name and must lose it (now shared), or must take it
    // (now its alone). With two or more such services, it was shared before and still is.
    for (const ip of ips) {
      const others = new Set(fixed.source.lookupAddress(ip).map((r) => r.service).filter((s) => !services.has(s)));
      if (others.size === 1) services.add([...others][0]!);
    }
    for (const key of services) {
      const slash = key.indexOf('/');
      const ns = key.slice(0, slash);
      const view = zone.source.service(ns, key.slice(slash + 1));
      groups.push(yield* this.service(zone, key, view));
      const has = zone.source.hasNamespace(ns);
      if (has === this.namespaces.has(ns)) continue;
      namespacesMoved = true;
      if (has) this.namespaces.add(ns);
      else this.namespaces.delete(ns);
    }
    let n = 0;
    for (const ip of ips) {
      // Empty (removing what the address's group held) when one service answers it.
      groups.push(soleOwner(fixed.source, ip) === null ? this.reverse(fixed, ip) : group(`p:${ip}`, new Chunk()));
      if (++n % SLICE === 0) yield;
    }
    groups.push(this.apex(zone));
    if (namespacesMoved || this.svcNamespace.size > 0) groups.push(this.namespaceGroup(zone));
    if (containers) groups.push(this.containers(containers, zone.settings.domain));
    return this.asPatch(zone, groups);
  }

  /** Groups (from parts()) as a patch, with the zone's negative SOA as it is now. */
  asPatch(zone: Zone, groups: Buffer[]): Buffer {
    const w = new Writer();
    w.bytes(Buffer.from('PSDP'));
    w.u16(TABLE_VERSION);
    writeItem(w, negativeSoa(fixedZone(zone)).item);
    w.u32(groups.length);
    return Buffer.concat([w.done(), ...groups]);
  }

  /** The group of service `key` (empty when `view` is gone). */
  private *service(zone: Zone, key: string, view: ServiceView | undefined): Steps<Buffer> {
    const chunk = view ? yield* serviceChunk(zone, view) : new Chunk();
    if (view?.namespace === 'svc') this.svcNamespace.add(key);
    else this.svcNamespace.delete(key);
    return group(`s:${key}`, chunk);
  }

  private reverse(fixed: Zone, ip: string): Buffer {
    const chunk = new Chunk();
    addReverse(chunk, fixed, ip);
    return group(`p:${ip}`, chunk);
  }

  /** The zone's own names; the apex SOA carries the serial, so every patch has them. */
  private apex(zone: Zone): Buffer {
    const chunk = new Chunk();
    const domain = zone.settings.domain;
    addName(chunk, zone, domain);
    for (const n of ['dns-version', 'dns', 'ns.dns', 'svc']) addName(chunk, zone, `${n}.${domain}`);
    return group('zone', chunk);
  }

  private namespaceGroup(zone: Zone): Buffer {
    const chunk = new Chunk();
    const domain = zone.settings.domain;
    for (const ns of this.namespaces) {
      addName(chunk, zone, `${ns}.${domain}`);
      addName(chunk, zone, `${ns}.svc.${domain}`);
    }
    return group('namespaces', chunk);
  }

  private containers(containers: ContainerScopes, domain: string): Buffer {
    const chunk = new Chunk();
    containerEntries(chunk, containers, domain);
    return group('containers', chunk, 1);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
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

/** A whole table from scratch (tests; the daemon keeps a TableCompiler and patches). */
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
