import type { Logger } from 'pino';
import type { FailureLog } from '../log-once.js';
import { parseCidr, type Cidr } from '../net/cidr.js';
import type { LocalNode } from '../registry/local.js';
import { PodmanClient } from './client.js';
import { autoRegisters, endpointsWithin, type ContainerFacts, type PodmanOrigin } from './endpoints.js';
import type { NetworkInfo } from './types.js';
import { PodmanWatcher, type Cause } from './watcher.js';

// Podman as a source of this node's endpoints: the watcher's view of containers and networks
// turned into local endpoints, container names for scoped DNS, the bridge subnets the DNS server
// trusts, and the gateways it should serve. The daemon wires the callbacks.

export interface PodmanSourceOptions {
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
  /** Another owner's (a followed rootless user's) container names; null once that user's Podman is no longer followed. */
  ownerNames?(uid: number, containers: ContainerFacts[] | null): void;
  networks(networks: Array<{ name: string; subnets: string[] }>): void;
  /** Subnets of every local Podman network: their containers may use forwarding. */
  bridgeSubnets(subnets: Cidr[]): void;
  /** Gateways of auto-registered networks without Podman DNS: the daemon serves DNS there. */
  gateways(addresses: string[]): void;
  healthEvent(containerId: string): void;
  /** Runs one update of several of the above so that what follows them (the DNS table) moves once. */
  batch?(update: () => void): void;
}

/** One Podman API socket followed: root's, or a user's. */
interface Feed {
  socket: string;
  origin: PodmanOrigin;
  /** Given with --podman-socket (the start waits for its first sync), not found under /run/user. */
  configured: boolean;
  watcher: PodmanWatcher;
  current: ContainerFacts[];
}

/**
 * Podman as a source of this node's endpoints: one watcher per API socket (root's and each
 * user's), their containers merged into the local node's `podman` endpoints. Only the daemon's
 * own Podman (root's for a root daemon; a user daemon's own) gives the scoped container names, the
 * bridge subnets and the gateways: other users' networks live in their network namespaces, and
 * their names and subnets may be the same as root's. Their container names are kept per owner,
 * answered only to that user's own queries.
 */
export class PodmanSource {
  private readonly feeds = new Map<string, Feed>();
  private started = false;
  /** Problems already logged, by container id: each is logged once. */
  private readonly warned = new Map<string, Set<string>>();
  private lastLatencyMs: number | null = null;
  /** Containers not registered because their service has --max-endpoints-per-service already (or another owner's endpoint has their id). */
  private overLimit = new Map<ContainerFacts, string>();

  constructor(
    private readonly opts: PodmanSourceOptions,
    private readonly sinks: PodmanSinks,
    private readonly log: Logger,
  ) {}

  /** Follows one more socket (started at once when the source runs). */
  add(socket: string, origin: PodmanOrigin, configured = true): void {
    if (this.feeds.has(socket)) return;
    const feed: Feed = { socket, origin, configured, current: [], watcher: null as unknown as PodmanWatcher };
    feed.watcher = new PodmanWatcher(
      new PodmanClient(socket),
      { resyncIntervalMs: this.opts.resyncIntervalMs, nodeAddress: this.opts.nodeAddress, maxPorts: this.opts.maxPorts, failures: this.opts.failures, origin },
      {
        containers: (all, cause) => this.onContainers(feed, all, cause),
        // Other users' networks are not this daemon's to serve (see ownFeeds).
        networks: () => (origin.qualify ? undefined : this.onNetworks()),
        healthEvent: (id) => this.sinks.healthEvent(id),
      },
      this.log,
    );
    this.feeds.set(socket, feed);
    if (this.started) this.startFeed(feed);
  }

  /** Stops following a socket (a user's went away): its containers' endpoints are withdrawn. */
  remove(socket: string, why: string): void {
    const feed = this.feeds.get(socket);
    if (!feed) return;
    feed.watcher.stop();
    this.feeds.delete(socket);
    const n = feed.current.filter((c) => c.endpoint).length;
    this.log.info({ socket, owner: feed.origin.owner }, `no longer watching ${feed.origin.owner}'s Podman at ${socket} (${why}); ${n} endpoint${n === 1 ? '' : 's'} withdrawn`);
    if (feed.current.length) this.onContainers(null, [], {});
    if (feed.origin.qualify && feed.origin.uid !== undefined) this.sinks.ownerNames?.(feed.origin.uid, this.ownerFeeds(feed.origin.uid).length ? this.ownerContainers(feed.origin.uid) : null);
  }

  sockets(): string[] {
    return [...this.feeds.keys()];
  }

  start(): void {
    this.started = true;
    for (const f of this.feeds.values()) this.startFeed(f);
  }

  private startFeed(f: Feed): void {
    this.log.info({ socket: f.socket, owner: f.origin.owner }, `watching ${f.origin.rootless ? `${f.origin.owner}'s rootless` : "root's"} Podman at ${f.socket}`);
    f.watcher.start();
  }

  stop(): void {
    this.started = false;
    for (const f of this.feeds.values()) f.watcher.stop();
  }

  /** Every configured socket has been read once (the start grace waits for it). */
  synced(): boolean {
    return [...this.feeds.values()].every((f) => !f.configured || f.watcher.lastSync !== null);
  }

  /** Podman's healthcheck status of a container, read by inspecting it (the event does not carry it). */
  async podmanHealth(containerId: string): Promise<string | undefined> {
    const feeds = [...this.feeds.values()];
    const feed = feeds.find((f) => f.watcher.container(containerId)) ?? feeds[0];
    const c = feed ? await feed.watcher.inspect(containerId) : undefined;
    return c?.State?.Health?.Status;
  }

  status(): Record<string, unknown> {
    const sockets = [...this.feeds.values()].map((f) => {
      const w = f.watcher;
      return {
        socket: f.socket,
        owner: f.origin.owner,
        rootless: f.origin.rootless,
        connected: w.connected,
        last_error: w.connected ? null : w.lastError,
        last_sync: w.lastSync ? new Date(w.lastSync).toISOString() : null,
        containers: f.current.length,
        endpoints: f.current.filter((c) => c.endpoint && !this.overLimit.has(c)).length,
      };
    });
    const first = sockets[0];
    return {
      // The first socket's figures at the top (as before several sockets were followed); all in `sockets`.
      socket: first?.socket ?? null,
      connected: first?.connected ?? false,
      last_error: first?.last_error ?? null,
      last_sync: first?.last_sync ?? null,
      containers: sockets.reduce((n, s) => n + s.containers, 0),
      endpoints: sockets.reduce((n, s) => n + s.endpoints, 0),
      networks: this.ownFeeds().flatMap((f) => [...f.watcher.networks.values()].filter(autoRegisters).map((n) => n.name)),
      last_start_to_registry_ms: this.lastLatencyMs,
      sockets,
    };
  }

  /** Podman unreachable, container problems (bad labels, no address): for `status`. */
  problems(): string[] {
    const out: string[] = [];
    for (const f of this.feeds.values()) {
      const w = f.watcher;
      if (!w.connected && w.lastError) out.push(`${f.origin.owner}'s Podman API at ${f.socket} is not reachable (${w.lastError}); serving the last known containers`);
      for (const c of f.current) out.push(...this.problemsOf(c).map((p) => `container ${c.name}${f.origin.owner === 'root' ? '' : ` (${f.origin.owner})`}: ${p}`));
    }
    return out;
  }

  private problemsOf(c: ContainerFacts): string[] {
    const over = this.overLimit.get(c);
    return over ? [...c.problems, over] : c.problems;
  }

  /** The daemon's own Podman: root's for a root daemon, the user's own for a user daemon. */
  private ownFeeds(): Feed[] {
    return [...this.feeds.values()].filter((f) => !f.origin.qualify);
  }

  /** The followed Podmans of another owner (a user may be given twice: found under /run/user and with --podman-socket). */
  private ownerFeeds(uid: number): Feed[] {
    return [...this.feeds.values()].filter((f) => f.origin.qualify && f.origin.uid === uid);
  }

  private ownerContainers(uid: number): ContainerFacts[] {
    return this.ownerFeeds(uid).flatMap((f) => f.current.filter((c) => c.running));
  }

  private batch(update: () => void): void {
    if (this.sinks.batch) this.sinks.batch(update);
    else update();
  }

  private onContainers(feed: Feed | null, all: ContainerFacts[], cause: Cause): void {
    if (feed) feed.current = all;
    const every = [...this.feeds.values()].flatMap((f) => f.current);
    const { endpoints, over, duplicate } = endpointsWithin(every, this.opts.maxEndpoints);
    this.overLimit = new Map([
      ...over.map((c): [ContainerFacts, string] => [c, `not registered: ${c.endpoint!.namespace}/${c.endpoint!.service} already has ${this.opts.maxEndpoints} endpoints from Podman (--max-endpoints-per-service)`]),
      ...duplicate.map((c): [ContainerFacts, string] => [c, `not registered: another container already has the endpoint id ${c.endpoint!.id} in ${c.endpoint!.namespace}/${c.endpoint!.service}; rename the container`]),
    ]);
    this.batch(() => {
      this.sinks.local.replaceSource('podman', endpoints);
      if (!feed || !feed.origin.qualify) this.sinks.names(this.ownFeeds().flatMap((f) => f.current.filter((c) => c.running)));
      else if (feed.origin.uid !== undefined) this.sinks.ownerNames?.(feed.origin.uid, this.ownerContainers(feed.origin.uid));
    });
    if (cause.receivedAt !== undefined) {
      const ms = Math.round((performance.now() - cause.receivedAt) * 10) / 10;
      // The start → registered figure (an inspect in between) is the one worth reporting.
      if (cause.action === 'start') this.lastLatencyMs = ms;
      this.log.debug({ container: cause.container, action: cause.action, ms }, `Podman ${cause.action} event applied to the registry in ${ms} ms`);
    }
    const ids = new Set(every.map((c) => c.id));
    for (const id of this.warned.keys()) if (!ids.has(id)) this.warned.delete(id);
    for (const c of every) {
      let seen = this.warned.get(c.id);
      for (const p of this.problemsOf(c)) {
        if (seen?.has(p)) continue;
        if (!seen) this.warned.set(c.id, (seen = new Set()));
        seen.add(p);
        this.log.warn({ container: c.name, id: c.id }, `container ${c.name}: ${p}`);
      }
    }
    if (!feed || !feed.origin.qualify) this.sinks.gateways(this.ownGateways());
  }

  private ownGateways(): string[] {
    return [...new Set(this.ownFeeds().flatMap((f) => gatewaysToServe(f.watcher.networks)))];
  }

  private onNetworks(): void {
    const all = this.ownFeeds().flatMap((f) => [...f.watcher.networks.values()]);
    const subnets = (n: NetworkInfo): string[] => (n.subnets ?? []).map((s) => s?.subnet).filter((s): s is string => typeof s === 'string');
    // Only bridges: a macvlan/ipvlan subnet is the LAN itself, and forwarding stays closed to it.
    const bridges = all.filter((n) => (n.driver ?? 'bridge') === 'bridge');
    this.batch(() => {
      this.sinks.networks(all.map((n) => ({ name: n.name, subnets: subnets(n) })));
      this.sinks.bridgeSubnets(bridges.flatMap(subnets).map((s) => parseCidr(s)).filter((c): c is Cidr => c !== null));
    });
    this.sinks.gateways(this.ownGateways());
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
