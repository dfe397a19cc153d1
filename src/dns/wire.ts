import * as packet from 'dns-packet';
import type { Answer as RR, DecodedPacket, OptAnswer, Question } from 'dns-packet';
import type { Answer, Rcode } from './records.js';

// The wire format around records.ts: decoding queries defensively, encoding answers with EDNS0
// and truncation (SPEC §3: payload size honoured up to 1232, TC when the answer does not fit).

export const MAX_UDP_PAYLOAD = 1232;
const RCODES: Record<Rcode, number> = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };
const OPCODE_QUERY = 0;
const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
const FLAG_CD = 0x0010;

export interface Query {
  id: number;
  opcode: number;
  flags: number;
  question: Question;
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
  const nameProblem = checkQuestionName(buf);
  if (nameProblem) return { ok: false, reply: headerOnly(id, flags, 'FORMERR'), reason: nameProblem };
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
  const query: Query = { id, opcode, flags, question: decoded.questions[0]! };
  if (opts[0]) query.opt = opts[0];
  return { ok: true, query };
}

/**
 * The question name must be plain: no compression pointer and printable ASCII labels without
 * dots, so that it decodes to text and re-encodes to the same bytes when echoed back.
 */
function checkQuestionName(buf: Buffer): string | null {
  if (buf.readUInt16BE(4) === 0) return null;
  let i = 12;
  for (;;) {
    if (i >= buf.length) return 'question name runs past the end';
    const len = buf[i]!;
    if (len === 0) return i - 12 + 1 > 255 ? 'question name longer than 255 bytes' : null;
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
  buf.writeUInt16BE(FLAG_QR | (queryFlags & (0x7800 | FLAG_RD | FLAG_CD)) | RCODES[rcode], 2);
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
}

/** Encodes `answer` for `q`; drops additionals, then everything, and sets TC if it must. */
export function encodeAnswer(q: Query, answer: Answer, opts: EncodeOptions): Buffer {
  const flags =
    (q.flags & (0x7800 | FLAG_RD | FLAG_CD)) |
    (answer.authoritative ? FLAG_AA : 0) |
    (opts.recursionAvailable ? FLAG_RA : 0) |
    RCODES[answer.rcode];
  const opt = q.opt ? [ourOpt(q.opt)] : [];
  // Every record takes at least 11 bytes (root owner, type, class, TTL, length): when the answer
  // and authority records alone cannot fit, go straight to TC instead of encoding tens of KB (a
  // service with hundreds of endpoints over UDP) only to throw them away.
  if (12 + 11 * (answer.answers.length + answer.authorities.length) > opts.limit) return encode(q, flags | FLAG_TC, [], [], opt);
  const additionals: RR[] = [...answer.additionals, ...opt];
  const full = encode(q, flags, answer.answers, answer.authorities, additionals);
  if (full.length <= opts.limit) return full;
  // Additional records are optional (RFC 2181 §9): drop them before truncating.
  const lean = encode(q, flags, answer.answers, answer.authorities, opt);
  if (lean.length <= opts.limit) return lean;
  return encode(q, flags | FLAG_TC, [], [], opt);
}

/** An error or refusal that echoes the question. */
export function encodeRcode(q: Query, rcode: Rcode, recursionAvailable: boolean): Buffer {
  return encodeAnswer(q, { rcode, authoritative: false, answers: [], authorities: [], additionals: [] }, {
    limit: 65535,
    recursionAvailable,
  });
}

function ourOpt(theirs: OptAnswer): RR {
  // EDNS version other than 0: BADVERS (extended rcode 1, RFC 6891 §6.1.3).
  const badVersion = (theirs.ednsVersion ?? 0) !== 0;
  return {
    type: 'OPT',
    name: '.',
    udpPayloadSize: MAX_UDP_PAYLOAD,
    extendedRcode: badVersion ? 1 : 0,
    ednsVersion: 0,
    flags: (theirs.flags ?? 0) & 0x8000,
  } as RR;
}

function encode(q: Query, flags: number, answers: RR[], authorities: RR[], additionals: RR[]): Buffer {
  return packet.encode({
    id: q.id,
    type: 'response',
    flags: flags & 0x7fff,
    questions: [q.question],
    answers,
    authorities,
    additionals,
  });
}

export const isBadVersion = (q: Query): boolean => q.opt !== undefined && (q.opt.ednsVersion ?? 0) !== 0;
