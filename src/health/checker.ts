import type { Logger } from 'pino';
import type { LocalNode } from '../registry/local.js';
import { endpointKey, type Endpoint } from '../registry/types.js';
import { INITIAL, record, type HealthState, type Thresholds } from './hysteresis.js';
import { httpProbe, noRoute, tcpProbe } from './probes.js';

// Checks this node's own endpoints (docs/architecture.md#health) and marks them healthy or not in the local node;
// the registry, DNS and the API follow from there. Podman's own healthcheck is read through a
// function the daemon passes in, so this module knows nothing of Podman.

export interface HealthOptions extends Thresholds {
  intervalMs: number;
  timeoutMs: number;
}

/** A container's healthcheck status as Podman reports it (`healthy`, `unhealthy`, `starting`), or undefined. */
export type PodmanHealth = (containerId: string) => Promise<string | undefined>;

interface Tracked {
  state: HealthState;
  lastError: string | null;
  lastCheck: number | null;
  running: boolean;
  /** The last probe found no route to the endpoint (see noRoute): its health is left as it was. */
  notCheckable?: string;
}

/**
 * Probes in flight at once. Each TCP/HTTP probe holds a socket: unbounded, a node with thousands of
 * endpoints ran out of file descriptors (EMFILE), every endpoint then flapped, and DNS tables were
 * rebuilt without end.
 */
export const MAX_CONCURRENT_PROBES = 64;

/** Whether an endpoint has anything to probe; the others cost nothing per round. */
export function checkable(ep: Endpoint): boolean {
  if (ep.health === 'none' || !ep.addresses[0] || ep.container?.isolated) return false;
  if (ep.health === 'podman') return ep.container !== undefined && ep.container !== null;
  return Object.values(ep.ports).some((p) => p.protocol === 'tcp');
}

/**
 * Results are applied to the local node at most this often. Each application is a new node version
 * and a DNS table update: applied one by one, 360 endpoints whose probes time out together cost 360
 * table builds in a row and held the event loop for seconds, long enough for the other hosts to
 * declare this one dead.
 */
export const APPLY_INTERVAL_MS = 100;

export class HealthChecker {
  private readonly tracked = new Map<string, Tracked>();
  /** Changes of a local endpoint's health, by the state it changed to (the flaps a dashboard shows). */
  readonly transitions = { healthy: 0, unhealthy: 0 };
  private timer: NodeJS.Timeout | null = null;
  /** Results not yet applied to the local node, by endpoint key. */
  private readonly pending = new Map<string, boolean>();
  private applyTimer: NodeJS.Timeout | null = null;
  /** The round still probing; a tick while it runs does not start another (slow probes, many endpoints). */
  private round: Promise<void> | null = null;

  constructor(
    private readonly local: LocalNode,
    private opts: HealthOptions,
    private readonly podmanHealth: PodmanHealth | null,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.apply();
  }

  configure(opts: HealthOptions): void {
    const restart = opts.intervalMs !== this.opts.intervalMs && this.timer !== null;
    this.opts = opts;
    if (restart) {
      this.stop();
      this.start();
    }
  }

  /** Runs the checks of one container's endpoints now (Podman said its health changed). */
  checkContainer(containerId: string): void {
    for (const ep of this.local.endpoints()) if (ep.container?.id === containerId) void this.check(ep);
  }

  status(): { checked: number; unhealthy: Array<{ endpoint: string; reason: string | null }>; not_checkable: Array<{ endpoint: string; reason: string }> } {
    const unhealthy = [...this.tracked]
      .filter(([, t]) => !t.state.healthy)
      .map(([endpoint, t]) => ({ endpoint, reason: t.lastError }));
    const notCheckable = [...this.tracked].flatMap(([endpoint, t]) => (t.notCheckable ? [{ endpoint, reason: t.notCheckable }] : []));
    return { checked: this.tracked.size, unhealthy, not_checkable: notCheckable };
  }

  tick(): void {
    const current = new Set<string>();
    const due: Endpoint[] = [];
    for (const ep of this.local.endpoints()) {
      if (!checkable(ep)) continue;
      current.add(endpointKey(ep));
      due.push(ep);
    }
    for (const [key, t] of this.tracked) {
      if (current.has(key)) continue;
      this.tracked.delete(key);
      // A container that comes back under the same name (or an endpoint whose check was turned
      // off) starts healthy, not with old results.
      if (!t.state.healthy) this.defer(key, true);
    }
    if (this.round) return;
    this.round = this.probeAll(due).finally(() => {
      this.round = null;
      this.apply();
    });
  }

  /** Queues a result; they are applied together within APPLY_INTERVAL_MS. */
  private defer(key: string, healthy: boolean): void {
    this.pending.set(key, healthy);
    if (this.applyTimer) return;
    this.applyTimer = setTimeout(() => this.apply(), APPLY_INTERVAL_MS);
    this.applyTimer.unref();
  }

  private apply(): void {
    if (this.applyTimer) clearTimeout(this.applyTimer);
    this.applyTimer = null;
    if (this.pending.size === 0) return;
    // A result for an endpoint that went away meanwhile is dropped, unless it clears a mark.
    const results = [...this.pending].filter(([key, healthy]) => healthy || this.tracked.has(key));
    this.pending.clear();
    this.local.setHealthMany(results);
  }

  private async probeAll(due: Endpoint[]): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < due.length) {
        await this.check(due[next++]!);
        // A probe that fails at once (no route: the error comes on the next tick, not from the
        // network) ends within this turn; without a pause a whole round of them, thousands of
        // sockets, would run in one event-loop turn.
        await new Promise((r) => setImmediate(r));
      }
    };
    await Promise.all(Array.from({ length: Math.min(MAX_CONCURRENT_PROBES, due.length) }, worker));
  }

  private async check(ep: Endpoint): Promise<void> {
    const key = endpointKey(ep);
    let t = this.tracked.get(key);
    if (!t) this.tracked.set(key, (t = { state: INITIAL, lastError: null, lastCheck: null, running: false }));
    if (t.running) return;
    t.running = true;
    let reason: string | null | undefined;
    try {
      reason = await this.probe(ep);
    } catch (e) {
      reason = (e as Error).message;
    } finally {
      t.running = false;
    }
    if (reason === undefined || this.tracked.get(key) !== t) return;
    t.lastCheck = Date.now();
    if (reason !== null && noRoute(reason)) {
      if (!t.notCheckable) this.log.warn({ endpoint: key, reason }, `endpoint ${key} is not checkable from this host (${reason}): its health is left as it is`);
      t.notCheckable = reason;
      return;
    }
    delete t.notCheckable;
    t.lastError = reason;
    // Podman's status already counts its own retries: it is taken as it is.
    const thresholds = ep.health === 'podman' ? { rise: 1, fall: 1 } : this.opts;
    const next = record(t.state, reason === null, thresholds);
    if (next.healthy !== t.state.healthy) {
      this.transitions[next.healthy ? 'healthy' : 'unhealthy']++;
      if (next.healthy) this.log.info({ endpoint: key }, `endpoint ${key} is healthy again`);
      else this.log.warn({ endpoint: key, reason }, `endpoint ${key} is unhealthy: ${reason}`);
    }
    t.state = next;
    this.defer(key, next.healthy);
  }

  /** null: healthy; a string: why not; undefined: nothing to check. */
  private async probe(ep: Endpoint): Promise<string | null | undefined> {
    const { timeoutMs } = this.opts;
    const host = ep.addresses[0];
    if (!host || ep.health === 'none') return undefined;
    const tcp = Object.entries(ep.ports).filter(([, p]) => p.protocol === 'tcp');
    if (ep.health === 'podman') {
      if (!ep.container || !this.podmanHealth) return undefined;
      const status = await this.podmanHealth(ep.container.id);
      return status === 'unhealthy' ? `podman healthcheck of ${ep.container.name}: unhealthy` : null;
    }
    if (tcp.length === 0) return undefined;
    if (ep.health.startsWith('http:')) {
      const [, p] = tcp.find(([n]) => n === 'http') ?? tcp[0]!;
      return httpProbe(host, p.port, ep.health.slice('http:'.length), timeoutMs);
    }
    const results = await Promise.all(tcp.map(([, p]) => tcpProbe(host, p.port, timeoutMs)));
    return results.find((r) => r !== null) ?? null;
  }
}
