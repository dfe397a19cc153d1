import type { ClientPolicy } from '../dns/clients.js';
import type { ZoneState } from '../dns/zone.js';
import { parseCidr } from '../net/cidr.js';
import type { Change, Registry } from '../registry/registry.js';
import { CLIENT_HOST, CLIENT_LOCAL, CLIENT_RECURSION, TableCompiler, type ClientClass, type ContainerScopes, type TableInput } from './table.js';

// Keeps the native answer table in step with the registry. A registry change patches the table
// in place with the groups of the services it names (compiled at once: the cost follows the
// change, and an API write is answered natively once it is acknowledged). A whole table (at
// start, after a reload or a change of client classes) is compiled in slices across event-loop
// turns and sent in parts to a staged table, which replaces the current one when complete; the
// changes meanwhile patch the staged table. Nothing is compiled before start(): the sources
// loaded at start (config file, state files) come in as one whole table, not as patches.

const LOOPBACK = ['127.0.0.0/8', '::1/128'].map((c) => parseCidr(c)!);

/** What the addon offers (src/native/index.ts Addon): whole tables, patches, staging. */
export interface TableSink {
  /** A whole table: installed, or (`staged`) kept aside for patches until commit(). */
  set(table: Buffer, staged: boolean): void;
  /** Patches the staged table, else the installed one; false when there is none. */
  patch(patch: Buffer): boolean;
  commit(): void;
}

export class LiveTable {
  private pending: NodeJS.Immediate | null = null;
  /** The whole table being built, slice by slice. */
  private parts: Generator<Buffer | Buffer[], void> | null = null;
  /** Inside batch(): the services touched so far, and whether container names moved. */
  private held = 0;
  private touched = new Set<string>();
  private containersMoved = false;
  /** A whole table became due inside batch(). */
  private wholeDue = false;
  private readonly unsubscribe: () => void;
  private readonly compiler = new TableCompiler();
  /** Tables and patches installed so far (tests and status). */
  builds = 0;
  /** False until start(): changes until then are in the first whole table. */
  private started = false;

  constructor(
    private readonly registry: Registry,
    private readonly zone: ZoneState,
    private readonly clients: ClientPolicy,
    private readonly sink: TableSink,
    private readonly onError: (e: Error) => void,
    private readonly containers?: ContainerScopes,
  ) {
    this.unsubscribe = registry.onChange((c) => this.changed(c));
  }

  /** Builds the first whole table, in slices too: until it is in, the JS path answers everything. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.schedule();
  }

  private changed(c: Change): void {
    if (!this.started) return;
    for (const key of c.services) this.touched.add(key);
    if (!this.held) this.flush();
  }

  /** Podman container names or networks changed: their group only. */
  containersChanged(): void {
    if (!this.started) return;
    this.containersMoved = true;
    if (!this.held) this.flush();
  }

  /** One patch with everything touched since the last one. */
  private flush(): void {
    if (this.touched.size === 0 && !this.containersMoved) return;
    const keys = this.touched;
    const containers = this.containersMoved ? this.containers : undefined;
    this.touched = new Set();
    this.containersMoved = false;
    try {
      if (this.sink.patch(this.compiler.patch(this.zone, keys, containers))) this.builds++;
      else if (!this.parts) this.schedule(); // no table to patch (a failed build): a whole one
    } catch (e) {
      this.onError(e as Error);
    }
  }

  /**
   * After a reload or a change of bridge subnets: settings and client classes moved, a whole
   * table is due. It is staged at once, so that changes from now on patch the new table and
   * come out together with the new settings; a build under way starts over.
   */
  schedule(): void {
    if (!this.started) return;
    if (this.held) return void (this.wholeDue = true);
    this.wholeDue = false;
    // The whole table has every service and the container names as they are now.
    this.touched.clear();
    this.containersMoved = false;
    try {
      this.parts = this.compiler.parts(this.input());
      this.sink.set(this.parts.next().value as Buffer, true);
    } catch (e) {
      this.parts = null;
      return this.onError(e as Error);
    }
    if (!this.pending) this.pending = setImmediate(() => this.step());
  }

  /** One slice of the whole table being built. */
  private step(): void {
    this.pending = null;
    if (!this.parts) return;
    try {
      const r = this.parts.next();
      if (!r.done) {
        this.sink.patch(this.compiler.asPatch(this.zone, r.value as Buffer[]));
        this.pending = setImmediate(() => this.step());
        return;
      }
      this.parts = null;
      this.sink.commit();
      this.builds++;
    } catch (e) {
      this.parts = null;
      this.onError(e as Error);
    }
  }

  /**
   * Runs `update`, which may change the registry and the container names several times (one
   * Podman event does), with one table patch at its end instead of one per change.
   */
  batch(update: () => void): void {
    this.held++;
    try {
      update();
    } finally {
      if (--this.held === 0) {
        if (this.wholeDue) this.schedule();
        this.flush();
      }
    }
  }

  private input(): TableInput {
    const clients: ClientClass[] = [
      ...LOOPBACK.map((cidr) => ({ cidr, flags: CLIENT_LOCAL })),
      ...this.clients.recursionCidrs.map((cidr) => ({ cidr, flags: CLIENT_RECURSION })),
      ...this.clients.bridgeSubnets.map((cidr) => ({ cidr, flags: CLIENT_RECURSION | CLIENT_LOCAL })),
      ...this.clients.hostAddresses.map((cidr) => ({ cidr, flags: CLIENT_RECURSION | CLIENT_LOCAL | CLIENT_HOST })),
    ];
    return { zone: this.zone, services: this.registry.services(), clients, containers: this.containers };
  }

  close(): void {
    this.unsubscribe();
    if (this.pending) clearImmediate(this.pending);
    this.pending = null;
  }
}
