import type { Registry } from '../registry/registry.js';

// Consul-style blocking queries (`?index=N&wait=30s`): a read waits until the data it returns
// changes past index N, or the wait ends. Each service remembers the registry index of its last
// change, so a watcher of one service is not woken by every other service.

export class ChangeIndex {
  private readonly services = new Map<string, number>();
  private nodesIndex: number;
  private readonly waiters = new Set<(force: boolean) => void>();
  private readonly unsubscribe: () => void;

  constructor(private readonly registry: Registry) {
    this.nodesIndex = registry.index;
    this.unsubscribe = registry.onChange((change) => {
      for (const key of change.services) this.services.set(key, change.index);
      if (change.nodes.length) this.nodesIndex = change.index;
      for (const wake of [...this.waiters]) wake(false);
    });
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
