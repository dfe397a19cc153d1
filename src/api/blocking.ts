import type { Registry } from '../registry/registry.js';

// Consul-style blocking queries (`?index=N&wait=30s`): a read waits until the data it returns
// changes past index N, or the wait ends. Each service remembers the registry index of its last
// change, so a watcher of one service is not woken by every other service. It also keeps the last
// RECENT_CHANGES changes for the status page.

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
  private readonly waiters = new Set<(force: boolean) => void>();
  private readonly unsubscribe: () => void;
  private readonly ring: RecentChange[] = [];

  constructor(
    private readonly registry: Registry,
    private readonly clock: () => number = Date.now,
  ) {
    this.nodesIndex = registry.index;
    this.unsubscribe = registry.onChange((change) => {
      for (const key of change.services) this.services.set(key, change.index);
      if (change.nodes.length) this.nodesIndex = change.index;
      this.remember(change.index, change.services, change.nodes);
      for (const wake of [...this.waiters]) wake(false);
    });
  }

  /** The last RECENT_CHANGES registry changes, newest first. */
  recent(): RecentChange[] {
    return [...this.ring].reverse();
  }

  private remember(index: number, keys: string[], nodes: string[]): void {
    const services = keys.slice(0, SERVICES_PER_CHANGE).map((key) => {
      const [ns, svc] = key.split('/') as [string, string];
      const v = this.registry.service(ns, svc);
      return v ? { key, endpoints: v.endpoints.length, healthy: v.endpoints.filter((e) => e.endpoint.healthy).length } : { key, removed: true as const };
    });
    const names = nodes.slice(0, SERVICES_PER_CHANGE).map((id) => this.registry.node(id)?.name ?? id);
    this.ring.push({ index, time: this.clock(), services, more: Math.max(0, keys.length - SERVICES_PER_CHANGE), nodes: names });
    if (this.ring.length > RECENT_CHANGES) this.ring.shift();
  }

  /** Index of the latest change to everything (service lists, status). */
  get global(): number {
    return this.registry.index;
  }

  get nodes(): number {
    return this.nodesIndex;
  }

  service(key: string): number {
    return this.services.get(key) ?? 0;
  }

  /** Resolves when `current()` exceeds `index`, or after `waitMs`. */
  wait(current: () => number, index: number, waitMs: number, signal?: AbortSignal): Promise<void> {
    // An index from the future means the daemon restarted since the client's last read.
    if (current() > index || index > this.registry.index || waitMs <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        signal?.removeEventListener('abort', finish);
        resolve();
      };
      const check = (force: boolean): void => {
        if (force || current() > index) finish();
      };
      const timer = setTimeout(finish, waitMs);
      this.waiters.add(check);
      signal?.addEventListener('abort', finish);
    });
  }

  close(): void {
    this.unsubscribe();
    for (const wake of [...this.waiters]) wake(true);
  }
}
