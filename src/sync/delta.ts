import { createHash } from 'node:crypto';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { validNodeState } from '../registry/remote.js';
import { addrIn, addrOut, endpointIn, endpointOut, orNull, StringsIn, StringsOut } from './compact.js';
import { lastStep, lowerBound, PATCH_MAX, stepBetween, stepState } from '../registry/steps.js';
import { compareKeys, endpointKey, type Endpoint, type NodeState } from '../registry/types.js';

// Node states and the changes between two of them, as bytes (pure: no I/O, no clock).
//
// A node's endpoints are kept sorted by endpoint key (namespace/service/id), by the owner and by
// every receiver, so a state is a function of its content: applying a delta to the state it was
// made from gives, byte for byte, the state the owner has. The owner signs one small header per
// version, holding a hash of the whole state (stateHash, over the canonical encoding of its
// fields: map keys sorted, undefined fields left out) and the SHA-256 of the delta's body:
//
//   header = [id, version, base, stateHash(state), sha256(body)]
//   body   = [put: endpoint[], del: position[], name?, address?, incarnation?]   (compact.ts)
//
// where a removed endpoint is named by its position in the base's endpoints (sorted by key, as
// every holder keeps them), not by its key: one byte instead of its namespace/service/id.
//
// Neither the header nor its two hashes travel with a delta: the receiver hashes the body it got,
// applies it to the state it holds at `base` and hashes the result, and checks the signature over
// the header those make; a delta altered anywhere, or applied to another state than the owner's,
// fails that check. The identity fields travel only when they differ from the base's (or the
// base is 0: the delta starts from nothing and the body holds every endpoint). The same header
// proves a whole state in anti-entropy (the state's bytes plus the body hash).

const encoder = new Encoder({ ignoreUndefined: true, sortKeys: true });
const decoder = new Decoder();
export const encodeCanonical = (v: unknown): Uint8Array => encoder.encode(v);

/** Bytes per slab of encodeKept; larger encodings get their own buffer. */
const SLAB = 65_536;
let slab = new Uint8Array(0);
let slabAt = 0;

/**
 * encodeCanonical for bytes kept a while and then dropped about in the order they were made (the
 * updates the gossip layer keeps to answer grafts): cut from shared slabs, not one ArrayBuffer
 * each (with millions alive, as in the simulator, each allocation costs microseconds). A slab is
 * freed once everything cut from it is.
 */
export const encodeKept = (v: unknown): Uint8Array => keep(encoder.encodeSharedRef(v));

/** A copy of `b` cut from the shared slabs (see encodeKept). */
export function keep(b: Uint8Array): Uint8Array {
  if (b.length > SLAB / 16) return b.slice();
  if (slabAt + b.length > slab.length) [slab, slabAt] = [new Uint8Array(SLAB), 0];
  const out = slab.subarray(slabAt, slabAt + b.length);
  out.set(b);
  slabAt += b.length;
  return out;
}
export const decodeBytes = (b: Uint8Array): unknown => decoder.decode(b);
export const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest());
export const HASH_BYTES = 32;

export interface Header {
  id: string;
  version: number;
  base: number;
  stateHash: Uint8Array;
  bodyHash: Uint8Array;
}

export interface Delta {
  id: string;
  /** The identity fields: absent when the same as at the base (always there when the base is 0). */
  name?: string;
  address?: string;
  incarnation?: number;
  base: number;
  version: number;
  /** Endpoints added or changed, sorted by key. */
  put: Endpoint[];
  /** Keys of the endpoints removed. */
  del: string[];
  /** As decoded: the positions in the base's endpoints of those removed (apply reads their keys there). */
  at?: number[];
}

/** The endpoints in the order every state keeps them: by endpoint key. */
export function sortEndpoints(eps: Endpoint[]): Endpoint[] {
  return eps
    .map((e) => [endpointKey(e), e] as const)
    .sort((a, b) => compareKeys(a[0], b[0]))
    .map(([, e]) => e);
}

/** A whole state's bytes; its id and version travel beside them (in the signed header's fields). */
export function encodeState(s: NodeState): Uint8Array {
  const t = new StringsOut();
  return encodeCanonical([t.put(s.name), addrOut(s.address), s.incarnation, s.endpoints.map((e) => endpointOut(e, t, s.version))]);
}

// Endpoint objects are never changed once made (a change makes a new one), and unchanged ones
// are shared from version to version, so each is hashed once.
const endpointHashes = new WeakMap<Endpoint, Uint8Array>();
function endpointHash(e: Endpoint): Uint8Array {
  let h = endpointHashes.get(e);
  if (!h) endpointHashes.set(e, (h = sha256(encodeCanonical(e))));
  return h;
}

/** A hashed state's endpoint hashes end to end, 32 bytes per endpoint, in a buffer with room to grow. */
interface Rows {
  buf: Uint8Array;
  n: number;
}
const rowsOf = new WeakMap<NodeState, Rows>();

/**
 * The hash that proves a state: SHA-256 of its identity fields and endpoint count, followed by
 * the SHA-256 of each endpoint in order. Only new endpoints cost an encoding. The endpoint
 * hashes of a state made by a recorded step (registry/steps.ts) are those of the state before
 * it, patched in place at the changed keys: the buffer moves on to the new state (the old one
 * would be hashed anew, which nothing does), so a change costs no allocation and no walk over
 * the endpoints, only one hash over 32 bytes per endpoint.
 */
export function stateHash(s: NodeState): Uint8Array {
  const head = encodeCanonical([s.id, s.name, s.address, s.incarnation, s.version, s.endpoints.length]);
  const rows = endpointRows(s);
  return new Uint8Array(createHash('sha256').update(head).update(rows.buf.subarray(0, rows.n * HASH_BYTES)).digest());
}

function endpointRows(s: NodeState): Rows {
  let rows = rowsOf.get(s);
  if (rows) return rows;
  const step = lastStep(s);
  const base = step && step.keys.length <= PATCH_MAX ? rowsOf.get(step.from) : undefined;
  if (step && base) {
    rowsOf.delete(step.from);
    rows = patchRows(base, step.from.endpoints, s.endpoints, step.keys) ?? undefined;
  }
  if (!rows) {
    rows = { buf: new Uint8Array(HASH_BYTES * roomFor(s.endpoints.length)), n: s.endpoints.length };
    s.endpoints.forEach((e, k) => rows!.buf.set(endpointHash(e), k * HASH_BYTES));
  }
  rowsOf.set(s, rows);
  return rows;
}

/** Rows for `n` endpoints and some to grow by. */
const roomFor = (n: number): number => n + (n >> 3) + 8;

/**
 * The rows of `before` turned into those of `after`, which differ only at `keys` (sorted); null
 * when the two lists do not line up as sorted lists do (a state its owner did not sort).
 */
function patchRows(rows: Rows, before: readonly Endpoint[], after: readonly Endpoint[], keys: readonly string[]): Rows | null {
  if (rows.buf.length < HASH_BYTES * (before.length + keys.length)) {
    const grown = new Uint8Array(HASH_BYTES * roomFor(before.length + keys.length));
    grown.set(rows.buf.subarray(0, rows.n * HASH_BYTES));
    rows = { buf: grown, n: rows.n };
  }
  const { buf } = rows;
  // Keys in order: the rows before a key are already the new state's; those from it on are the
  // old state's, `shift` places off.
  let shift = 0;
  for (const key of keys) {
    const b = lowerBound(before, key, endpointKey);
    const at = (b + shift) * HASH_BYTES;
    const was = b < before.length && endpointKey(before[b]!) === key;
    const a = lowerBound(after, key, endpointKey);
    const now = a < after.length && endpointKey(after[a]!) === key;
    if (a !== b + shift) return null;
    const end = (before.length + shift) * HASH_BYTES;
    if (was && !now) {
      buf.copyWithin(at, at + HASH_BYTES, end);
      shift--;
    } else if (now) {
      if (!was) {
        buf.copyWithin(at + HASH_BYTES, at, end);
        shift++;
      }
      buf.set(endpointHash(after[a]!), at);
    }
  }
  rows.n = after.length;
  return rows;
}

/** The whole state of node `id` at `version` from its bytes, or null when they are not a well-formed state. */
export function decodeState(id: string, version: number, bytes: Uint8Array): NodeState | null {
  return orNull(() => {
    const a = decodeBytes(bytes);
    if (!Array.isArray(a) || a.length !== 4 || !Array.isArray(a[3])) return null;
    const t = new StringsIn();
    const [name, address, incarnation] = [t.get(a[0], 255), addrIn(a[1]), a[2]];
    const endpoints = (a[3] as unknown[]).map((e) => endpointIn(e, t, version));
    return validNodeState({ id, name, address, incarnation, version, endpoints });
  });
}

export const encodeHeader = (h: Header): Uint8Array => encodeCanonical([h.id, h.version, h.base, h.stateHash, h.bodyHash]);

/** Whether `v` can be a version (a whole number of ms, as the owner's clock gives). */
export const isVersion = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** The body of `d`; `base` is the state at its base, where its removed keys are found (keys not there were never published: left out). */
export function encodeBody(d: Delta, base?: NodeState): Uint8Array {
  const t = new StringsOut();
  const body: unknown[] = [d.put.map((e) => endpointOut(e, t, d.version)), positionsOf(base, d.del)];
  if (d.name !== undefined) body.push(t.put(d.name), addrOut(d.address!), d.incarnation);
  return encodeCanonical(body);
}

/** The positions of `keys` in `base`'s endpoints, ascending; keys not there are left out. */
function positionsOf(base: NodeState | undefined, keys: readonly string[]): number[] {
  const eps = base?.endpoints ?? [];
  const at: number[] = [];
  for (const k of keys) {
    const i = lowerBound(eps, k, endpointKey);
    if (i < eps.length && endpointKey(eps[i]!) === k) at.push(i);
  }
  return at.sort((a, b) => a - b);
}

/** The delta of node `id` from `base` to `version` in `bytes`, or null when the body is not well-formed. */
export function decodeBody(h: { id: string; version: number; base: number }, bytes: Uint8Array): Delta | null {
  return orNull(() => {
    const a = decodeBytes(bytes);
    if (!Array.isArray(a) || (a.length !== 2 && a.length !== 5) || !Array.isArray(a[0]) || !Array.isArray(a[1])) return null;
    const t = new StringsIn();
    const put = (a[0] as unknown[]).map((e) => endpointIn(e, t, h.version));
    const at = a[1] as unknown[];
    // Positions ascending (one form per body); none in a delta from nothing.
    if (!at.every((x, i) => Number.isSafeInteger(x) && (x as number) >= 0 && (i === 0 || (x as number) > (at[i - 1] as number))) || (at.length > 0 && h.base === 0)) return null;
    const d: Delta = { id: h.id, base: h.base, version: h.version, put, del: [], at: at as number[] };
    if (a.length === 5) {
      Object.assign(d, { name: t.get(a[2], 255), address: addrIn(a[3]), incarnation: a[4] });
      // The identity fields are checked like a state's (an empty one stands in for the endpoints).
      if (!validNodeState({ id: h.id, name: d.name, address: d.address, incarnation: d.incarnation, version: h.version, endpoints: [] })) return null;
    } else if (h.base === 0) return null;
    return d;
  });
}

/** The identity fields of `next`, or none when they are those of `prev` (and it is a base: not version 0). */
function identityChange(prev: NodeState | undefined, next: NodeState): Pick<Delta, 'name' | 'address' | 'incarnation'> {
  if (prev && prev.version !== 0 && prev.name === next.name && prev.address === next.address && prev.incarnation === next.incarnation) return {};
  return { name: next.name, address: next.address, incarnation: next.incarnation };
}

/** What changed from `prev` (the state at the delta's base; none: base 0) to `next`. Both sorted. */
export function diff(prev: NodeState | undefined, next: NodeState): Delta {
  const put: Endpoint[] = [];
  const del: string[] = [];
  const a = prev?.endpoints ?? [];
  const b = next.endpoints;
  const step = stepBetween(prev, next);
  if (step) {
    // Made from `prev` by recorded steps: only their keys can differ.
    for (const key of step.keys) {
      const j = lowerBound(b, key, endpointKey);
      if (j < b.length && endpointKey(b[j]!) === key) put.push(b[j]!);
      else del.push(key);
    }
    return { id: next.id, ...identityChange(prev, next), base: prev!.version, version: next.version, put, del };
  }
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && a[i] === b[j]) {
      // The same object: the same endpoint, unchanged (the common case, without building keys).
      i++;
      j++;
      continue;
    }
    const ka = i < a.length ? endpointKey(a[i]!) : null;
    const kb = j < b.length ? endpointKey(b[j]!) : null;
    const c = ka === null ? 1 : kb === null ? -1 : compareKeys(ka, kb);
    if (c < 0) {
      del.push(ka!);
      i++;
    } else if (c > 0) {
      put.push(b[j++]!);
    } else {
      if (a[i] !== b[j] && !sameBytes(endpointHash(a[i]!), endpointHash(b[j]!))) put.push(b[j]!);
      i++;
      j++;
    }
  }
  return { id: next.id, ...identityChange(prev, next), base: prev?.version ?? 0, version: next.version, put, del };
}

/**
 * The state `d` leads to from `held` (the state at `d.base`; ignored when the base is 0).
 * Unchanged endpoints keep their objects; the step is recorded (registry/steps.ts), so the state
 * hash, the registry's index and a delta onwards cost what the delta holds, not the state's size.
 */
export function apply(held: NodeState | undefined, d: Delta): NodeState {
  const make = (endpoints: Endpoint[]): NodeState => ({ id: d.id, name: d.name ?? held!.name, address: d.address ?? held!.address, incarnation: d.incarnation ?? held!.incarnation, version: d.version, endpoints });
  if (d.base === 0 || !held) return make(sortEndpoints(d.put));
  const changes = new Map<string, Endpoint | undefined>();
  for (const k of d.del) changes.set(k, undefined);
  // A position past the end removes nothing: the result is then not the owner's, and its signature check fails.
  for (const i of d.at ?? []) if (i < held.endpoints.length) changes.set(endpointKey(held.endpoints[i]!), undefined);
  for (const e of d.put) changes.set(endpointKey(e), e);
  return stepState(held, changes, make);
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
