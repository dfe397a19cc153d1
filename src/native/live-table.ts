import type { ClientPolicy } from '../dns/clients.js';
import type { ZoneState } from '../dns/zone.js';
import { parseCidr } from '../net/cidr.js';
import type { Registry } from '../registry/registry.js';
import { CLIENT_HOST, CLIENT_LOCAL, CLIENT_RECURSION, TableCompiler, type ClientClass, type ContainerScopes, type TableInput } from './table.js';

// Keeps the native answer table in step with the registry: changes are coalesced, the new table
// is compiled in slices across event-loop turns (a big registry must not stall the daemon; only
// changed services are recompiled) and swapped in whole. A change during a compilation restarts
// it, reusing what was already compiled.

const LOOPBACK = ['127.0.0.0/8', '::1/128'].map((c) => parseCidr(c)!);
/** Up to this many services a change rebuilds the table at once (see changed()). */
const SYNC_SERVICES = 500;

export class LiveTable {
  private pending: NodeJS.Immediate | null = null;
  private stale = false;
  private readonly unsubscribe: () => void;
  private readonly compiler = new TableCompiler();
  /** Tables compiled so far (tests and status). */
  builds = 0;

  constructor(
    private readonly registry: Registry,
    private readonly zone: ZoneState,
    private readonly clients: ClientPolicy,
    private readonly install: (table: Buffer) => void,
    private readonly onError: (e: Error) => void,
    private readonly containers?: ContainerScopes,
  ) {
    this.unsubscribe = registry.onChange(() => this.changed());
    // The first table in slices too: until it is in, the JS path answers everything.
    this.schedule();
  }

  /**
   * A registry change. Small registries get the new table before the change's caller goes on
   * (an API write is answered natively once it is acknowledged; a change costs a few ms there);
   * big ones in slices, the native path answering from the previous table meanwhile.
   */
  private changed(): void {
    if (!this.pending && this.registry.serviceCount <= SYNC_SERVICES) this.rebuild();
    else this.schedule();
  }

  /** After a reload or a change of bridge subnets: settings and client classes moved. */
  schedule(): void {
    this.stale = true;
    if (this.pending) return;
    let steps: Generator<void, Buffer> | null = null;
    const step = (): void => {
      try {
        if (this.stale || !steps) {
          this.stale = false;
          steps = this.compiler.steps(this.input());
        }
        const r = steps.next();
        if (!r.done) {
          this.pending = setImmediate(step);
          return;
        }
        this.pending = null;
        if (this.stale) return this.schedule();
        this.install(r.value);
        this.builds++;
      } catch (e) {
        this.pending = null;
        this.onError(e as Error);
      }
    };
    this.pending = setImmediate(step);
  }

  /** Compiles and installs now, in one go. */
  rebuild(): void {
    try {
      this.install(this.compiler.compile(this.input()));
      this.builds++;
    } catch (e) {
      this.onError(e as Error);
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
