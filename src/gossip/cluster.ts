import type { Logger } from 'pino';
import { DEFAULT_MAX_ENDPOINTS, RegistrySync } from '../sync/registry-sync.js';
import type { Registry } from '../registry/registry.js';
import { SnapshotFile, type Snapshot } from '../state/snapshot.js';
import { realClock } from './clock.js';
import type { MemberState, WireError } from './codec.js';
import { LAN, type GossipConfig } from './config.js';
import { Keyring, Wire } from './crypto.js';
import type { NodeIdentity } from './identity.js';
import { Membership, type Member } from './membership.js';
import { DEFAULT_LIMITS, formatAddr, frameLimit, NetTransport } from './net-transport.js';
import { encodeToken } from './token.js';
import type { FailureLog } from '../log-once.js';

// The cluster as the daemon runs it: sockets, membership, registry sync, the state file, joining
// with retry, and leaving. The daemon creates one, starts it before READY, stops it last.

export interface ClusterOptions {
  /** This node's signing key; the node id is its id. */
  identity: NodeIdentity;
  name: string;
  /** Where to bind UDP+TCP. */
  listenHost: string;
  listenPort: number;
  /** Host other members reach this node at. */
  advertiseHost: string;
  keyring: Keyring | null;
  /** host:port of members to join (flags, token); empty: the members of the state file. */
  seeds: string[];
  registry: Registry;
  log: Logger;
  stateDir: string;
  config?: Partial<GossipConfig>;
  /** --max-endpoints-per-node (default 10,000): larger node states are refused. */
  maxEndpoints?: number;
  /** --gossip-max-connections (default 64): incoming TCP streams open at once. */
  maxConnections?: number;
  /** --dead-grace (ms): a node found dead keeps its endpoints this long in case it comes back. */
  deadGraceMs?: number;
  /** A remote state was merged, `lagMs` after its owner made it. */
  onMerged?(lagMs: number): void;
  /** Failed push-pulls and state fetches, logged once per state change and counted. */
  failures?: FailureLog;
}

export class Cluster {
  readonly membership: Membership;
  readonly sync: RegistrySync;
  private readonly snapshot: SnapshotFile;
  /** Nodes loaded from the state file and not yet heard of from the cluster. */
  private readonly staleNodes = new Set<string>();
  private joinTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly rejectLogged = new Map<string, number>();
  private readonly id: string;

  private constructor(
    private readonly o: ClusterOptions,
    readonly transport: NetTransport,
    private readonly cfg: GossipConfig,
  ) {
    this.id = o.identity.id;
    this.snapshot = new SnapshotFile(o.stateDir);
    this.sync = new RegistrySync(o.registry, Date.now, {
      merged: (s, lag) => {
        this.staleNodes.delete(s.id);
        o.onMerged?.(lag);
      },
      removed: (id, why) => o.log.info({ node: id, why }, `node ${id} ${why === 'left' ? 'left the cluster' : 'is dead'}: its endpoints are withdrawn`),
      invalid: (what) => o.log.warn(`ignored ${what} from the cluster`),
      rejected: (err) => this.membership.reject(err, 'the cluster'),
    }, { identity: o.identity, maxEndpoints: o.maxEndpoints ?? DEFAULT_MAX_ENDPOINTS, failures: o.failures, deadGraceMs: o.deadGraceMs });
    this.membership = new Membership({
      id: o.identity.id,
      identity: o.identity,
      name: o.name,
      incarnation: Date.now(),
      config: cfg,
      clock: realClock,
      transport,
      wire: new Wire(o.keyring, realClock),
      delegate: {
        notifyUpdate: (d, from) => this.sync.notifyUpdate(d, from),
        updateId: (d) => this.sync.updateId(d),
        pushPullRequest: () => this.sync.pushPullRequest(),
        pushPullAnswer: (r) => this.sync.pushPullAnswer(r),
        pushPullFinish: (a, join) => this.sync.pushPullFinish(a, join),
        pushPullLast: (d) => this.sync.pushPullLast(d),
        pushPullDone: (r) => this.sync.pushPullDone(r),
        handleRequest: (d) => this.sync.handleRequest(d),
        notifyMember: (m, prev) => this.memberChanged(m, prev),
      },
      onReject: (err, from) => this.logReject(err, from),
      failures: o.failures,
    });
    transport.onReject = (err, from) => this.membership.reject(err, from);
  }

  /**
   * Logs each kind of rejection once a minute per sender (a wrong key or a flood would fill the
   * log otherwise); a peer speaking another wire version is told about once, it will not change.
   */
  private logReject(err: WireError, from: string): void {
    const key = `${err.reason}|${from.replace(/:\d+$/, '')}`;
    const last = this.rejectLogged.get(key);
    if (last !== undefined && (err.reason === 'version' || Date.now() - last < 60_000)) return;
    if (this.rejectLogged.size >= 10_000) this.rejectLogged.clear();
    this.rejectLogged.set(key, Date.now());
    this.o.log.warn({ from, reason: err.reason }, `rejected gossip from ${from}: ${err.message}`);
  }

  static async start(o: ClusterOptions): Promise<Cluster> {
    const limits = { maxFrame: frameLimit(o.maxEndpoints ?? DEFAULT_MAX_ENDPOINTS), maxConnections: o.maxConnections ?? DEFAULT_LIMITS.maxConnections };
    const transport = await NetTransport.listen(o.listenHost, o.listenPort, o.advertiseHost, limits);
    const c = new Cluster(o, transport, { ...LAN, ...o.config });
    c.loadSnapshot();
    c.membership.start();
    c.sync.attach(c.membership);
    o.registry.onChange((ch) => {
      if (ch.nodes.some((id) => id !== o.identity.id)) c.snapshot.schedule(() => c.snapshotData(), (e) => o.log.warn(`could not save ${c.snapshot.path}: ${e.message}`));
    });
    o.log.info({ address: transport.address, encrypted: o.keyring !== null }, `gossip on ${formatAddr(o.listenHost, transport.boundPort)} (udp+tcp), reachable as ${transport.address}${o.keyring ? ', encrypted' : ', NOT encrypted'}`);
    const seeds = o.seeds.length ? o.seeds : c.rememberedSeeds;
    if (seeds.length) c.joinWithRetry(seeds, !o.seeds.length);
    return c;
  }

  /** True until this node has exchanged state with the cluster once (docs/architecture.md#state-snapshot). */
  get stale(): boolean {
    return this.staleNodes.size > 0;
  }

  private rememberedSeeds: string[] = [];

  private loadSnapshot(): void {
    const r = this.snapshot.load();
    if (r.kind === 'corrupt') {
      this.o.log.warn(`${this.snapshot.path} could not be read (${r.reason})${r.movedTo ? `; moved to ${r.movedTo}` : ''}; starting with an empty registry`);
      return;
    }
    if (r.kind !== 'ok') return;
    // One change for the whole file: each service is rebuilt once, not once per node.
    for (const id of this.o.registry.applyAll(r.value.nodes.filter((s) => s.id !== this.id))) this.staleNodes.add(id);
    this.rememberedSeeds = r.value.members.filter((m) => m.id !== this.id).map((m) => m.addr);
    this.o.log.info({ nodes: this.staleNodes.size }, `loaded ${this.staleNodes.size} node states from ${this.snapshot.path}; served as stale until the cluster confirms them`);
  }

  private snapshotData(): Snapshot {
    const nodes = [...this.o.registry.nodes()].filter((s) => s.id !== this.id);
    const members = this.membership
      .all()
      .filter((m) => m.id !== this.id && (m.state === 'alive' || m.state === 'suspect'))
      .map((m) => ({ id: m.id, name: m.name, addr: m.addr }));
    return { nodes, members };
  }

  /** Joins `seeds` now; resolves with how many answered. */
  async join(seeds: string[]): Promise<{ joined: number; errors: string[] }> {
    const r = await this.membership.join(seeds);
    if (r.joined > 0) this.resynced();
    return r;
  }

  /** Retries with backoff until one seed answers (docs/architecture.md#joining). */
  private joinWithRetry(seeds: string[], remembered: boolean, delay = this.cfg.joinBackoff): void {
    void this.join(seeds).then(({ joined, errors }) => {
      if (this.stopped) return;
      if (joined > 0) {
        this.o.log.info({ seeds, joined }, `joined the cluster through ${joined} of ${seeds.length} ${remembered ? 'remembered members' : 'seeds'}; ${this.membership.size} members`);
        return;
      }
      this.o.log.warn({ seeds, errors }, `could not join through ${seeds.join(', ')} (${errors.join('; ')}); retrying in ${Math.round(delay / 1000)} s`);
      this.joinTimer = setTimeout(() => this.joinWithRetry(seeds, remembered, Math.min(delay * 2, this.cfg.joinBackoffMax)), delay);
      this.joinTimer.unref();
    });
  }

  /** After the first exchange with the cluster, remembered nodes it does not know are gone. */
  private resynced(): void {
    for (const id of this.staleNodes) {
      const st = this.membership.member(id)?.state;
      if (st !== 'alive' && st !== 'suspect') {
        this.o.registry.removeNode(id);
        this.o.log.info({ node: id }, `node ${id} from the state file is not in the cluster any more: dropped`);
      }
    }
    this.staleNodes.clear();
  }

  private memberChanged(m: Member, prev: MemberState | undefined): void {
    this.sync.notifyMember(m, prev);
    if (m.id === this.id) return;
    if (prev === undefined && m.state === 'alive') this.o.log.info({ node: m.id, name: m.name, addr: m.addr }, `member ${m.name} (${m.addr}) joined`);
    else if (m.state !== prev) this.o.log.info({ node: m.id, name: m.name, addr: m.addr, state: m.state, prev }, `member ${m.name} (${m.addr}) is ${m.state}`);
    if (prev !== m.state) this.snapshot.schedule(() => this.snapshotData(), () => undefined);
  }

  /** Whether node `id`'s state came from the state file and the cluster has not confirmed it yet. */
  isStale(id: string): boolean {
    return this.staleNodes.has(id);
  }

  /** A join token: this node and the live members as seeds, and the primary key. */
  joinToken(): string {
    const seeds = [this.transport.address, ...this.membership.all().filter((m) => m.id !== this.id && m.state === 'alive').map((m) => m.addr)];
    return encodeToken({ seeds: seeds.slice(0, 5), key: this.o.keyring?.primary ?? null });
  }

  members(state: MemberState): number {
    return this.membership.all().filter((m) => m.state === state).length;
  }

  /** Graceful leave (SIGTERM), then closes the sockets. */
  async stop(leave = true): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.joinTimer) clearTimeout(this.joinTimer);
    if (leave && this.membership.size > 1) {
      await this.membership.leave(1000);
      this.o.log.info('left the cluster');
    }
    this.membership.stop();
    this.snapshot.flush(() => this.snapshotData(), () => undefined);
    await this.transport.close();
  }
}
