import type { Logger } from 'pino';
import { FailureLog } from '../log-once.js';
import { PodmanError, type EventStream, type PodmanClient } from './client.js';
import { describeContainer, sharedNetworkOf, type ContainerFacts, type PodmanOrigin } from './endpoints.js';
import type { ContainerInspect, ContainerListItem, NetworkInfo, PodmanEvent } from './types.js';

// Follows Podman: the event stream for changes, a full resync (list + inspect) at start, after
// every reconnect and every resync interval as a safety net. While Podman is away the last known
// containers stay (the daemon keeps serving them) and the watcher reconnects with backoff.
//
// Ordering: an inspect is slower than the events around it. Every container event takes a number
// from one counter; an inspect result is dropped when a stop/remove (or a newer inspect) of that
// container was numbered after the inspect began, so a late answer never resurrects a container.

export interface WatcherOptions {
  resyncIntervalMs: number;
  /** The node's address, for host-network containers. */
  nodeAddress: string;
  /** Ports one container endpoint may declare; more are skipped (default DEFAULT_MAX_PORTS). */
  maxPorts?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Where failed inspects, reconnects and resyncs are logged once and counted (one of its own by default). */
  failures?: FailureLog;
  /** Whose Podman this is (root's by default). */
  origin?: PodmanOrigin;
}

export interface WatcherListener {
  /** Every container the watcher knows, after each change. */
  containers(all: ContainerFacts[], cause: Cause): void;
  networks(all: NetworkInfo[]): void;
  /** Podman reported a health_status event: the check should run now. */
  healthEvent(containerId: string): void;
}

/** What caused an update: the container and event (with when it arrived), or nothing for a resync. */
export interface Cause {
  container?: string;
  action?: string;
  receivedAt?: number;
}

/**
 * Why the API failed, said plainly when something answers on the socket but not libpod's API (an
 * HTTP error status on the event stream or a list, or not HTTP at all).
 */
function failure(e: unknown): string {
  const message = (e as Error)?.message ?? String(e);
  const notPodman = (e instanceof PodmanError && (e.status === 404 || e.status === 405 || e.status === 502)) || /Parse Error|HPE_/.test(message);
  return notPodman ? `not a Podman API: ${message}` : message;
}

const GONE = new Set(['died', 'stop', 'remove', 'pause', 'exited']);
const INSPECT = new Set(['start', 'restart', 'unpause', 'rename', 'connect', 'disconnect', 'update']);

export class PodmanWatcher {
  private readonly inspects = new Map<string, ContainerInspect>();
  private readonly facts = new Map<string, ContainerFacts>();
  private networkMap = new Map<string, NetworkInfo>();
  private counter = 0;
  private readonly goneAt = new Map<string, number>();
  private readonly appliedAt = new Map<string, number>();
  private stream: EventStream | null = null;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private resyncing: Promise<void> | null = null;
  private resyncAgain = false;
  private _connected = false;
  /** null until the first attempt has an outcome: the first failure is logged too. */
  private logged: 'up' | 'down' | null = null;
  private streamOpen = false;
  private _lastSync: number | null = null;
  private _lastError: string | null = null;
  private readonly failures: FailureLog;

  constructor(
    private readonly client: PodmanClient,
    private readonly opts: WatcherOptions,
    private readonly listener: WatcherListener,
    private readonly log: Logger,
  ) {
    this.failures = opts.failures ?? new FailureLog(log);
  }

  get connected(): boolean {
    return this._connected;
  }

  get lastSync(): number | null {
    return this._lastSync;
  }

  get lastError(): string | null {
    return this._lastError;
  }

  get networks(): ReadonlyMap<string, NetworkInfo> {
    return this.networkMap;
  }

  container(id: string): ContainerFacts | undefined {
    return this.facts.get(id);
  }

  start(): void {
    void this.loop();
    this.timer = setInterval(() => {
      // While the stream is open, also after a failed resync: that is how it gets retried.
      if (this.streamOpen) void this.syncAndReport();
    }, this.opts.resyncIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.stream?.close();
    this.wake?.();
  }

  /** Inspects a container now (health checks read Podman's healthcheck status this way). */
  inspect(id: string): Promise<ContainerInspect> {
    return this.client.getJson<ContainerInspect>(`/containers/${encodeURIComponent(id)}/json`);
  }

  private async loop(): Promise<void> {
    let backoff = this.opts.backoffMinMs ?? 250;
    const max = this.opts.backoffMaxMs ?? 10_000;
    while (!this.stopped) {
      let reason: string;
      const stream = (this.stream = this.client.events(
        { type: ['container', 'network'] },
        () => {
          backoff = this.opts.backoffMinMs ?? 250;
          this.streamOpen = true;
          void this.syncAndReport();
        },
        (e) => this.onEvent(e as PodmanEvent),
      ));
      try {
        await stream.done;
        reason = 'the event stream ended';
      } catch (e) {
        reason = failure(e);
      }
      this.streamOpen = false;
      if (this.stopped) break;
      this.failures.count('reconnect');
      this.setState(false, reason);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, backoff).unref();
      });
      backoff = Math.min(backoff * 2, max);
    }
  }

  private syncAndReport(): Promise<void> {
    return this.resync().then(
      () => this.setState(true, null),
      (e: unknown) => {
        this.failures.count('resync');
        this.setState(false, failure(e));
      },
    );
  }

  /** Logged once per change of state (up/down), not once per retry or per new reason. */
  private setState(connected: boolean, reason: string | null): void {
    this._connected = connected;
    this._lastError = reason;
    const state = connected ? 'up' : 'down';
    if (state === this.logged) return;
    this.logged = state;
    const socket = this.client.socketPath;
    if (connected) {
      this.log.info({ socket, containers: this.facts.size }, `connected to Podman at ${socket}; ${this.facts.size} containers known`);
    } else {
      this.log.warn({ socket, reason }, `Podman API at ${socket} is not reachable (${reason}); keeping the ${this.countEndpoints()} known Podman endpoints and retrying`);
    }
  }

  private countEndpoints(): number {
    let n = 0;
    for (const f of this.facts.values()) if (f.endpoint) n++;
    return n;
  }

  private onEvent(e: PodmanEvent): void {
    const receivedAt = performance.now();
    const action = e.Action ?? e.status ?? '';
    const id = e.Actor?.ID ?? e.id;
    if (!id || typeof id !== 'string') return;
    if (e.Type === 'container' && action === 'health_status') {
      this.listener.healthEvent(id);
      return;
    }
    if (e.Type === 'container' && GONE.has(action)) {
      this.goneAt.set(id, ++this.counter);
      this.failures.forget('inspect', id);
      if (this.facts.delete(id) || this.inspects.delete(id)) {
        this.inspects.delete(id);
        this.emit({ container: id, action, receivedAt });
      }
      return;
    }
    if (INSPECT.has(action)) void this.refresh(id, { container: id, action, receivedAt });
  }

  /** Inspects one container and applies the result unless a later event made it stale. */
  private async refresh(id: string, cause: Cause | null): Promise<void> {
    const begun = ++this.counter;
    let c: ContainerInspect | null;
    try {
      c = await this.inspect(id);
    } catch (e) {
      if (!(e instanceof PodmanError) || e.status !== 404) {
        const after = cause?.action ? `its ${cause.action} event` : 'a resync';
        this.failures.fail('inspect', id, `Podman could not inspect container ${id.slice(0, 12)} after ${after} (${(e as Error).message}); DNS does not show this change until an inspect succeeds (next event, or the resync every ${this.opts.resyncIntervalMs / 1000} s)`);
        return;
      }
      c = null;
    }
    this.failures.ok('inspect', id, `Podman inspects container ${id.slice(0, 12)} again`);
    if ((this.goneAt.get(id) ?? 0) > begun || (this.appliedAt.get(id) ?? 0) > begun) return;
    this.appliedAt.set(id, begun);
    if (!c || typeof c !== 'object' || typeof c.Id !== 'string') {
      this.inspects.delete(id);
      this.facts.delete(id);
    } else {
      if (Object.keys(c.NetworkSettings?.Networks ?? {}).some((n) => !this.networkMap.has(n))) await this.refreshNetworks();
      if ((this.goneAt.get(id) ?? 0) > begun) return;
      this.inspects.set(id, c);
      this.facts.set(id, this.describe(c, Date.now()));
      // Containers sharing this one's network namespace (pod members) take their addresses from it.
      for (const [other, oc] of this.inspects) if (sharedNetworkOf(oc) === id) this.facts.set(other, this.describe(oc, Date.now()));
    }
    if (cause) this.emit(cause);
  }

  private async refreshNetworks(): Promise<void> {
    const list = await this.client.getJson<NetworkInfo[]>('/networks/json');
    const next = new Map<string, NetworkInfo>();
    // By name: Podman lists networks in no fixed order, and another order is not a change.
    const named = (Array.isArray(list) ? list : []).filter((n) => n && typeof n.name === 'string');
    for (const n of named.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) next.set(n.name, n);
    const changed = JSON.stringify([...next]) !== JSON.stringify([...this.networkMap]);
    this.networkMap = next;
    if (!changed) return;
    // Auto-registration depends on the networks' labels: rebuild every container's facts.
    const now = Date.now();
    for (const [id, c] of this.inspects) this.facts.set(id, this.describe(c, now));
    this.listener.networks([...next.values()]);
  }

  /** Full resync: networks, running containers, each inspected. One at a time; a request during one runs after it. */
  resync(): Promise<void> {
    if (this.resyncing) {
      this.resyncAgain = true;
      return this.resyncing;
    }
    const run = async (): Promise<void> => {
      do {
        this.resyncAgain = false;
        const begun = this.counter;
        await this.refreshNetworks();
        const list = await this.client.getJson<ContainerListItem[]>('/containers/json');
        const running = new Set((Array.isArray(list) ? list : []).map((c) => c?.Id).filter((id): id is string => typeof id === 'string'));
        await Promise.all([...running].map((id) => this.refresh(id, null)));
        for (const id of [...this.facts.keys()]) {
          // Gone from the list and untouched by any event since the list was asked for.
          if (!running.has(id) && (this.appliedAt.get(id) ?? 0) <= begun) {
            this.failures.forget('inspect', id);
            this.facts.delete(id);
            this.inspects.delete(id);
          }
        }
        this._lastSync = Date.now();
        this.emit({});
      } while (this.resyncAgain && !this.stopped);
    };
    this.resyncing = run().finally(() => (this.resyncing = null));
    return this.resyncing;
  }

  private describe(c: ContainerInspect, now: number): ContainerFacts {
    return describeContainer(c, this.networkMap, { address: this.opts.nodeAddress, maxPorts: this.opts.maxPorts, origin: this.opts.origin }, now, (id) => this.inspects.get(id));
  }

  private emit(cause: Cause): void {
    this.listener.containers([...this.facts.values()], cause);
  }
}
