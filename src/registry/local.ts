import { sameEndpoint } from './equal.js';
import type { Registry } from './registry.js';
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
  private readonly sources = new Map<EndpointSource, Map<string, Endpoint>>();
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
    this.commit(true);
  }

  get state(): NodeState {
    return this.current;
  }

  endpoints(source?: EndpointSource): Endpoint[] {
    if (source) return [...(this.sources.get(source)?.values() ?? [])];
    return this.current.endpoints;
  }

  /** True when one more endpoint would go over the limit. */
  get full(): boolean {
    return this.current.endpoints.length >= this.maxEndpoints;
  }

  find(namespace: string, service: string, id: string): Endpoint | undefined {
    const key = endpointKey({ namespace, service, id });
    return this.current.endpoints.find((e) => endpointKey(e) === key);
  }

  /** Replaces everything a source provides (config reload, Podman resync); true when that changed the state. */
  replaceSource(source: EndpointSource, endpoints: Endpoint[]): boolean {
    const old = this.sources.get(source);
    const next = new Map<string, Endpoint>();
    for (const e of endpoints) {
      const key = endpointKey(e);
      next.set(key, kept(old?.get(key), { ...e, source }));
    }
    this.sources.set(source, next);
    return this.commit();
  }

  upsert(endpoint: Endpoint): void {
    let map = this.sources.get(endpoint.source);
    if (!map) this.sources.set(endpoint.source, (map = new Map()));
    const key = endpointKey(endpoint);
    map.set(key, kept(map.get(key), endpoint));
    this.commit();
  }

  /** Removes an endpoint of a source; false when that source has no such endpoint. */
  remove(source: EndpointSource, key: string): boolean {
    if (!this.sources.get(source)?.delete(key)) return false;
    this.health.delete(key);
    this.commit();
    return true;
  }

  setHealth(key: string, healthy: boolean): void {
    this.setHealthMany([[key, healthy]]);
  }

  /** Applies many health results as one change: one version, one table update, whatever their number. */
  setHealthMany(results: Iterable<readonly [key: string, healthy: boolean]>): void {
    let changed = false;
    for (const [key, healthy] of results) {
      if ((this.health.get(key) ?? true) === healthy) continue;
      this.health.set(key, healthy);
      changed = true;
    }
    if (changed) this.commit();
  }

  setIdentity(identity: LocalIdentity): void {
    this.identity = identity;
    this.commit();
  }

  /** Publishes the merged endpoints as a new version, unless nothing differs from the current state (`first`: always). */
  private commit(first = false): boolean {
    const prev = this.current;
    const id = this.identity;
    let same = !first && prev.id === id.id && prev.name === id.name && prev.address === id.address && prev.incarnation === id.incarnation;
    const merged = new Map<string, Endpoint>();
    // Config wins over the API, the API over Podman, if two sources claim the same key.
    for (const source of ['config', 'api', 'podman'] as const) {
      for (const [key, e] of this.sources.get(source) ?? []) {
        if (merged.has(key)) continue;
        const healthy = this.health.get(key) ?? true;
        merged.set(key, e.healthy === healthy ? e : { ...e, healthy });
      }
    }
    // Sorted by key, as every copy of a state is (sync/delta.ts): a delta then rebuilds it exactly.
    const endpoints: Endpoint[] = [];
    for (const key of [...merged.keys()].sort(compareKeys)) {
      const next = merged.get(key)!;
      // Unchanged endpoints keep their objects: the registry then compares them by identity.
      const old = prev.endpoints[endpoints.length];
      if (old !== undefined && (old === next || sameEndpoint(old, next))) endpoints.push(old);
      else {
        same = false;
        endpoints.push(next);
      }
    }
    if (same && endpoints.length === prev.endpoints.length) return false;
    this.version = Math.max(this.version + 1, this.now());
    this.current = { ...id, version: this.version, endpoints };
    this.registry.apply(this.current);
    return true;
  }
}

/** The endpoint a source now provides: the one it had when only `lastSeen` differs. */
const kept = (old: Endpoint | undefined, next: Endpoint): Endpoint => (old !== undefined && sameEndpoint(old, next) ? old : next);
