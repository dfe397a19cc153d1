import { basename, dirname, resolve } from 'node:path';
import { Counter, Gauge, type Registry as PromRegistry } from 'prom-client';
import type { WriteOutcome } from './files.js';

// Whether the state directory takes writes: a file whose last write failed makes it unhealthy
// until a write of that file succeeds again. Shown in `status` and as metrics, so a full disk is
// seen before a restart loses what could not be saved.

export interface StateFileChange {
  file: string;
  /** The error of a write that failed after the last one succeeded, or null when it recovers. */
  error: string | null;
}

export class StateDirHealth {
  /** Files whose last write failed, with the error. */
  private readonly failing = new Map<string, string>();
  /** Failed writes since start, per file. */
  readonly errorCounts = new Map<string, number>();

  constructor(readonly dir: string) {}

  get healthy(): boolean {
    return this.failing.size === 0;
  }

  /** Records a write; returns a change of the file's state (to log), or null when it is the same. */
  record(o: WriteOutcome): StateFileChange | null {
    if (resolve(dirname(o.path)) !== resolve(this.dir)) return null;
    const file = basename(o.path);
    if (o.error) {
      this.errorCounts.set(file, (this.errorCounts.get(file) ?? 0) + 1);
      const was = this.failing.get(file);
      this.failing.set(file, o.error.message);
      return was === undefined ? { file, error: o.error.message } : null;
    }
    return this.failing.delete(file) ? { file, error: null } : null;
  }

  status(): { dir: string; healthy: boolean; failing: Record<string, string> } {
    return { dir: this.dir, healthy: this.healthy, failing: Object.fromEntries(this.failing) };
  }

  problems(): string[] {
    return [...this.failing.values()].map((why) => `state directory ${this.dir}: ${why}; changes are not saved`);
  }
}

export function registerStateMetrics(prom: PromRegistry, health: StateDirHealth): void {
  new Counter({
    name: 'podman_swarm_dns_state_write_errors_total',
    help: 'Writes to the state directory that failed (disk full, I/O error, read-only), by file',
    labelNames: ['file'],
    registers: [prom],
    collect() {
      this.reset();
      for (const [file, n] of health.errorCounts) this.inc({ file }, n);
    },
  });
  new Gauge({
    name: 'podman_swarm_dns_state_dir_healthy',
    help: '1 when the last write of every state file succeeded, 0 when one is failing',
    registers: [prom],
    collect() {
      this.set(health.healthy ? 1 : 0);
    },
  });
}
