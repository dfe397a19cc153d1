import type { Logger } from 'pino';
import type { Registry } from '../registry/registry.js';
import { CompactedError, type EtcdClient, type TxnOp, type Watch } from './client.js';
import { diffKeys, isSkydnsKeyOf, keysOf, NodeAssembler, nodeKey, skydnsBase, skydnsKeysOf } from './keys.js';

// etcd as the registry's transport (docs/etcd.md), in place of gossip: this node's state is
// written as keys on one lease (only the keys that changed, one transaction per change), every
// node's keys are listed once and then watched from the listed revision, and the states they make
// feed the same registry core as gossip does. When etcd cannot be reached the registry keeps what
// it has (`stale`), and the session starts over with backoff: a new lease if the old one is gone,
// this node's keys written again, the watch resumed from the last revision seen — or everything
// listed again when etcd compacted that revision away. Nothing is missed silently.

export interface EtcdBackendOptions {
  client: EtcdClient;
  /** Ends with "/". */
  prefix: string;
  leaseTtlSeconds: number;
  registry: Registry;
  log: Logger;
  /** Also write SkyDNS records (CoreDNS's etcd plugin) under this prefix, for this zone. */
  skydns?: { prefix: string; zone: string };
  /** A node state with more endpoints is not applied (as gossip refuses it); default 10 000. */
  maxEndpoints?: number;
  /** An error at the first contact that ends the start instead (the caller reports it; no retry, no log). */
  fatalAtStart?: (e: Error) => boolean;
  /** Retry delays: the first and the largest (ms). */
  backoffMs?: [number, number];
}

export type EtcdState = 'connecting' | 'synced' | 'unavailable';

export class EtcdBackend {
  state: EtcdState = 'connecting';
  /** Why the last session ended, while unavailable. */
  lastError: string | null = null;
  readonly counters = { sessions: 0, relists: 0, writes: 0, failures: 0, watchEvents: 0, overLimit: 0 };
  /** Nodes whose state is over the endpoint limit now (warned once each). */
  private readonly over = new Set<string>();
  /** Since when (ms since the epoch) the node has had no working session, or null while synced. */
  unavailableSince: number | null = null;
  private readonly assembler: NodeAssembler;
  private lease: string | null = null;
  private written = new Map<string, string>();
  private revision = 0;
  private watch: Watch | null = null;
  private keepAliveTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private writing: Promise<void> | null = null;
  private writeAgain = false;
  private failures = 0;
  private readonly unsubscribe: () => void;
  private firstSync: () => void = () => undefined;
  private firstTry: (e: Error | null) => void = () => undefined;
  /** Resolves after the first listing has been fed to the registry. */
  readonly synced = new Promise<void>((r) => (this.firstSync = r));

  constructor(private readonly o: EtcdBackendOptions) {
    this.assembler = new NodeAssembler(o.prefix);
    this.unsubscribe = o.registry.onChange((c) => {
      if (c.nodes.includes(o.registry.localNode)) this.write();
    });
  }

  /** Keys under the prefix that were not well-formed records (skipped). */
  get skipped(): number {
    return this.assembler.skipped;
  }

  /** Starts following etcd; resolves with how the first session went (null: synced), while retries go on. */
  start(): Promise<Error | null> {
    const first = new Promise<Error | null>((r) => (this.firstTry = r));
    this.unavailableSince = Date.now();
    void this.session();
    return first;
  }

  /** The last revision fed to the registry, and this node's lease (null before the first grant). */
  get position(): { revision: number; lease: string | null } {
    return { revision: this.revision, lease: this.lease };
  }

  /**
   * Stops following etcd. `leave`: revoke the lease, so this node's keys vanish at once (a real
   * stop); otherwise they stay until the lease expires (a restart comes back before that).
   */
  async stop(leave: boolean): Promise<void> {
    this.stopped = true;
    this.unsubscribe();
    this.watch?.close();
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.writing?.catch(() => undefined);
    if (leave && this.lease) await this.o.client.revoke(this.lease).catch((e: Error) => this.o.log.warn(`etcd: could not revoke lease ${this.lease}: ${e.message}`));
  }

  private async session(): Promise<void> {
    if (this.stopped) return;
    this.counters.sessions++;
    try {
      if (!this.lease || !(await this.o.client.keepAlive(this.lease))) {
        this.lease = await this.o.client.grant(this.o.leaseTtlSeconds);
        this.written = await this.ownKeys();
      }
      await this.writeNow();
      if (this.revision === 0) await this.list();
      this.follow();
      this.keepAlive();
      if (this.state !== 'synced') this.o.log.info({ endpoint: this.o.client.endpoint }, `etcd: synced with ${this.o.client.endpoint} at revision ${this.revision}`);
      this.state = 'synced';
      this.lastError = null;
      this.unavailableSince = null;
      this.failures = 0;
      this.firstSync();
      this.firstTry(null);
      // Changes made while the session was being set up (they were not written then).
      this.write();
    } catch (e) {
      this.fail(e as Error);
    }
  }

  /**
   * The keys this node has under the prefix now (left by an earlier run or an expired lease), as
   * written with no value: the next write puts every current key on the new lease (a key left on
   * the old one would vanish when that expires) and deletes the rest.
   */
  private async ownKeys(): Promise<Map<string, string>> {
    const id = this.o.registry.localNode;
    const mine = new Map<string, string>();
    const mineNode = nodeKey(this.o.prefix, id);
    for (const kv of (await this.o.client.range(mineNode)).kvs) if (kv.key === mineNode) mine.set(kv.key, '');
    for (const kv of (await this.o.client.range(`${this.o.prefix}endpoints/${encodeURIComponent(id)}/`)).kvs) mine.set(kv.key, '');
    if (this.o.skydns) for (const kv of (await this.o.client.range(skydnsBase(this.o.skydns.prefix, this.o.skydns.zone))).kvs) if (isSkydnsKeyOf(id, kv.key)) mine.set(kv.key, '');
    return mine;
  }

  /** Every key under the prefix, fed to the registry as node states; nodes no longer there leave it. */
  private async list(): Promise<void> {
    const { kvs, revision } = await this.o.client.range(this.o.prefix);
    this.counters.relists++;
    this.assembler.reset();
    this.assembler.apply(kvs.map((kv) => ({ type: 'put' as const, kv })));
    // A listing is every node as of its revision: a node whose last change was a delete has only
    // older keys left, and its state must still replace the one held (a higher version wins).
    this.assembler.settle(revision);
    const present = new Set(this.assembler.ids());
    for (const n of [...this.o.registry.nodes()]) if (n.id !== this.o.registry.localNode && !present.has(n.id)) this.o.registry.removeNode(n.id);
    this.publish(present);
    this.revision = revision;
  }

  private publish(ids: Iterable<string>): void {
    for (const id of ids) {
      if (id === this.o.registry.localNode) continue;
      const s = this.assembler.state(id);
      const max = this.o.maxEndpoints ?? 10_000;
      if (s && s.endpoints.length > max) {
        this.counters.overLimit++;
        if (!this.over.has(id)) this.o.log.warn({ node: id }, `etcd: node ${id} has ${s.endpoints.length} endpoints, over the limit of ${max} (--max-endpoints-per-node): its state is not applied`);
        this.over.add(id);
        continue;
      }
      this.over.delete(id);
      if (s) this.o.registry.apply(s);
      else this.o.registry.removeNode(id);
    }
  }

  private follow(): void {
    this.watch?.close();
    // From the last revision seen, not the one after: its events come again (applying them twice
    // changes nothing), and a compaction up to the next one is reported instead of passing
    // unnoticed — etcd drops the deletes of the compacted revision itself from a watch's replay.
    this.watch = this.o.client.watch(
      this.o.prefix,
      this.revision,
      (events, revision) => {
        this.counters.watchEvents += events.length;
        this.publish(this.assembler.apply(events));
        this.revision = Math.max(this.revision, revision);
      },
      (e) => {
        this.watch = null;
        if (this.stopped) return;
        if (e instanceof CompactedError) {
          this.o.log.warn(`etcd: watch revision ${this.revision} was compacted (oldest kept ${e.compactRevision}); listing everything again`);
          this.revision = 0;
        }
        this.fail(e);
      },
    );
  }

  private keepAlive(): void {
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    const every = Math.max(500, (this.o.leaseTtlSeconds * 1000) / 3);
    this.keepAliveTimer = setInterval(() => {
      const lease = this.lease;
      if (!lease) return;
      this.o.client.keepAlive(lease).then(
        (alive) => {
          if (alive || this.stopped) return;
          // Expired while we could not renew it (a long pause, etcd away): its keys are gone.
          this.lease = null;
          this.fail(new Error(`lease ${lease} expired`));
        },
        (e: Error) => this.fail(e),
      );
    }, every);
    this.keepAliveTimer.unref();
  }

  /** Writes this node's changed keys, one transaction at a time; changes during one are coalesced. */
  private write(): void {
    if (this.state !== 'synced' || this.stopped) return;
    if (this.writing) return void (this.writeAgain = true);
    this.writing = this.writeNow()
      .catch((e: Error) => this.fail(e))
      .finally(() => {
        this.writing = null;
        if (this.writeAgain) {
          this.writeAgain = false;
          this.write();
        }
      });
  }

  private async writeNow(): Promise<void> {
    const local = this.o.registry.node(this.o.registry.localNode);
    if (!local || !this.lease) return;
    const next = keysOf(this.o.prefix, local);
    if (this.o.skydns) for (const [k, v] of skydnsKeysOf(this.o.skydns.prefix, this.o.skydns.zone, local)) next.set(k, v);
    const ops: TxnOp[] = diffKeys(this.written, next, this.lease);
    if (ops.length === 0) return;
    await this.o.client.txn(ops);
    this.counters.writes++;
    this.written = next;
  }

  private fail(e: Error): void {
    if (this.stopped || this.retryTimer) return;
    if (this.state === 'connecting' && this.o.fatalAtStart?.(e)) {
      this.lastError = e.message;
      this.firstTry(e);
      return;
    }
    this.counters.failures++;
    this.watch?.close();
    this.watch = null;
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = null;
    if (this.state !== 'unavailable') this.o.log.warn({ endpoint: this.o.client.endpoint, err: e.message }, `etcd: ${e.message}; serving the last known state and retrying`);
    this.state = 'unavailable';
    this.lastError = e.message;
    this.unavailableSince ??= Date.now();
    this.firstTry(e);
    const [first, max] = this.o.backoffMs ?? [250, 10_000];
    const delay = Math.min(max, first * 2 ** Math.min(this.failures++, 10));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.session();
    }, delay);
    this.retryTimer.unref();
  }
}
