import { sameEndpoint } from './equal.js';
import type { Registry } from './registry.js';
import { compareKeyTo, findByKey, putByKey, removeByKey, serviceRun, stepState } from './steps.js';
import { compareKeys, endpointKey, type Endpoint, type EndpointSource, type NodeState } from './types.js';

// This node's own state: the one state in the registry this process writes. Sources (config
// file, API, Podman) each own a set of endpoints; health results overlay them. Every change
// produces a new NodeState with a higher version and pushes it into the registry; a write that
// changes no content (a resync, a reload or a health round that finds everything as it was)
// produces nothing: same state, same version, no registry change, nothing to gossip.

export interface LocalIdentity {
  id: string;
  name: string;
  address: string;
  incarnation: number;
}

export class LocalNode {
  /**
   * Each source's endpoints, sorted by key and found by binary search (not a map by key: its
   * table and a key string per endpoint, 3.4 MB at 50,000 API registrations).
   */
  private readonly sources = new Map<EndpointSource, Endpoint[]>();
  /** Health results by endpoint key; absent means healthy until a checker says otherwise. */
  private readonly health = new Map<string, boolean>();
  private version = 0;
  private current: NodeState;

  constructor(
    private readonly registry: Registry,
    private identity: LocalIdentity,
    /** Wall clock in ms; versions start from it so a restarted node outranks its old states. */
    private readonly now: () => number = Date.now,
    /** --max-endpoints-per-node: the cluster refuses larger states (sync/registry-sync.ts). */
    readonly maxEndpoints = Infinity,
  ) {
    this.current = { ...identity, version: 0, endpoints: [] };
    this.commit([], true);
  }

  get state(): NodeState {
    return this.current;
  }

  endpoints(source?: EndpointSource): Endpoint[] {
    if (source) return this.sources.get(source)?.slice() ?? [];
    return this.current.endpoints;
  }

  /** This node's endpoints of one service (a binary search in the sorted list, not a scan). */
  serviceEndpoints(namespace: string, service: string): Endpoint[] {
    return serviceRun(this.current.endpoints, namespace, service);
  }

  /** True when one more endpoint would go over the limit. */
  get full(): boolean {
    return this.current.endpoints.length >= this.maxEndpoints;
  }

  find(namespace: string, service: string, id: string): Endpoint | undefined {
    return findByKey(this.current.endpoints, endpointKey({ namespace, service, id }));
  }

  /** Replaces everything a source provides (config reload, Podman resync); true when that changed the state. */
  replaceSource(source: EndpointSource, endpoints: Endpoint[]): boolean {
    const old = this.sources.get(source) ?? [];
    // In key order, the last of a key counting (a stable sort of the positions by key).
    const keys = endpoints.map(endpointKey);
    const order = keys.map((_, i) => i);
    if (keys.some((k, i) => i > 0 && compareKeys(keys[i - 1]!, k) >= 0)) order.sort((a, b) => compareKeys(keys[a]!, keys[b]!));
    const next = new Array<Endpoint>(order.length); // exact size (a list grown by push keeps up to half again)
    let size = 0;
    const touched: string[] = [];
    let j = 0; // old[j]: the first old endpoint not below the key at hand
    order.forEach((i, n) => {
      const key = keys[i]!;
      if (n + 1 < order.length && keys[order[n + 1]!] === key) return;
      for (; j < old.length && compareKeyTo(key, old[j]!) > 0; j++) touched.push(endpointKey(old[j]!)); // gone
      const before = j < old.length && compareKeyTo(key, old[j]!) === 0 ? old[j++] : undefined;
      const e = endpoints[i]!;
      // (The same object when it says its source already: the API's store holds it too.)
      const now = kept(before, e.source === source ? e : { ...e, source });
      next[size++] = now;
      if (now !== before) touched.push(key);
    });
    for (; j < old.length; j++) touched.push(endpointKey(old[j]!));
    next.length = size;
    this.sources.set(source, next);
    // The first fill (a source read at start, nothing published yet, no health result, no other
    // source): the list is the state as it is, not looked up key by key (50,000 at start).
    if (this.current.endpoints.length === 0 && size > 0 && this.health.size === 0 && [...this.sources].every(([s, l]) => s === source || l.length === 0)) {
      return this.publish((version) => ({ ...this.identity, version, endpoints: next.map((e) => (e.healthy ? e : { ...e, healthy: true })) }));
    }
    return this.commit(touched);
  }

  upsert(endpoint: Endpoint): void {
    let list = this.sources.get(endpoint.source);
    if (!list) this.sources.set(endpoint.source, (list = []));
    const key = endpointKey(endpoint);
    putByKey(list, key, (before) => kept(before, endpoint));
    this.commit([key]);
  }

  /** Removes an endpoint of a source; false when that source has no such endpoint. */
  remove(source: EndpointSource, key: string): boolean {
    const list = this.sources.get(source);
    if (!list || !removeByKey(list, key)) return false;
    this.health.delete(key);
    this.commit([key]);
    return true;
  }

  setHealth(key: string, healthy: boolean): void {
    this.setHealthMany([[key, healthy]]);
  }

  /** Applies many health results as one change: one version, one table update, whatever their number. */
  setHealthMany(results: Iterable<readonly [key: string, healthy: boolean]>): void {
    const changed: string[] = [];
    for (const [key, healthy] of results) {
      if ((this.health.get(key) ?? true) === healthy) continue;
      this.health.set(key, healthy);
      changed.push(key);
    }
    if (changed.length) this.commit(changed);
  }

  setIdentity(identity: LocalIdentity): void {
    this.identity = identity;
    this.commit([]);
  }

  /** What key `key` publishes now: config wins over the API, the API over Podman; health overlaid. */
  private effective(key: string): Endpoint | undefined {
    for (const source of SOURCES) {
      const list = this.sources.get(source);
      const e = list && findByKey(list, key);
      if (e === undefined) continue;
      const healthy = this.health.get(key) ?? true;
      return e.healthy === healthy ? e : { ...e, healthy };
    }
    return undefined;
  }

  /**
   * Publishes a new version when the endpoints of `touched` keys (or the identity) differ from the
   * current state (`first`: always). Only those keys are looked at: the cost follows the change.
   */
  private commit(touched: Iterable<string>, first = false): boolean {
    const prev = this.current;
    const id = this.identity;
    const sameId = !first && prev.id === id.id && prev.name === id.name && prev.address === id.address && prev.incarnation === id.incarnation;
    const changes = new Map<string, Endpoint | undefined>();
    for (const key of touched) {
      if (changes.has(key)) continue;
      // The published endpoints are found in the state's sorted list (not a map by key: 1.8 MB at 50,000).
      const old = findByKey(prev.endpoints, key);
      const next = this.effective(key);
      // Unchanged endpoints keep their objects: the registry then compares them by identity.
      if (old === next || (old !== undefined && next !== undefined && sameEndpoint(old, next))) continue;
      changes.set(key, next);
    }
    if (sameId && changes.size === 0) return false;
    // Sorted by key, as every copy of a state is (sync/delta.ts): a delta then rebuilds it exactly.
    return this.publish((version) => stepState(prev, changes, (endpoints) => ({ ...id, version, endpoints })));
  }

  /** Publishes the state `make` gives for the next version. */
  private publish(make: (version: number) => NodeState): boolean {
    this.version = Math.max(this.version + 1, this.now());
    this.current = make(this.version);
    this.registry.apply(this.current);
    return true;
  }
}

const SOURCES = ['config', 'api', 'podman'] as const;

/** The endpoint a source now provides: the one it had when only `lastSeen` differs. */
const kept = (old: Endpoint | undefined, next: Endpoint): Endpoint => (old !== undefined && sameEndpoint(old, next) ? old : next);
