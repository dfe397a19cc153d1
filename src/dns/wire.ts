import * as packet from 'dns-packet';
import type { Answer as RR, DecodedPacket, OptAnswer, Question } from 'dns-packet';
import { assemble, encodeRecord, FLAG_TC, MAX_UDP_PAYLOAD, nameContext } from './message.js';
import type { Answer, Rcode } from './records.js';

// The wire format around records.ts: decoding queries defensively, encoding answers with EDNS0
// (payload size honoured up to 1232), compression and truncation (message.ts).

export { FLAG_TC, MAX_UDP_PAYLOAD };
const RCODES: Record<Rcode, number> = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };
const OPCODE_QUERY = 0;
// Header flags and wire numbers the native path (native/src/answer.rs) writes too;
// test/unit/wire-constants.test.ts checks both against each other.
export const FLAG_QR = 0x8000;
export const FLAG_AA = 0x0400;
export const FLAG_RD = 0x0100;
export const FLAG_RA = 0x0080;
export const FLAG_CD = 0x0010;
/** Bits of the query's flags a response echoes: opcode, RD and CD. */
export const FLAGS_ECHOED = 0x7800 | FLAG_RD | FLAG_CD;
/**
 * EDNS option codes the query decoder (dns-packet) reads into fields of their own (client subnet,
 * keepalive, key tag) or that may change the response (padding): the native path hands queries
 * carrying them to JS.
 */
export const EDNS_PARSED_OPTIONS: readonly number[] = [8, 11, 12, 14];

export interface Query {
  id: number;
  opcode: number;
  flags: number;
  question: Question;
  /** The question section as the client sent it (name, type, class): echoed byte for byte. */
  raw?: Buffer;
  /** The query's OPT record, when it has one (EDNS0). */
  opt?: OptAnswer;
}

export type Decoded =
  | { ok: true; query: Query }
  /** Unreadable header, or a response sent to us: no reply at all. */
  | { ok: false; reply: null; reason: string }
  /** Readable header but a bad query: `reply` is the error response to send. */
  | { ok: false; reply: Buffer; reason: string };

export function decodeQuery(buf: Buffer): Decoded {
  if (buf.length < 12) return { ok: false, reply: null, reason: 'short header' };
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  if (flags & FLAG_QR) return { ok: false, reply: null, reason: 'response sent as a query' };
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== OPCODE_QUERY) {
    return { ok: false, reply: headerOnly(id, flags, 'NOTIMP'), reason: `opcode ${opcode}` };
  }
  const nameEnd = checkQuestionName(buf);
  if (typeof nameEnd === 'string') return { ok: false, reply: headerOnly(id, flags, 'FORMERR'), reason: nameEnd };
  let decoded: DecodedPacket;
  try {
    decoded = packet.decode(buf);
  } catch (e) {
    return { ok: false, reply: headerOnly(id, flags, 'FORMERR'), reason: (e as Error).message };
  }
  if (decoded.questions?.length !== 1) {
    return { ok: false, reply: headerOnly(id, flags, 'FORMERR'), reason: `${decoded.questions?.length ?? 0} questions` };
  }
  const opts = (decoded.additionals ?? []).filter((a): a is OptAnswer => a.type === 'OPT');
  if (opts.length > 1) return { ok: false, reply: headerOnly(id, flags, 'FORMERR'), reason: 'several OPT records' };
  const query: Query = { id, opcode, flags, question: decoded.questions[0]!, raw: buf.subarray(12, nameEnd + 4) };
  if (opts[0]) query.opt = opts[0];
  return { ok: true, query };
}

/**
 * The question name must be plain: no compression pointer and printable ASCII labels without
 * dots, so that it decodes to text and re-encodes to the same bytes when echoed back.
 */
function checkQuestionName(buf: Buffer): number | string {
  if (buf.readUInt16BE(4) === 0) return 12;
  let i = 12;
  for (;;) {
    if (i >= buf.length) return 'question name runs past the end';
    const len = buf[i]!;
    if (len === 0) return i - 12 + 1 > 255 ? 'question name longer than 255 bytes' : i + 1;
    if (len > 63) return 'compressed or bad label in the question';
    for (let j = i + 1; j <= i + len; j++) {
      const c = buf[j];
      if (c === undefined) return 'question name runs past the end';
      if (c < 0x20 || c > 0x7e || c === 0x2e) return 'unprintable byte or dot inside a label';
    }
    i += len + 1;
  }
}

/** An error reply carrying only the header of the query (for queries we could not read). */
export function headerOnly(id: number, queryFlags: number, rcode: Rcode): Buffer {
  const buf = Buffer.alloc(12);
  buf.writeUInt16BE(id, 0);
  buf.writeUInt16BE(FLAG_QR | (queryFlags & FLAGS_ECHOED) | RCODES[rcode], 2);
  return buf;
}

/** Largest response this query may get over UDP. */
export function udpLimit(q: Query): number {
  if (!q.opt) return 512;
  return Math.min(Math.max(q.opt.udpPayloadSize ?? 512, 512), MAX_UDP_PAYLOAD);
}

export interface EncodeOptions {
  /** Largest message allowed: udpLimit() for UDP, 65535 for TCP. */
  limit: number;
  recursionAvailable: boolean;
  /** The zone, lower case: names under it compress against the question's zone labels. */
  zone?: string;
}

/** Encodes `answer` for `q`, compressed and truncated as message.ts describes. */
export function encodeAnswer(q: Query, answer: Answer, opts: EncodeOptions): Buffer {
  const flags =
    FLAG_QR |
    (q.flags & FLAGS_ECHOED) |
    (answer.authoritative ? FLAG_AA : 0) |
    (opts.recursionAvailable ? FLAG_RA : 0) |
    RCODES[answer.rcode];
  const question = q.raw ?? questionBytes(q.question);
  const ctx = nameContext(q.question.name, opts.zone);
  const enc = (list: RR[]) => list.map((rr) => encodeRecord(rr, ctx));
  // The zone's labels end the question name, just before its root label, type and class.
  const zoneAt = ctx.zone === null ? -1 : 12 + question.length - 5 - (ctx.zone.length + 1);
  const frame = { id: q.id, flags, question, zoneAt, opt: q.opt ? ourOpt(q.opt) : null, limit: opts.limit };
  // A record takes at least 12 bytes (a pointer, type, class, TTL, length): past that many, the
  // answer is truncated for sure, and the records that could not fit are not encoded at all (a
  // service with hundreds of endpoints asked over UDP costs what fits, not tens of KB).
  const room = Math.floor((opts.limit - 12) / 12);
  if (answer.answers.length > room) return assemble({ ...frame, truncate: true }, { answers: enc(answer.answers.slice(0, room)), authorities: [], additionals: [] });
  return assemble(frame, { answers: enc(answer.answers), authorities: enc(answer.authorities), additionals: enc(answer.additionals) });
}

/** An error or refusal that echoes the question. */
export function encodeRcode(q: Query, rcode: Rcode, recursionAvailable: boolean): Buffer {
  return encodeAnswer(q, { rcode, authoritative: false, answers: [], authorities: [], additionals: [] }, {
    limit: 65535,
    recursionAvailable,
  });
}

/** Our OPT record: 1232 bytes, version 0, the DO bit echoed; BADVERS for other versions (RFC 6891 section 6.1.3). */
function ourOpt(theirs: OptAnswer): Buffer {
  const badVersion = (theirs.ednsVersion ?? 0) !== 0;
  const b = Buffer.alloc(11);
  b.writeUInt16BE(41, 1);
  b.writeUInt16BE(MAX_UDP_PAYLOAD, 3);
  b[5] = badVersion ? 1 : 0;
  b.writeUInt16BE((theirs.flags ?? 0) & 0x8000, 7);
  return b;
}

function questionBytes(q: Question): Buffer {
  const enc = (packet as unknown as { question: { encode(q: Question): Buffer } }).question;
  return Buffer.from(enc.encode(q));
}

/** Sets TC on an encoded message. */
export function withTc(msg: Buffer): Buffer {
  msg.writeUInt16BE(msg.readUInt16BE(2) | FLAG_TC, 2);
  return msg;
}

export const isBadVersion = (q: Query): boolean => q.opt !== undefined && (q.opt.ednsVersion ?? 0) !== 0;
