import { LocalNode } from '../../registry/local.js';
import { Registry } from '../../registry/registry.js';
import type { Endpoint, NodeState } from '../../registry/types.js';
import { LAN, type GossipConfig } from '../config.js';
import { Keyring, Wire } from '../crypto.js';
import { NodeIdentity } from '../identity.js';
import { Membership } from '../membership.js';
import { seeded, VirtualClock } from './clock.js';
import { SimNetwork, type NetworkOptions, type SimTransport } from './network.js';
import { StateTable, type NodeStates } from './states.js';
import { deltaSync, SharedWork, type SimSync, type SyncCounters, type SyncFactory } from './sync.js';

// The deterministic simulator (docs/architecture.md#registry-and-gossip): N complete nodes — registry, local node, registry sync
// and membership, the daemon's own code — on one virtual clock and one virtual network. Only
// sockets and the wall clock are replaced. With `views: false` a node keeps only the node states
// its sync merges, not the DNS views built from them (thousands of hosts with real state).

export interface SimNode {
  index: number;
  /** Derived from the node's key (reproducible: the key comes from the seed). */
  id: string;
  /** n00000, n00001, …: the node's name and the host part of its address. */
  name: string;
  identity: NodeIdentity;
  addr: string;
  /** The node states this node holds (its Registry, or a StateTable without views). */
  registry: NodeStates;
  /** The full registry with its DNS views; absent with `views: false`. */
  views?: Registry;
  local: LocalNode;
  sync: SimSync;
  membership: Membership;
  transport: SimTransport;
  crashed: boolean;
}

export interface SimulationOptions {
  nodes: number;
  seed?: number;
  network?: Partial<NetworkOptions>;
  config?: Partial<GossipConfig>;
  /** Seal every packet with AES-256-GCM like the daemon (slower). */
  key?: Buffer;
  /** Start with every node knowing every other (true) or with each node joining node 0 (false). */
  converged?: boolean;
  /** Build each node's DNS views (the full Registry); default true. */
  views?: boolean;
  /** The sync layer each node runs (default: the daemon's registry sync). */
  sync?: SyncFactory;
  /** Endpoints node `index` has from the start (its containers). */
  endpoints?: (index: number) => Endpoint[];
  /**
   * Hosts share the work they would all do alike on the same bytes (SharedWork: a delta applied
   * and checked once per simulation, not once per host); default true. False: every host does
   * all of its own work (for comparing the two).
   */
  sharedWork?: boolean;
}

export class Simulation {
  readonly clock = new VirtualClock();
  readonly random: () => number;
  /** Node keys come from their own stream, so they do not shift the protocol's random choices. */
  private readonly keyRandom: () => number;
  readonly net: SimNetwork;
  readonly nodes: SimNode[] = [];
  readonly config: GossipConfig;
  readonly counters: SyncCounters = { wholeStates: 0, refused: 0 };
  private readonly sharedStates = new Map<string, NodeState>();
  /** The work hosts share (SIMULATOR HOOK, sync.ts); undefined with `sharedWork: false`. */
  readonly shared: SharedWork | undefined;

  constructor(private readonly o: SimulationOptions) {
    this.random = seeded(o.seed ?? 1);
    this.keyRandom = seeded(((o.seed ?? 1) * 7919) ^ 0x5eed);
    this.net = new SimNetwork(this.clock, this.random, { latencyMs: 1, jitterMs: 2, loss: 0, ...o.network });
    this.config = { ...LAN, ...o.config };
    this.shared = o.sharedWork === false ? undefined : new SharedWork();
    for (let i = 0; i < o.nodes; i++) this.nodes.push(this.makeNode(i));
  }

  private makeNode(index: number): SimNode {
    const name = `n${String(index).padStart(5, '0')}`;
    const identity = NodeIdentity.fromSeed(Uint8Array.from({ length: 32 }, () => Math.floor(this.keyRandom() * 256)));
    const id = identity.id;
    const addr = `${name}:7946`;
    const views = this.o.views === false ? undefined : new Registry({ localNode: id, routableContainerIps: false, defaultMode: 'dnsrr' });
    const registry: NodeStates = views ?? new StateTable(id, this.sharedStates);
    // The wall clock as the daemon reads it (Date.now: whole ms). Versions come from it, and the
    // sync refuses a version that is not an integer: the virtual time itself has fractions (jitter).
    const now = () => Math.floor(this.clock.now());
    // LocalNode only writes its state into the NodeStates part of a Registry.
    const local = new LocalNode(registry as Registry, { id, name, address: `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`, incarnation: 0 }, now);
    const eps = this.o.endpoints?.(index);
    if (eps) local.replaceSource('podman', eps);
    const sync = (this.o.sync ?? deltaSync)({ identity, states: registry, now, counters: this.counters, shared: this.shared });
    const transport = this.net.transport(addr);
    const membership = new Membership({
      id, identity, name, incarnation: 0, config: this.config, clock: this.clock, transport,
      wire: new Wire(this.o.key ? new Keyring([this.o.key]) : null, this.clock), delegate: sync.delegate, random: this.random,
    });
    return { index, id, name, identity, addr, registry, views, local, sync, membership, transport, crashed: false };
  }

  /**
   * Starts every node: converged (everyone knows everyone) or joining through node 0. The
   * converged start's member list and node states are built once and shared by all nodes (each
   * makes a member its own when it first looks at it, and holds the states until it merges
   * newer ones); a node's only O(N) part is shuffling its probe order.
   */
  async start(): Promise<void> {
    const converged = this.o.converged !== false;
    const infos = new Map(this.nodes.map((n) => [n.id, { id: n.id, name: n.name, addr: n.addr, inc: 0, state: 'alive' as const, proof: n.membership.self.proof! }]));
    // Every node's state, held by every node: one map all StateTables share, or applied to each Registry.
    const states = new Map<string, NodeState>();
    if (converged) {
      for (const n of this.nodes) {
        n.sync.seed();
        states.set(n.id, n.local.state);
      }
    }
    for (const n of this.nodes) {
      n.membership.start();
      if (converged) {
        n.membership.learn(infos);
        if (n.registry instanceof StateTable) n.registry.adopt(states);
        else for (const s of states.values()) n.registry.apply(s);
      }
      n.sync.attach(n.membership);
    }
    if (this.o.converged === false) {
      for (const n of this.nodes.slice(1)) {
        void n.membership.join([this.nodes[0]!.addr]);
        await this.run(10);
      }
    }
  }

  /**
   * Advances virtual time by `ms`, letting async code (push-pull) run between events. `stop` is
   * checked at most once per virtual millisecond (it may look at every node: once per event
   * would make a large run quadratic).
   */
  async run(ms: number, stop?: () => boolean): Promise<boolean> {
    const until = this.clock.now() + ms;
    let checked = -Infinity;
    const done = (): boolean => {
      if (!stop || this.clock.now() - checked < 1) return false;
      checked = this.clock.now();
      return stop();
    };
    for (;;) {
      const early = this.clock.runUntil(until, () => this.net.needsFlush || done());
      if (this.net.needsFlush) {
        this.net.needsFlush = false;
        await new Promise((r) => setImmediate(r));
        if (done()) return true;
      } else if (early) return true;
      if (!early && this.clock.now() >= until) return stop?.() ?? false;
    }
  }

  live(): SimNode[] {
    return this.nodes.filter((n) => !n.crashed);
  }

  crash(n: SimNode): void {
    n.crashed = true;
    n.membership.stop();
    this.net.crash(n.addr);
  }

  /** Registers an endpoint on a node (what the API or Podman would do). */
  register(n: SimNode, service: string, address: string): void {
    const ep: Endpoint = {
      id: `${service}-${n.index}`, namespace: 'default', service, hostname: `${service}-${n.index}`, addresses: [address], explicit: true,
      ports: { http: { port: 80, protocol: 'tcp' } }, weight: 10, health: 'none', healthy: true, source: 'api', lastSeen: this.clock.now(),
    };
    n.local.upsert(ep);
  }

  /** Live nodes whose registry holds node `id` at `version` or later. */
  holders(id: string, version: number): number {
    return this.live().filter((n) => (n.registry.node(id)?.version ?? -1) >= version).length;
  }

  /**
   * True when every live node holds the same registry, containing exactly the live nodes at their
   * owners' current versions. O(N) map look-ups per node, no strings or sorting: the partition
   * test asks it once per simulated second.
   */
  converged(): boolean {
    const live = this.live();
    return live.every((n) => {
      let held = 0;
      for (const _ of n.registry.nodes()) held++;
      return held === live.length && live.every((m) => n.registry.node(m.id)?.version === m.local.state.version);
    });
  }

  bytesSent(): number {
    return this.nodes.reduce((s, n) => s + n.transport.bytesSent, 0);
  }
}
