import type { Logger } from './log.js';

// Failures that leave the cluster or DNS wrong (a container Podman could not inspect, a peer
// whose state could not be pulled) must not pass silently, nor fill the log while they last: each
// one is logged at warn when it starts, counted every time, and logged once more when it ends.

/** What failed; the label of podman_swarm_dns_failures_total. */
export type FailureKind = 'inspect' | 'reconnect' | 'resync' | 'push_pull' | 'fetch';

/** Things failing at once that are remembered; past that the oldest is forgotten (it may warn again). */
const MAX_FAILING = 4096;

export class FailureLog {
  private readonly failing = new Map<string, number>();
  private readonly counts = new Map<FailureKind, number>();

  constructor(private readonly log: Logger) {}

  /** A failure of `key` (a container, a peer): warned the first time, counted every time. */
  fail(kind: FailureKind, key: string, message: string): void {
    this.count(kind);
    const id = `${kind}\0${key}`;
    const repeats = this.failing.get(id);
    if (repeats !== undefined) {
      this.failing.set(id, repeats + 1);
      return;
    }
    if (this.failing.size >= MAX_FAILING) this.failing.delete(this.failing.keys().next().value!);
    this.failing.set(id, 0);
    this.log.warn({ failure: kind, key }, message);
  }

  /** `key` works: logged once if it was failing, with how often it failed. */
  ok(kind: FailureKind, key: string, message: string): void {
    const id = `${kind}\0${key}`;
    const repeats = this.failing.get(id);
    if (repeats === undefined) return;
    this.failing.delete(id);
    this.log.info({ failure: kind, key, repeats }, `${message} (it failed ${repeats + 1} time${repeats ? 's' : ''})`);
  }

  /** `key` is gone (a removed container): forgotten without a log line. */
  forget(kind: FailureKind, key: string): void {
    this.failing.delete(`${kind}\0${key}`);
  }

  /** Counts a failure whose log lines the caller keeps itself. */
  count(kind: FailureKind): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
  }

  /** Failures counted since the start, by kind. */
  totals(): ReadonlyMap<FailureKind, number> {
    return this.counts;
  }
}
