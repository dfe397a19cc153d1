import { compareKeys, endpointKey, serviceKey, type Endpoint, type NodeState } from './types.js';

// How a node state was made from the one before it, when its maker knows (the local node's
// writes, a delta applied to the state at its base): the keys of the endpoints that may differ
// and the services they belong to. Consumers (the registry's index, the delta encoder, the state
// hash) then work on those keys instead of comparing whole endpoint lists, so the cost of a
// change follows the change, not the node's size. Kept beside the states (a WeakMap), not in
// them: states stay plain data. A step holds the state before it weakly, so a chain of versions
// is never kept alive by its steps.
//
// A step's keys hold every key whose endpoint differs between the two states (more is harmless:
// an extra key is recomputed, not missed). Both states keep their endpoints sorted by key.

export interface Step {
  from: NodeState;
  /** Endpoint keys, sorted, without repeats. */
  keys: readonly string[];
  /** Keys (`ns/svc`) of the services of the endpoints before and after. */
  services: ReadonlySet<string>;
}

interface Recorded {
  from: WeakRef<NodeState>;
  keys: readonly string[];
  services: ReadonlySet<string>;
}

const steps = new WeakMap<NodeState, Recorded>();
/**
 * A large step (the first commit of 50,000 registrations: its keys and services, ~1 MB) is
 * dropped once the state it was made from is gone: it can no longer be followed, and the state it
 * made may live on for hours. Small ones go with their state.
 */
const forget = new FinalizationRegistry<WeakRef<NodeState>>((to) => {
  const state = to.deref();
  if (state) steps.delete(state);
});

/** Longest chain of steps followed back from a state (its maker published in between: rare). */
const MAX_CHAIN = 16;
/** More changed keys than this: a list is sorted anew rather than patched key by key. */
export const PATCH_MAX = 64;

/** The step that made `to`, while the state it was made from is still held somewhere. */
export function lastStep(to: NodeState): Step | undefined {
  const r = steps.get(to);
  const from = r?.from.deref();
  return r && from ? { from, keys: r.keys, services: r.services } : undefined;
}

/**
 * What differs from `from` to `to`, when `to` was made from `from` in at most a few recorded
 * steps; undefined when that is not known (then compare the lists).
 */
export function stepBetween(from: NodeState | undefined, to: NodeState): Step | undefined {
  if (!from) return undefined;
  const chain: Step[] = [];
  let at: NodeState = to;
  while (at !== from) {
    const s = chain.length < MAX_CHAIN ? lastStep(at) : undefined;
    if (!s) return undefined;
    chain.push(s);
    at = s.from;
  }
  if (chain.length === 1) return chain[0];
  const keys = new Set<string>();
  const services = new Set<string>();
  for (const s of chain) {
    for (const k of s.keys) keys.add(k);
    for (const v of s.services) services.add(v);
  }
  return { from, keys: [...keys].sort(compareKeys), services };
}

/**
 * The endpoint list of `from` with `changes` made (an endpoint by key, or undefined: removed), as
 * the state `to` returned by `make`, the step recorded. A few changes are placed by binary
 * search in a copy of the list; many, by sorting anew.
 */
export function stepState(from: NodeState, changes: ReadonlyMap<string, Endpoint | undefined>, make: (endpoints: Endpoint[]) => NodeState): NodeState {
  const keys = [...changes.keys()].sort(compareKeys);
  const services = new Set<string>();
  let endpoints: Endpoint[];
  const note = (e: Endpoint | undefined): void => void (e && services.add(serviceKey(e.namespace, e.service)));
  if (keys.length > PATCH_MAX) {
    endpoints = merged(from.endpoints, keys, changes, note) ?? resorted(from.endpoints, changes, note);
  } else {
    endpoints = from.endpoints.slice();
    for (const key of keys) {
      const e = changes.get(key);
      const i = lowerBound(endpoints, key, endpointKey);
      const present = i < endpoints.length && endpointKey(endpoints[i]!) === key;
      if (present) note(endpoints[i]);
      note(e);
      if (e && present) endpoints[i] = e;
      else if (e) endpoints.splice(i, 0, e);
      else if (present) endpoints.splice(i, 1);
    }
  }
  const to = make(endpoints);
  steps.set(to, { from: new WeakRef(from), keys, services });
  if (keys.length > PATCH_MAX) forget.register(from, new WeakRef(to));
  return to;
}

/**
 * `list` (sorted by key) with `changes` (at `keys`, sorted) made, in one merge pass: no map of
 * the list, no second sort (the first commit of 50,000 registrations at start). Null when `list`
 * is not sorted after all (a peer's state is not checked for order).
 */
function merged(list: readonly Endpoint[], keys: readonly string[], changes: ReadonlyMap<string, Endpoint | undefined>, note: (e: Endpoint | undefined) => void): Endpoint[] | null {
  const out = new Array<Endpoint>(list.length + keys.length);
  let n = 0;
  let i = 0;
  let at = i < list.length ? endpointKey(list[i]!) : '';
  /** Moves to the next listed endpoint; false when the list goes down there (not sorted). */
  const next = (): boolean => {
    const before = at;
    if (++i < list.length) at = endpointKey(list[i]!);
    return i >= list.length || compareKeys(before, at) < 0;
  };
  for (const key of keys) {
    while (i < list.length && compareKeys(at, key) < 0) {
      out[n++] = list[i]!;
      if (!next()) return null;
    }
    if (i < list.length && at === key) {
      note(list[i]);
      if (!next()) return null;
    }
    const e = changes.get(key);
    note(e);
    if (e) out[n++] = e;
  }
  while (i < list.length) {
    out[n++] = list[i]!;
    if (!next()) return null;
  }
  out.length = n;
  return out;
}

/** `list` with `changes` made, sorted anew whatever the list's order. */
function resorted(list: readonly Endpoint[], changes: ReadonlyMap<string, Endpoint | undefined>, note: (e: Endpoint | undefined) => void): Endpoint[] {
  const byKey = new Map(list.map((e) => [endpointKey(e), e] as const));
  for (const [key, e] of changes) {
    note(byKey.get(key));
    note(e);
    if (e) byKey.set(key, e);
    else byKey.delete(key);
  }
  return [...byKey.keys()].sort(compareKeys).map((k) => byKey.get(k)!);
}

/** The first position in `items` (sorted by `keyOf`) whose key is not below `key`. */
export function lowerBound<T>(items: readonly T[], key: string, keyOf: (item: T) => string): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keyOf(items[mid]!), key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * `a` and `b` compared as the parts `<a>/` and `<b>/` of endpoint keys (namespaces, services: DNS
 * labels, without `/`), without building the keys: negative, 0 (the same) or positive.
 */
function comparePart(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d;
  }
  // One is the start of the other: the shorter goes on with its `/`.
  return (a.length > n ? a.charCodeAt(n) : 0x2f) - (b.length > n ? b.charCodeAt(n) : 0x2f);
}

/** Endpoints in the order of their keys (compareKeys of endpointKey), without building the keys. */
export function compareEndpoints(a: Endpoint, b: Endpoint): number {
  return comparePart(a.namespace, b.namespace) || comparePart(a.service, b.service) || compareKeys(a.id, b.id);
}

/** `key` compared with `endpointKey(e)` (as compareKeys would), without building that key. */
export function compareKeyTo(key: string, e: Endpoint): number {
  let at = 0;
  for (let p = 0; p < 3; p++) {
    const part = p === 0 ? e.namespace : p === 1 ? e.service : e.id;
    for (let j = 0; j < part.length; j++, at++) {
      if (at >= key.length) return -1;
      const d = key.charCodeAt(at) - part.charCodeAt(j);
      if (d !== 0) return d;
    }
    if (p === 2) break;
    if (at >= key.length) return -1;
    const d = key.charCodeAt(at++) - 0x2f;
    if (d !== 0) return d;
  }
  return at < key.length ? 1 : 0;
}

/** Where the endpoint with key `key` is (or would be) in a list sorted by key: a binary search, no key built. */
export function keyPosition(endpoints: readonly Endpoint[], key: string): number {
  let lo = 0;
  let hi = endpoints.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeyTo(key, endpoints[mid]!) > 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The endpoint with key `key` in a list sorted by key, if it is there. */
export function findByKey(endpoints: readonly Endpoint[], key: string): Endpoint | undefined {
  const e = endpoints[keyPosition(endpoints, key)];
  return e !== undefined && compareKeyTo(key, e) === 0 ? e : undefined;
}

/** Puts `make(the endpoint with key `key`, if any)` in its place in a list sorted by key (one search). */
export function putByKey(endpoints: Endpoint[], key: string, make: (before: Endpoint | undefined) => Endpoint): void {
  const i = keyPosition(endpoints, key);
  const before = endpoints[i];
  if (before !== undefined && compareKeyTo(key, before) === 0) endpoints[i] = make(before);
  else endpoints.splice(i, 0, make(undefined));
}

/** Takes the endpoint with key `key` out of a list sorted by key (one search); false when it is not there. */
export function removeByKey(endpoints: Endpoint[], key: string): boolean {
  const i = keyPosition(endpoints, key);
  const e = endpoints[i];
  if (e === undefined || compareKeyTo(key, e) !== 0) return false;
  endpoints.splice(i, 1);
  return true;
}

/** True when a list is in the order of its endpoints' keys (every state this version makes is). */
export function inKeyOrder(endpoints: readonly Endpoint[]): boolean {
  for (let i = 1; i < endpoints.length; i++) if (compareEndpoints(endpoints[i - 1]!, endpoints[i]!) >= 0) return false;
  return true;
}

/** Where the run of service `ns/svc` starts (or would) in a list sorted by key. */
function runStart(endpoints: readonly Endpoint[], namespace: string, service: string): number {
  let lo = 0;
  let hi = endpoints.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const e = endpoints[mid]!;
    if ((comparePart(e.namespace, namespace) || comparePart(e.service, service)) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The endpoints of service `ns/svc` in a state's sorted list: one contiguous run, found by binary search. */
export function serviceRun(endpoints: readonly Endpoint[], namespace: string, service: string): Endpoint[] {
  const start = runStart(endpoints, namespace, service);
  let end = start;
  while (end < endpoints.length && endpoints[end]!.namespace === namespace && endpoints[end]!.service === service) end++;
  // A slice holds what it has; a list grown from [] by push reserves 17.
  return endpoints.slice(start, end);
}

/** True when a sorted list has endpoints of service `ns/svc`. */
export function hasRun(endpoints: readonly Endpoint[], namespace: string, service: string): boolean {
  const e = endpoints[runStart(endpoints, namespace, service)];
  return e !== undefined && e.namespace === namespace && e.service === service;
}
