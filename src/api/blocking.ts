import type { Registry } from '../registry/registry.js';

// Consul-style blocking queries (`?index=N&wait=30s`): a read waits until the data it returns
// changes past index N, or the wait ends. Each service remembers the registry index of its last
// change, and a waiter waits on what it reads (everything, the nodes, or one service), so a
// change wakes only the watchers of what it touched. It also keeps the last RECENT_CHANGES
// changes for the status page.

/** What a blocking read returns: everything (status, service list), the node list, or one service. */
export type Scope = 'global' | 'nodes' | { service: string };

type Waiter = (force: boolean) => void;

/** Registry changes remembered for the status page. */
export const RECENT_CHANGES = 100;
/** Services named per remembered change; a node's state can touch thousands at once. */
const SERVICES_PER_CHANGE = 20;

export interface RecentChange {
  index: number;
  /** ms since the epoch */
  time: number;
  /** Touched services as they are after the change: endpoint counts, or `removed`. */
  services: Array<{ key: string; endpoints: number; healthy: number } | { key: string; removed: true }>;
  /** Touched services beyond the ones listed. */
  more: number;
  /** Names (or ids) of the nodes whose state changed or went away. */
  nodes: string[];
}

export class ChangeIndex {
  private readonly services = new Map<string, number>();
  private nodesIndex: number;
  private readonly waiters = { global: new Set<Waiter>(), nodes: new Set<Waiter>(), services: new Map<string, Set<Waiter>>() };
  private readonly unsubscribe: () => void;
  private readonly ring: RecentChange[] = [];

  constructor(
    private readonly registry: Registry,
    private readonly clock: () => number = Date.now,
  ) {
    this.nodesIndex = registry.index;
    this.unsubscribe = registry.onChange((change) => {
      this.remember(change.index, change.services, change.nodes);
      const wake = [...this.waiters.global];
      for (const key of change.services) {
        this.services.set(key, change.index);
        wake.push(...(this.waiters.services.get(key) ?? []));
      }
      if (change.nodes.length) {
        this.nodesIndex = change.index;
        wake.push(...this.waiters.nodes);
      }
      for (const w of wake) w(false);
    });
  }

  /** The last RECENT_CHANGES registry changes, newest first. */
  recent(): RecentChange[] {
    return [...this.ring].reverse();
  }

  private remember(index: number, keys: string[], nodes: string[]): void {
    // One look per key, up to SERVICES_PER_CHANGE of each kind; removed services first: of what a
    // big change touched, they are what a reader looks for.
    const removed: RecentChange['services'] = [];
    const present: RecentChange['services'] = [];
    for (const key of keys) {
      if (removed.length >= SERVICES_PER_CHANGE) break;
      const slash = key.indexOf('/');
      const v = this.registry.service(key.slice(0, slash), key.slice(slash + 1));
      if (!v) removed.push({ key, removed: true });
      else if (present.length < SERVICES_PER_CHANGE) present.push({ key, endpoints: v.endpoints.length, healthy: v.endpoints.filter((e) => e.endpoint.healthy).length });
    }
    const services = [...removed, ...present].slice(0, SERVICES_PER_CHANGE);
    const names = nodes.slice(0, SERVICES_PER_CHANGE).map((id) => this.registry.node(id)?.name ?? id);
    this.ring.push({ index, time: this.clock(), services, more: Math.max(0, keys.length - SERVICES_PER_CHANGE), nodes: names });
    if (this.ring.length > RECENT_CHANGES) this.ring.shift();
  }

  /** The index of the latest change to what `scope` reads. */
  index(scope: Scope): number {
    if (scope === 'global') return this.registry.index;
    if (scope === 'nodes') return this.nodesIndex;
    return this.services.get(scope.service) ?? 0;
  }

  /** Resolves when the index of `scope` exceeds `index`, or after `waitMs`. */
  wait(scope: Scope, index: number, waitMs: number, signal?: AbortSignal): Promise<void> {
    // An index from the future means the daemon restarted since the client's last read.
    if (this.index(scope) > index || index > this.registry.index || waitMs <= 0) return Promise.resolve();
    const set = this.waitersOf(scope);
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        set.delete(check);
        if (typeof scope === 'object' && set.size === 0) this.waiters.services.delete(scope.service);
        signal?.removeEventListener('abort', finish);
        resolve();
      };
      const check = (force: boolean): void => {
        if (force || this.index(scope) > index) finish();
      };
      const timer = setTimeout(finish, waitMs);
      set.add(check);
      signal?.addEventListener('abort', finish);
    });
  }

  private waitersOf(scope: Scope): Set<Waiter> {
    if (scope === 'global') return this.waiters.global;
    if (scope === 'nodes') return this.waiters.nodes;
    let set = this.waiters.services.get(scope.service);
    if (!set) this.waiters.services.set(scope.service, (set = new Set()));
    return set;
  }

  close(): void {
    this.unsubscribe();
    const all = [...this.waiters.global, ...this.waiters.nodes, ...[...this.waiters.services.values()].flatMap((s) => [...s])];
    for (const wake of all) wake(true);
  }
}
