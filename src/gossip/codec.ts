import { Decoder, Encoder } from '@msgpack/msgpack';
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, type Proof } from './identity.js';
import { MAX_IDS, SHORT_ID_BYTES } from './plumtree.js';

// One encoder and decoder for the process: msgpack's encode()/decode() build new ones (and their
// buffers) on every call, which dominated the simulator's profile. Node runs this single-threaded.
const encoder = new Encoder();
const decoder = new Decoder();
// Copied out of the encoder into Node's shared slab (Buffer.from: small sizes), not a new
// ArrayBuffer per message: with millions of buffers alive (the simulator) each costs microseconds.
// A plain Uint8Array view, so that what is decoded from it is one too.
const mpEncode = (v: unknown): Uint8Array => {
  const b = Buffer.from(encoder.encodeSharedRef(v));
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
};
const mpDecode = (b: Uint8Array): unknown => decoder.decode(b);

// The gossip wire format (docs/architecture.md#gossip-wire-format). Every packet and stream frame is
//   [version: 1 byte][flags: 1 byte][body]
// where flags bit 0 says the body is sealed (crypto.ts) and the (opened) body is a msgpack array
// of messages, each a short array [type, ...fields]. Decoding checks every field: whatever
// arrives from the network either becomes well-typed messages or a WireError, never a crash.

// Version 2: "alive" messages, graceful leaves and node states carry their owner's signature
// (identity.ts). Version 3: registry changes travel as signed deltas (sync/delta.ts), whole states
// only in push-pull and repairs. Version 4: those updates travel on a broadcast tree (plumtree.ts:
// push, ihave, graft, prune) instead of the piggy-back queue, in the compact encoding
// (sync/compact.ts), without the header and key the receiver rebuilds or knows. Version 5: tree
// messages name their sender by an 8-byte prefix of its id and carry update ids as bytes, deltas
// no longer name their relay (the tree passes on who pushed them), and push-pull exchanges
// bucketed digests (digest.ts) first, then only the members and node states that differ. Version
// 6: IHAVE and GRAFT carry 4-byte short ids (plumtree.ts shortId), a push no id (the delegate
// reads it from the update, whose head is no longer msgpack: sync/update.ts), and a sealed frame
// carries its timestamp in its nonce (crypto.ts). Peers speaking another version are refused (and
// logged once).
export const WIRE_VERSION = 6;
export const FLAG_SEALED = 1;

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';
export type PushPullLeg = 1 | 2 | 3 | 4;

export interface MemberInfo {
  id: string;
  name: string;
  addr: string;
  inc: number;
  state: MemberState;
  /** The member's own signature of its alive (state alive/suspect/dead) or its leave (left). */
  proof?: Proof;
}

export type Message =
  | { t: 'ping'; seq: number; target: string; from: string; fromAddr: string }
  | { t: 'ack'; seq: number; from: string }
  | { t: 'indirect'; seq: number; target: string; targetAddr: string; from: string; fromAddr: string }
  /** Signed by `id` (alivePayload). */
  | { t: 'alive'; id: string; name: string; addr: string; inc: number; proof: Proof }
  | { t: 'suspect'; id: string; inc: number; from: string }
  /** `from === id` is a graceful leave, signed by `id` (leavePayload). */
  | { t: 'dead'; id: string; inc: number; from: string; proof?: Proof }
  /**
   * An opaque update for the delegate (the registry), pushed along the broadcast tree; its name
   * is the delegate's to read from it (Delegate.updateId). In tree and probe messages the member
   * ids (`from`, `target`) travel as their first 16 hex digits (senderOut): the receiver finds
   * the member they begin.
   */
  | { t: 'push'; from: string; data: Uint8Array }
  /**
   * Ids of updates `from` holds (lazy announcement), and ids `from` asks to be pushed (graft):
   * short ids (plumtree.ts shortId: 32-bit integers, SHORT_ID_BYTES bytes each on the wire).
   */
  | { t: 'ihave'; from: string; ids: number[] }
  | { t: 'graft'; from: string; ids: number[] }
  /** `from` has this update already: stop pushing to it (the edge becomes lazy). */
  | { t: 'prune'; from: string }
  /**
   * Anti-entropy over a stream, in up to four legs (membership.ts pushPull): 1 the initiator's
   * digest (bucket hashes, digest.ts) and its own entry; 2 the buckets that differ (their numbers)
   * and the answerer's members in them; 3 the initiator's members in those buckets the answerer
   * lacks; 4 the answer to 3. `user` is the delegate's part of each leg.
   */
  | { t: 'pushpull'; leg: PushPullLeg; join: boolean; digest: Uint8Array; members: MemberInfo[]; user: Uint8Array }
  /** An opaque request/answer between delegates over a stream. */
  | { t: 'userreq'; data: Uint8Array }
  | { t: 'error'; message: string };

/**
 * Why gossip input was dropped (the rejected_total metric's label): the frame (version, decode,
 * auth, replay, unencrypted, encrypted), its content (signature: not signed by the node it speaks
 * for; bounds: an incarnation or version out of range; limit: a node state over the endpoint
 * limit) or the TCP stream (frame: over the size limit or too slow; connections: over the cap).
 */
export const REJECT_REASONS = ['version', 'decode', 'auth', 'replay', 'unencrypted', 'encrypted', 'signature', 'bounds', 'limit', 'frame', 'connections'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export class WireError extends Error {
  constructor(
    message: string,
    /** Metric label: why the bytes were rejected. */
    readonly reason: RejectReason,
  ) {
    super(message);
  }
}

const TYPES = ['ping', 'ack', 'indirect', 'alive', 'suspect', 'dead', 'push', 'pushpull', 'userreq', 'error', 'ihave', 'graft', 'prune'] as const;
const STATES: MemberState[] = ['alive', 'suspect', 'dead', 'left'];

/** The bytes a node signs to announce itself alive at an incarnation. */
export const alivePayload = (m: { id: string; name: string; addr: string; inc: number }): Uint8Array => mpEncode(['alive', m.id, m.name, m.addr, m.inc]);
/** The bytes a node signs to leave the cluster gracefully. */
export const leavePayload = (m: { id: string; inc: number }): Uint8Array => mpEncode(['leave', m.id, m.inc]);

const proofFields = (p: Proof | undefined): unknown[] => (p ? [p.pub, p.sig] : []);

/** How tree and probe messages name a member: the first 8 bytes of a derived (hex) id, else the id itself. */
const HEX16 = /^[0-9a-f]{16}/;
export const senderOut = (id: string): Uint8Array | string => (HEX16.test(id) ? new Uint8Array(Buffer.from(id.slice(0, 16), 'hex')) : id);
const senderIn = (v: unknown): string => (v instanceof Uint8Array && v.length === 8 ? hexIn(v, 0, 8) : str(v, 'from'));

/** Names decoded from bytes as hex (8-byte senders, 16-byte node ids), by their last 4 bytes. */
const hexNames = new Map<number, string>();
const MAX_HEX_NAMES = 1 << 16;
const HEX = '0123456789abcdef';
const int32At = (b: Uint8Array, at: number): number => (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;

/**
 * The n bytes of `b` at `at` (n ≥ 4) in hex: one string per name for the process (bounded), not a
 * new one per message (a member's name comes in every message it sends, a node's id in every update).
 */
export function hexIn(b: Uint8Array, at: number, n: number): string {
  const key = int32At(b, at + n - 4);
  const known = hexNames.get(key);
  if (known !== undefined && isHexOf(known, b, at, n)) return known;
  const name = Buffer.from(b.buffer, b.byteOffset + at, n).toString('hex');
  if (hexNames.size >= MAX_HEX_NAMES) hexNames.clear();
  hexNames.set(key, name);
  return name;
}

function isHexOf(s: string, b: Uint8Array, at: number, n: number): boolean {
  if (s.length !== 2 * n) return false;
  for (let i = 0; i < n; i++) {
    const x = b[at + i]!;
    if (s.charCodeAt(2 * i) !== HEX.charCodeAt(x >> 4) || s.charCodeAt(2 * i + 1) !== HEX.charCodeAt(x & 15)) return false;
  }
  return true;
}

/** Short ids (32-bit integers) as one byte string of SHORT_ID_BYTES each, big-endian, end to end. */
function idsOut(ids: number[]): Uint8Array {
  const out = Buffer.allocUnsafe(ids.length * SHORT_ID_BYTES);
  ids.forEach((id, i) => ((id | 0) === id ? out.writeInt32BE(id, i * SHORT_ID_BYTES) : fail('short id')));
  return out;
}
function idsIn(v: unknown, what: string): number[] {
  const b = bytes(v, what);
  if (b.length % SHORT_ID_BYTES !== 0 || b.length > MAX_IDS * SHORT_ID_BYTES) return fail(what);
  const ids: number[] = [];
  for (let at = 0; at < b.length; at += SHORT_ID_BYTES) ids.push(int32At(b, at));
  return ids;
}

function toArray(m: Message): unknown[] {
  const code = TYPES.indexOf(m.t);
  switch (m.t) {
    case 'ping':
      return [code, m.seq, senderOut(m.target), senderOut(m.from), m.fromAddr];
    case 'ack':
      return [code, m.seq, senderOut(m.from)];
    case 'indirect':
      return [code, m.seq, senderOut(m.target), m.targetAddr, senderOut(m.from), m.fromAddr];
    case 'alive':
      return [code, m.id, m.name, m.addr, m.inc, m.proof.pub, m.proof.sig];
    case 'suspect':
      return [code, m.id, m.inc, m.from];
    case 'dead':
      return [code, m.id, m.inc, m.from, ...proofFields(m.proof)];
    case 'push':
      return [code, senderOut(m.from), m.data];
    case 'ihave':
    case 'graft':
      return [code, senderOut(m.from), idsOut(m.ids)];
    case 'prune':
      return [code, senderOut(m.from)];
    case 'userreq':
      return [code, m.data];
    case 'pushpull':
      return [code, m.leg, m.join, m.digest, m.members.map((x) => [x.id, x.name, x.addr, x.inc, STATES.indexOf(x.state), ...proofFields(x.proof)]), m.user];
    case 'error':
      return [code, m.message];
  }
}

const fail = (what: string): never => {
  throw new WireError(`malformed message: ${what}`, 'decode');
};
const str = (v: unknown, what: string, max = 256): string => (typeof v === 'string' && v.length <= max ? v : fail(what));
const num = (v: unknown, what: string): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : fail(what));
const bytes = (v: unknown, what: string): Uint8Array => (v instanceof Uint8Array ? v : fail(what));
const proof = (pub: unknown, sig: unknown): Proof =>
  pub instanceof Uint8Array && pub.length === PUBLIC_KEY_BYTES && sig instanceof Uint8Array && sig.length === SIGNATURE_BYTES ? { pub, sig } : fail('signature');

function fromArray(a: unknown): Message {
  if (!Array.isArray(a) || a.length < 1) return fail('not an array');
  const t = TYPES[a[0] as number];
  if (t === undefined) return fail(`unknown type ${String(a[0])}`);
  const n = (count: number) => a.length === count || fail(`${t} has ${a.length - 1} fields`);
  switch (t) {
    case 'ping':
      n(5);
      return { t, seq: num(a[1], 'seq'), target: senderIn(a[2]), from: senderIn(a[3]), fromAddr: str(a[4], 'fromAddr') };
    case 'ack':
      n(3);
      return { t, seq: num(a[1], 'seq'), from: senderIn(a[2]) };
    case 'indirect':
      n(6);
      return { t, seq: num(a[1], 'seq'), target: senderIn(a[2]), targetAddr: str(a[3], 'targetAddr'), from: senderIn(a[4]), fromAddr: str(a[5], 'fromAddr') };
    case 'alive':
      n(7);
      return { t, id: str(a[1], 'id'), name: str(a[2], 'name'), addr: str(a[3], 'addr'), inc: num(a[4], 'inc'), proof: proof(a[5], a[6]) };
    case 'suspect':
      n(4);
      return { t, id: str(a[1], 'id'), inc: num(a[2], 'inc'), from: str(a[3], 'from') };
    case 'dead': {
      if (a.length !== 4) n(6);
      const m: Message = { t, id: str(a[1], 'id'), inc: num(a[2], 'inc'), from: str(a[3], 'from') };
      return a.length === 6 ? { ...m, proof: proof(a[4], a[5]) } : m;
    }
    case 'push':
      n(3);
      return { t, from: senderIn(a[1]), data: bytes(a[2], 'data') };
    case 'ihave':
    case 'graft':
      n(3);
      return { t, from: senderIn(a[1]), ids: idsIn(a[2], `${t} ids`) };
    case 'prune':
      n(2);
      return { t, from: senderIn(a[1]) };
    case 'userreq':
      n(2);
      return { t, data: bytes(a[1], 'data') };
    case 'pushpull': {
      n(6);
      const leg = a[1];
      if ((leg !== 1 && leg !== 2 && leg !== 3 && leg !== 4) || typeof a[2] !== 'boolean' || !Array.isArray(a[4])) return fail('pushpull');
      const members = (a[4] as unknown[]).map((x): MemberInfo => {
        if (!Array.isArray(x) || (x.length !== 5 && x.length !== 7)) return fail('member');
        const state = STATES[x[4] as number] ?? fail('member state');
        const info: MemberInfo = { id: str(x[0], 'member id'), name: str(x[1], 'member name'), addr: str(x[2], 'member addr'), inc: num(x[3], 'member inc'), state };
        return x.length === 7 ? { ...info, proof: proof(x[5], x[6]) } : info;
      });
      return { t, leg, join: a[2], digest: bytes(a[3], 'digest'), members, user: bytes(a[5], 'user') };
    }
    case 'error':
      n(2);
      return { t, message: str(a[1], 'message', 4096) };
  }
}

/** The msgpack body of a list of messages. */
export function encodeMessages(msgs: Message[]): Uint8Array {
  return mpEncode(msgs.map(toArray));
}

/** One message's msgpack bytes (the queue keeps them, so a message retransmitted is encoded once). */
export const encodeMessage = (m: Message): Uint8Array => mpEncode(toArray(m));

/** The body holding messages already encoded: a msgpack array header, then their bytes; after `before` (a frame's header). */
export function encodeBody(parts: Uint8Array[], before: readonly number[] = []): Uint8Array {
  const n = parts.length;
  const head = n < 16 ? [0x90 | n] : n < 65536 ? [0xdc, n >> 8, n & 255] : [0xdd, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  const out = Buffer.allocUnsafe(before.length + head.length + parts.reduce((s, p) => s + p.length, 0));
  out.set(before);
  out.set(head, before.length);
  let at = before.length + head.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function decodeMessages(body: Uint8Array): Message[] {
  let raw: unknown;
  try {
    raw = mpDecode(body);
  } catch (e) {
    throw new WireError(`undecodable body: ${(e as Error).message}`, 'decode');
  }
  if (!Array.isArray(raw)) throw new WireError('body is not a list of messages', 'decode');
  return raw.map(fromArray);
}
