import { SIGNATURE_BYTES } from '../gossip/identity.js';
import { hexIn } from '../gossip/codec.js';
import { HASH_BYTES, keep } from './delta.js';

// The bytes of a registry update as the gossip layer carries it (pure: no I/O). Not msgpack: a
// fixed head the receiver reads without decoding the rest, and the update's name cut from it:
//
//   [type: 1 byte][node][version: uvarint][back: uvarint], then
//     type 0, a delta:  [signature: 64][body: the rest of the bytes]
//     type 1, a notice: [state hash: 32][body hash: 32][signature: 64]
//   node = [16][16 bytes] for a derived node id (32 hex digits), else [0x80 + n][n bytes of UTF-8]
//   uvarint = 7 bits a byte, low first, the high bit set on every byte but the last (at most 8)
//
// back is version − base (0: base 0). The update id (updateIdOf) is the bytes from [node] to the
// end of [version]: one version's delta and notice share it, and no push carries it beside them.

export const DELTA = 0;
export const NOTICE = 1;

export interface UpdateHead {
  type: typeof DELTA | typeof NOTICE;
  id: string;
  version: number;
  back: number;
}

export interface Update extends UpdateHead {
  sig: Uint8Array;
  /** A delta's body. */
  body?: Uint8Array;
  /** A notice's hashes. */
  stateHash?: Uint8Array;
  bodyHash?: Uint8Array;
}

const HEX32 = /^[0-9a-f]{32}$/;
/** Longest node id in bytes (registry ids are at most 64 characters). */
const MAX_ID_BYTES = 127;
const MAX_VARINT = 8;

function nodeOut(id: string): Uint8Array {
  if (HEX32.test(id)) return new Uint8Array([16, ...Buffer.from(id, 'hex')]);
  const text = Buffer.from(id, 'utf8');
  if (text.length > MAX_ID_BYTES) throw new Error(`node id ${id} is too long`);
  return new Uint8Array([0x80 + text.length, ...text]);
}

function uvarintOut(n: number): number[] {
  const out: number[] = [];
  do {
    const low = n % 128;
    n = Math.floor(n / 128);
    out.push(n > 0 ? low | 128 : low);
  } while (n > 0);
  return out;
}

/** The uvarint at `at` and the offset after it, or null (cut short, too long, not a safe integer). */
function uvarintIn(b: Uint8Array, at: number): [number, number] | null {
  let n = 0;
  for (let i = 0, scale = 1; i < MAX_VARINT && at + i < b.length; i++, scale *= 128) {
    const x = b[at + i]!;
    n += (x & 127) * scale;
    if (x < 128) return Number.isSafeInteger(n) && (i === 0 || x !== 0) ? [n, at + i + 1] : null;
  }
  return null;
}

/** An update's bytes, cut from the shared slabs (it is kept a while to answer GRAFTs). */
export function updateOut(h: UpdateHead, ...rest: Uint8Array[]): Uint8Array {
  const head = [h.type, ...nodeOut(h.id), ...uvarintOut(h.version), ...uvarintOut(h.back)];
  const out = new Uint8Array(head.length + rest.reduce((n, r) => n + r.length, 0));
  out.set(head);
  let at = head.length;
  for (const r of rest) {
    out.set(r, at);
    at += r.length;
  }
  return keep(out);
}

/**
 * The head of update `b`: the offset after its node, its version (and the offset after it), then
 * its back (and the offset after the head: null when not well-formed), or null.
 */
function headIn(b: Uint8Array): { type: UpdateHead['type']; nodeEnd: number; version: number; versionEnd: number; back: [number, number] | null } | null {
  const type = b[0];
  const n = b[1];
  if ((type !== DELTA && type !== NOTICE) || n === undefined) return null;
  let at: number;
  if (n === 16) {
    if (b.length < 18) return null;
    at = 18;
  } else if (n > 0x80 && n - 0x80 <= MAX_ID_BYTES && b.length >= 2 + n - 0x80) {
    at = 2 + n - 0x80;
  } else return null;
  const version = uvarintIn(b, at);
  return version && { type, nodeEnd: at, version: version[0], versionEnd: version[1], back: uvarintIn(b, version[1]) };
}

/** The node id of update `b`, whose node ends at `end` (headIn). */
const nodeIn = (b: Uint8Array, end: number): string => (b[1] === 16 ? hexIn(b, 2, 16) : Buffer.from(b.buffer, b.byteOffset + 2, end - 2).toString('utf8'));

/** The update in `b` (views of it), or null when it is not one. */
export function updateIn(b: Uint8Array): Update | null {
  const head = headIn(b);
  if (!head?.back) return null;
  const { type, version } = head;
  const id = nodeIn(b, head.nodeEnd);
  const [back, at] = head.back;
  const h = { id, version, back };
  const view = (from: number, n: number): Uint8Array => b.subarray(from, from + n);
  if (type === DELTA) return b.length >= at + SIGNATURE_BYTES ? { type, ...h, sig: view(at, SIGNATURE_BYTES), body: b.subarray(at + SIGNATURE_BYTES) } : null;
  if (b.length !== at + 2 * HASH_BYTES + SIGNATURE_BYTES) return null;
  return { type: NOTICE, ...h, stateHash: view(at, HASH_BYTES), bodyHash: view(at + HASH_BYTES, HASH_BYTES), sig: view(at + 2 * HASH_BYTES, SIGNATURE_BYTES) };
}

/** The update's name: its node and version as bytes (one char per byte), or null when `b` is not an update. */
export function updateIdOf(b: Uint8Array): string | null {
  const head = headIn(b);
  return head ? Buffer.from(b.buffer, b.byteOffset + 1, head.versionEnd - 1).toString('latin1') : null;
}

/** Whether an update is a delta from nothing (base 0: a whole state), read from its head (the simulator counts these). */
export function isWholeUpdate(b: Uint8Array): boolean {
  const head = headIn(b);
  return head?.type === DELTA && head.back?.[0] === 0;
}
