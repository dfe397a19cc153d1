import type { ClientPolicy } from '../dns/clients.js';
import type { ZoneState } from '../dns/zone.js';
import { parseCidr } from '../net/cidr.js';
import type { Registry } from '../registry/registry.js';
import { CLIENT_LOCAL, CLIENT_RECURSION, compileTable, type ClientClass, type ScopedRecord } from './table.js';

// Keeps the native answer table in step with the registry: every change (coalesced to one
// rebuild per event-loop turn) compiles a new table and swaps it in whole.

const LOOPBACK = ['127.0.0.0/8', '::1/128'].map((c) => parseCidr(c)!);

export class LiveTable {
  private scoped: readonly ScopedRecord[] = [];
  private pending: NodeJS.Immediate | null = null;
  private readonly unsubscribe: () => void;
  /** Tables compiled so far (tests and status). */
  builds = 0;

  constructor(
    private readonly registry: Registry,
    private readonly zone: ZoneState,
    private readonly clients: ClientPolicy,
    private readonly install: (table: Buffer) => void,
    private readonly onError: (e: Error) => void,
  ) {
    this.unsubscribe = registry.onChange(() => this.schedule());
    this.rebuild();
  }

  /** Podman container names scoped by the querier's network (the Podman watcher feeds them). */
  setScoped(records: readonly ScopedRecord[]): void {
    this.scoped = records;
    this.schedule();
  }

  /** After a reload or a change of bridge subnets: settings and client classes moved. */
  schedule(): void {
    if (this.pending) return;
    this.pending = setImmediate(() => {
      this.pending = null;
      this.rebuild();
    });
  }

  rebuild(): void {
    try {
      const clients: ClientClass[] = [
        ...LOOPBACK.map((cidr) => ({ cidr, flags: CLIENT_LOCAL })),
        ...this.clients.recursionCidrs.map((cidr) => ({ cidr, flags: CLIENT_RECURSION })),
        ...this.clients.bridgeSubnets.map((cidr) => ({ cidr, flags: CLIENT_RECURSION | CLIENT_LOCAL })),
      ];
      this.install(compileTable({ zone: this.zone, services: this.registry.services(), clients, scoped: this.scoped }));
      this.builds++;
    } catch (e) {
      this.onError(e as Error);
    }
  }

  close(): void {
    this.unsubscribe();
    if (this.pending) clearImmediate(this.pending);
    this.pending = null;
  }
}
