import type { Answer as RR } from 'dns-packet';
import { ipBytes } from '../net/cidr.js';

// How an answer becomes bytes, for both DNS paths: records are encoded here once, the JS path
// assembles them per query, and the native table (src/native/table.ts) stores the same bytes for
// native/src/answer.rs to assemble the same way. docs/dns-wire.md describes the rules:
//
// - Name compression (RFC 1035 section 4.1.4) points only into the question, which always starts at
//   offset 12: an owner name equal to the question becomes the pointer C0 0C; any other name
//   under the zone (owner or in the data), when the question is under the zone too, keeps its own
//   labels down to the zone and then points at the zone's labels inside the question. (Names in
//   the data never point at the whole question, so that the zone's negative SOA is the same
//   bytes for every question.) The SRV target is never compressed
//   (RFC 2782). Since a pointer's value depends only on where the zone starts in the question,
//   a record is stored with placeholder pointers ("patches") that assembly fills in.
// - Truncation keeps what fits: all sections; else without the additional section (no TC, RFC
//   2181 section 9); else TC and as many whole answer records as fit, in the answer's order.

export const MAX_UDP_PAYLOAD = 1232;
/** TTL of the RFC 8482 answer to ANY (the value CoreDNS uses too). */
export const HINFO_TTL = 8482;

/** One encoded record: `patches` are offsets in `bytes` of 2-byte pointers to the zone in the question. */
export interface Wire {
  bytes: Buffer;
  patches: number[];
}

/** What compression may point at: the question and, when it is under the zone, the zone. */
export interface NameContext {
  /** Lower case, no trailing dot. */
  question: string;
  /** The zone (lower case, no trailing dot) when the question is under it, else null. */
  zone: string | null;
}

export function nameContext(question: string, zone?: string): NameContext {
  const q = question.toLowerCase().replace(/\.$/, '');
  return { question: q, zone: zone !== undefined && (q === zone || q.endsWith(`.${zone}`)) ? zone : null };
}

const TYPE_CODES: Record<string, number> = { A: 1, NS: 2, SOA: 6, PTR: 12, HINFO: 13, TXT: 16, AAAA: 28, SRV: 33 };

/** A growing big-endian byte buffer (records here, the native answer table in src/native/table.ts). */
export class ByteWriter {
  protected buf: Buffer;
  protected n = 0;
  constructor(size = 128) {
    this.buf = Buffer.allocUnsafe(size);
  }
  private room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(next, 0, 0, this.n);
    this.buf = next;
  }
  get length(): number {
    return this.n;
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.n++] = v;
  }
  u16(v: number): void {
    this.room(2);
    this.buf.writeUInt16BE(v, this.n);
    this.n += 2;
  }
  u32(v: number): void {
    this.room(4);
    this.buf.writeUInt32BE(v >>> 0, this.n);
    this.n += 4;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }
  done(): Buffer {
    return this.buf.subarray(0, this.n);
  }
}

class Out extends ByteWriter {
  patches: number[] = [];
  labels(labels: string[]): void {
    for (const l of labels) {
      if (l.length === 0 || l.length > 63) throw new Error(`bad label "${l}"`);
      this.u8(l.length);
      this.bytes(Buffer.from(l, 'latin1'));
    }
  }
  /** `name` compressed against the question (see the top of this file). */
  name(name: string, ctx: NameContext, owner = false): void {
    const lower = name.toLowerCase().replace(/\.$/, '');
    if (owner && lower === ctx.question) return this.u16(0xc00c);
    const zone = ctx.zone;
    if (zone !== null && (lower === zone || lower.endsWith(`.${zone}`))) {
      const head = name.replace(/\.$/, '').slice(0, Math.max(0, lower.length - zone.length - 1));
      if (head) this.labels(head.split('.'));
      this.patches.push(this.length);
      return this.u16(0xc000);
    }
    this.plainName(name);
  }
  plainName(name: string): void {
    const n = name.replace(/\.$/, '');
    if (n) this.labels(n.split('.'));
    this.u8(0);
  }
  text(s: string | Uint8Array): void {
    const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
    if (b.length > 255) throw new Error('character string longer than 255 bytes');
    this.u8(b.length);
    this.bytes(b);
  }
}

/** Encodes one record (A, AAAA, SRV, SOA, NS, PTR, TXT, HINFO) with its compressed names. */
export function encodeRecord(rr: RR, ctx: NameContext): Wire {
  const o = new Out();
  const type = TYPE_CODES[rr.type];
  if (type === undefined) throw new Error(`cannot encode a ${rr.type} record`);
  o.name(rr.name, ctx, true);
  o.u16(type);
  o.u16(1); // IN
  o.u32((rr as { ttl?: number }).ttl ?? 0);
  const lenAt = o.length;
  o.u16(0);
  const data = (rr as { data: unknown }).data;
  switch (rr.type) {
    case 'A':
    case 'AAAA': {
      const b = ipBytes(data as string);
      if (!b || b.length !== (rr.type === 'A' ? 4 : 16)) throw new Error(`bad ${rr.type} address ${String(data)}`);
      o.bytes(b);
      break;
    }
    case 'SRV': {
      const d = data as { priority?: number; weight?: number; port: number; target: string };
      o.u16(d.priority ?? 0);
      o.u16(d.weight ?? 0);
      o.u16(d.port);
      o.plainName(d.target);
      break;
    }
    case 'SOA': {
      const d = data as { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number };
      o.name(d.mname, ctx);
      o.name(d.rname, ctx);
      for (const v of [d.serial, d.refresh, d.retry, d.expire, d.minimum]) o.u32(v);
      break;
    }
    case 'NS':
    case 'PTR':
      o.name(data as string, ctx);
      break;
    case 'TXT':
      for (const s of Array.isArray(data) ? data : [data]) o.text(s as string | Uint8Array);
      break;
    case 'HINFO': {
      const d = data as { cpu: string; os: string };
      o.text(d.cpu);
      o.text(d.os);
      break;
    }
  }
  const bytes = o.done();
  bytes.writeUInt16BE(bytes.length - lenAt - 2, lenAt);
  return { bytes, patches: o.patches };
}

/** The RFC 8482 answer to ANY: one HINFO record of the question name. */
export function minimalAny(name: string): RR {
  return { type: 'HINFO', name, ttl: HINFO_TTL, class: 'IN', data: { cpu: 'RFC8482', os: '' } } as RR;
}

export interface Sections {
  answers: Wire[];
  authorities: Wire[];
  additionals: Wire[];
}

export interface Frame {
  id: number;
  flags: number;
  /** The question as the client sent it: wire name, type, class. */
  question: Buffer;
  /** Offset of the zone's labels in the message (12 + where they start in the question), or -1. */
  zoneAt: number;
  /** The OPT record to end the message with, or null. */
  opt: Buffer | null;
  /** Largest message allowed. */
  limit: number;
  /** The caller already knows the answer does not fit (it left out records): truncate. */
  truncate?: boolean;
}

export const FLAG_TC = 0x0200;

/** Assembles a response, truncating as the top of this file says. */
export function assemble(f: Frame, s: Sections): Buffer {
  const base = 12 + f.question.length + (f.opt ? f.opt.length : 0);
  const size = (list: Wire[]): number => list.reduce((n, w) => n + w.bytes.length, 0);
  const an = size(s.answers);
  const ns = size(s.authorities);
  let answers = s.answers;
  let authorities = s.authorities;
  let additionals = s.additionals;
  let flags = f.flags;
  if (f.truncate || base + an + ns + size(additionals) > f.limit) {
    additionals = [];
    if (f.truncate || base + an + ns > f.limit) {
      flags |= FLAG_TC;
      authorities = [];
      let room = f.limit - base;
      let k = 0;
      while (k < answers.length && answers[k]!.bytes.length <= room) room -= answers[k++]!.bytes.length;
      answers = answers.slice(0, k);
    }
  }
  const out = Buffer.allocUnsafe(base + size(answers) + size(authorities) + size(additionals));
  out.writeUInt16BE(f.id, 0);
  out.writeUInt16BE(flags, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(answers.length, 6);
  out.writeUInt16BE(authorities.length, 8);
  out.writeUInt16BE(additionals.length + (f.opt ? 1 : 0), 10);
  let o = 12 + f.question.copy(out, 12);
  const pointer = 0xc000 | (f.zoneAt & 0x3fff);
  for (const list of [answers, authorities, additionals]) {
    for (const w of list) {
      w.bytes.copy(out, o);
      for (const p of w.patches) out.writeUInt16BE(pointer, o + p);
      o += w.bytes.length;
    }
  }
  if (f.opt) f.opt.copy(out, o);
  return out;
}
