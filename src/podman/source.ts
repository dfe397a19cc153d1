import type { Logger } from 'pino';
import type { FailureLog } from '../log-once.js';
import { parseCidr, type Cidr } from '../net/cidr.js';
import type { LocalNode } from '../registry/local.js';
import { PodmanClient } from './client.js';
import { autoRegisters, endpointsWithin, type ContainerFacts } from './endpoints.js';
import type { NetworkInfo } from './types.js';
import { PodmanWatcher, type Cause } from './watcher.js';

// Podman as a source of this node's endpoints: the watcher's view of containers and networks
// turned into local endpoints, container names for scoped DNS, the bridge subnets the DNS server
// trusts, and the gateways it should serve. The daemon wires the callbacks.

export interface PodmanSourceOptions {
  socket: string;
  resyncIntervalMs: number;
  nodeAddress: string;
  /** Ports per endpoint and endpoints per service taken from containers; more are skipped. */
  maxPorts: number;
  maxEndpoints: number;
  failures?: FailureLog;
}

export interface PodmanSinks {
  local: LocalNode;
  /** Container names per network, and the networks' subnets (scoped DNS). */
  names(containers: ContainerFacts[]): void;
  networks(networks: Array<{ name: string; subnets: string[] }>): void;
  /** Subnets of every local Podman network: their containers may use forwarding. */
  bridgeSubnets(subnets: Cidr[]): void;
  /** Gateways of auto-registered networks without Podman DNS: the daemon serves DNS there. */
  gateways(addresses: string[]): void;
  healthEvent(containerId: string): void;
  /** Runs one update of several of the above so that what follows them (the DNS table) moves once. */
  batch?(update: () => void): void;
}

export class PodmanSource {
  readonly watcher: PodmanWatcher;
  /** Problems already logged, by container id: each is logged once. */
  private readonly warned = new Map<string, Set<string>>();
  private current: ContainerFacts[] = [];
  private lastLatencyMs: number | null = null;
  /** Containers not registered because their service has --max-endpoints-per-service already. */
  private overLimit: ContainerFacts[] = [];

  constructor(
    private readonly opts: PodmanSourceOptions,
    private readonly sinks: PodmanSinks,
    private readonly log: Logger,
  ) {
    this.watcher = new PodmanWatcher(
      new PodmanClient(opts.socket),
      { resyncIntervalMs: opts.resyncIntervalMs, nodeAddress: opts.nodeAddress, maxPorts: opts.maxPorts, failures: opts.failures },
      {
        containers: (all, cause) => this.onContainers(all, cause),
        networks: (all) => this.onNetworks(all),
        healthEvent: (id) => sinks.healthEvent(id),
      },
      log,
    );
  }

  start(): void {
    this.log.info({ socket: this.opts.socket }, `watching Podman at ${this.opts.socket}`);
    this.watcher.start();
  }

  stop(): void {
    this.watcher.stop();
  }

  /** Podman's healthcheck status of a container, read by inspecting it (the event does not carry it). */
  async podmanHealth(containerId: string): Promise<string | undefined> {
    const c = await this.watcher.inspect(containerId);
    return c?.State?.Health?.Status;
  }

  status(): Record<string, unknown> {
    const w = this.watcher;
    return {
      socket: this.opts.socket,
      connected: w.connected,
      last_error: w.connected ? null : w.lastError,
      last_sync: w.lastSync ? new Date(w.lastSync).toISOString() : null,
      containers: this.current.length,
      endpoints: this.current.filter((c) => c.endpoint).length,
      networks: [...w.networks.values()].filter(autoRegisters).map((n) => n.name),
      last_start_to_registry_ms: this.lastLatencyMs,
    };
  }

  /** Podman unreachable, container problems (bad labels, no address): for `status`. */
  problems(): string[] {
    const w = this.watcher;
    const down = !w.connected && w.lastError ? [`Podman API at ${this.opts.socket} is not reachable (${w.lastError}); serving the last known containers`] : [];
    return [...down, ...this.current.flatMap((c) => this.problemsOf(c).map((p) => `container ${c.name}: ${p}`))];
  }

  private problemsOf(c: ContainerFacts): string[] {
    return this.overLimit.includes(c) ? [...c.problems, `not registered: ${c.endpoint!.namespace}/${c.endpoint!.service} already has ${this.opts.maxEndpoints} endpoints from Podman (--max-endpoints-per-service)`] : c.problems;
  }

  private batch(update: () => void): void {
    if (this.sinks.batch) this.sinks.batch(update);
    else update();
  }

  private onContainers(all: ContainerFacts[], cause: Cause): void {
    this.current = all;
    const { endpoints, over } = endpointsWithin(all, this.opts.maxEndpoints);
    this.overLimit = over;
    this.batch(() => {
      this.sinks.local.replaceSource('podman', endpoints);
      this.sinks.names(all.filter((c) => c.running));
    });
    if (cause.receivedAt !== undefined) {
      const ms = Math.round((performance.now() - cause.receivedAt) * 10) / 10;
      // The start → registered figure (an inspect in between) is the one worth reporting.
      if (cause.action === 'start') this.lastLatencyMs = ms;
      this.log.debug({ container: cause.container, action: cause.action, ms }, `Podman ${cause.action} event applied to the registry in ${ms} ms`);
    }
    const ids = new Set(all.map((c) => c.id));
    for (const id of this.warned.keys()) if (!ids.has(id)) this.warned.delete(id);
    for (const c of all) {
      let seen = this.warned.get(c.id);
      for (const p of this.problemsOf(c)) {
        if (seen?.has(p)) continue;
        if (!seen) this.warned.set(c.id, (seen = new Set()));
        seen.add(p);
        this.log.warn({ container: c.name, id: c.id }, `container ${c.name}: ${p}`);
      }
    }
    this.sinks.gateways(gatewaysToServe(this.watcher.networks));
  }

  private onNetworks(all: NetworkInfo[]): void {
    const subnets = (n: NetworkInfo): string[] => (n.subnets ?? []).map((s) => s?.subnet).filter((s): s is string => typeof s === 'string');
    // Only bridges: a macvlan/ipvlan subnet is the LAN itself, and forwarding stays closed to it.
    const bridges = all.filter((n) => (n.driver ?? 'bridge') === 'bridge');
    this.batch(() => {
      this.sinks.networks(all.map((n) => ({ name: n.name, subnets: subnets(n) })));
      this.sinks.bridgeSubnets(bridges.flatMap(subnets).map((s) => parseCidr(s)).filter((c): c is Cidr => c !== null));
    });
    this.sinks.gateways(gatewaysToServe(this.watcher.networks));
  }
}

/** docs/architecture.md#dns: the daemon serves `<gateway>:53` of auto-registered bridges that have no Podman DNS. */
export function gatewaysToServe(networks: ReadonlyMap<string, NetworkInfo>): string[] {
  const out: string[] = [];
  for (const n of networks.values()) {
    if (!autoRegisters(n) || n.dns_enabled === true || (n.driver ?? 'bridge') !== 'bridge') continue;
    for (const s of n.subnets ?? []) if (s?.gateway && !out.includes(s.gateway)) out.push(s.gateway);
  }
  return out;
}
