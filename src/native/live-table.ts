import type { ClientPolicy } from '../dns/clients.js';
import type { ZoneState } from '../dns/zone.js';
import { parseCidr } from '../net/cidr.js';
import type { Change, Registry } from '../registry/registry.js';
import type { PreviousTable } from './table-file.js';
import { CLIENT_HOST, CLIENT_LOCAL, CLIENT_RECURSION, finish, TableCompiler, type ClientClass, type ContainerScopes, type Steps, type TableInput } from './table.js';

// Keeps the native answer table in step with the registry. A registry change patches the table
// in place with the groups of the services it names: the cost follows the change, and a small
// change (an API write) is compiled at once, so it is answered natively once it is acknowledged.
// A whole table (at start, after a reload or a change of client classes) goes to a staged table
// in parts, which replaces the current one when complete. Compiling holds the event loop for at
// most MIN_STEPS names or BUDGET_MS, whichever is more: a patch or a table that takes longer (a
// service of hundreds of endpoints whose health changed at once) goes on in the next turns while
// the current table answers; one job runs at a time, and changes meanwhile are patched when it is
// done. So a small change (an API write to a service of up to ~30 endpoints) is still patched
// before the write is acknowledged, however loaded the machine. Nothing is compiled before
// start(): the sources loaded at start (config file, state files) come in as one whole table, not
// as patches.

const LOOPBACK = ['127.0.0.0/8', '::1/128'].map((c) => parseCidr(c)!);

/** The longest the table holds the event loop in one turn (probes and queries wait meanwhile)... */
export const BUDGET_MS = 4;
/** ...once it has compiled this many names (steps) in it. */
const MIN_STEPS = 32;
/**
 * A change during a whole table is patched into the installed one at once (compiled in one go)
 * when it touches at most this many endpoints, in at most as many services; larger ones wait.
 */
const MAX_LIVE = 32;

/** What the addon offers (src/native/index.ts Addon): whole tables, patches, staging. */
export interface TableSink {
  /** A whole table: installed, or (`staged`) kept aside for patches until commit(). */
  set(table: Buffer, staged: boolean): void;
  /** Patches the staged table, else (or with `installed`) the installed one; false when there is none. */
  patch(patch: Buffer, installed?: boolean): boolean;
  commit(): void;
  /** The groups of a whole table on their way to the staged one (the table file keeps them). */
  groups?(groups: Buffer[]): void;
  /**
   * A whole table parsed off the JS thread. `done` comes once it is parsed (`error`: it is not
   * a table); `take(true)` installs it then, `take(false)` drops it (false: it was lost).
   */
  install?(table: Buffer, done: (error: string | null, take: (install: boolean) => boolean) => void): void;
}

type Job = { whole: true; steps: Generator<Buffer | Buffer[] | undefined, void, void> } | { whole: false; steps: Steps<Buffer> };

export class LiveTable {
  private pending: NodeJS.Immediate | null = null;
  /** The patch or whole table being compiled, step by step. */
  private job: Job | null = null;
  /** Steps taken in this turn. */
  private steps = 0;
  /** Inside batch(): the services touched so far, and whether container names moved. */
  private held = 0;
  private touched = new Set<string>();
  /** The addresses whose reverse entries those changes moved. */
  private touchedAddresses = new Set<string>();
  private containersMoved = false;
  /** A whole table became due inside batch(). */
  private wholeDue = false;
  private readonly unsubscribe: () => void;
  private readonly compiler = new TableCompiler();
  /**
   * While a whole table is staged: a compiler that knows what the installed table holds, so a
   * small change is patched into it at once instead of waiting for the whole table (~1 s of
   * slices at 10,000 services); the whole table gets the change too, once it is complete.
   */
  private installed: TableCompiler | null = null;
  /** Tables and patches installed so far (tests and status). */
  builds = 0;
  /** Event-loop turns a job went on in (a change too large for one turn's budget). */
  slicedTurns = 0;
  /** False until start(): changes until then are in the first whole table. */
  private started = false;
  /** The previous run's table while it is parsed off the JS thread (adopt): changes wait for it. */
  private adopting: object | null = null;

  constructor(
    private readonly registry: Registry,
    private readonly zone: ZoneState,
    private readonly clients: ClientPolicy,
    private readonly sink: TableSink,
    private readonly onError: (e: Error) => void,
    private readonly containers?: ContainerScopes,
    /** While active, names of the zone the table does not know get SERVFAIL (a whole table is due at its end). */
    private readonly grace?: { readonly active: boolean },
    private readonly clock: () => number = performance.now.bind(performance),
  ) {
    this.unsubscribe = registry.onChange((c) => this.changed(c));
  }

  /** Builds the first whole table, in slices too: until it is in, the JS path answers everything. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.schedule();
  }

  /**
   * Instead of start(): installs a whole table whose groups were compiled before from what the
   * registry holds now (the previous run's, table-file.ts) under a header made now (settings,
   * client classes, what unknown names get), then patches the zone's own names (the serial) and
   * the container names to how they are now. No whole table is compiled.
   */
  adopt(previous: PreviousTable, done: (error: string | null) => void = () => undefined): void {
    if (this.started) return;
    const input = this.input();
    const header = this.compiler.header(input);
    header.writeUInt32BE(previous.count, header.length - 4);
    const { table, headerLength } = previous;
    // In place when the file's header is as long (the usual case): no second copy of the table.
    if (header.length === headerLength) header.copy(table, 0);
    const whole = header.length === headerLength ? table : Buffer.concat([header, table.subarray(headerLength)]);
    const installed = (): void => {
      this.compiler.know(input);
      this.sink.patch(finish(this.compiler.patchSteps(this.zone, [], [], this.containers)), true);
      this.builds++;
    };
    if (!this.sink.install) {
      this.sink.set(whole, false);
      installed();
      // (Not before: when the addon refuses either, start() compiles the table as usual.)
      this.started = true;
      return done(null);
    }
    // Parsed off the JS thread (10,000 services: ~100 ms the event loop goes on meanwhile, the
    // JS path answering): started already, so that what changes meanwhile is patched once it is in.
    const token = {};
    this.sink.install(whole, (error, take) => {
      if (this.adopting !== token) return void take(false); // a whole table was begun meanwhile, or closed
      this.adopting = null;
      if (error !== null || !take(true)) {
        this.schedule();
        return done(error ?? 'the parsed table was lost');
      }
      installed();
      done(null);
      this.run();
    });
    this.adopting = token;
    this.started = true;
  }

  private changed(c: Change): void {
    if (!this.started) return;
    for (const key of c.services) this.touched.add(key);
    for (const ip of c.addresses ?? []) this.touchedAddresses.add(ip);
    if (this.installed && !this.held && this.small(c.services)) {
      try {
        this.sink.patch(finish(this.installed.patchSteps(this.zone, c.services, c.addresses ?? [])), true);
      } catch (e) {
        this.installed = null;
        this.onError(e as Error);
      }
    }
    if (!this.held) this.run();
  }

  private small(keys: string[]): boolean {
    if (keys.length > MAX_LIVE) return false;
    let endpoints = 0;
    for (const key of keys) {
      const slash = key.indexOf('/');
      endpoints += this.registry.service(key.slice(0, slash), key.slice(slash + 1))?.endpoints.length ?? 0;
    }
    return endpoints <= MAX_LIVE;
  }

  /** Podman container names or networks changed: their group only. */
  containersChanged(): void {
    if (!this.started) return;
    this.containersMoved = true;
    if (!this.held) this.run();
  }

  /**
   * After a reload or a change of bridge subnets: settings and client classes moved, a whole
   * table is due. It is staged at once, so that the changes from now on come out together with
   * the new settings; a job under way is dropped (the whole table has every service as it is).
   */
  schedule(): void {
    if (!this.started) return;
    if (this.held) return void (this.wholeDue = true);
    this.wholeDue = false;
    this.adopting = null;
    this.touched.clear();
    this.touchedAddresses.clear();
    this.containersMoved = false;
    // The installed table is the last one committed: a whole job dropped here did not change it.
    if (!this.job?.whole && this.builds > 0) this.installed = this.compiler.fork();
    this.job = null;
    try {
      const steps = this.compiler.parts(this.input());
      this.sink.set(steps.next().value as Buffer, true);
      this.job = { whole: true, steps };
    } catch (e) {
      this.installed = null;
      return this.onError(e as Error);
    }
    this.later();
  }

  /** Works on the current job, then on a patch of what changed meanwhile, for BUDGET_MS. */
  private run(): void {
    if (this.adopting) return; // patched once the adopted table is in
    if (this.job && this.pending) return; // the job goes on in the next turn, then this change
    const deadline = this.clock() + BUDGET_MS;
    this.steps = 0;
    try {
      for (;;) {
        if (!this.job) {
          if (this.touched.size === 0 && !this.containersMoved) return;
          const [keys, addresses] = [this.touched, this.touchedAddresses];
          const containers = this.containersMoved ? this.containers : undefined;
          this.touched = new Set();
          this.touchedAddresses = new Set();
          this.containersMoved = false;
          this.job = { whole: false, steps: this.compiler.patchSteps(this.zone, keys, addresses, containers) };
        }
        if (!this.advance(this.job, deadline)) return this.later();
      }
    } catch (e) {
      this.job = null;
      this.onError(e as Error);
    }
  }

  /** Runs `job` until it ends (true) or the deadline passes (false). */
  private advance(job: Job, deadline: number): boolean {
    for (;;) {
      const r = job.steps.next();
      if (r.done) {
        this.job = null;
        if (job.whole) {
          this.sink.commit();
          this.installed = null;
          this.builds++;
        } else if (this.sink.patch(r.value as Buffer)) this.builds++;
        else this.schedule(); // no table to patch (a failed build): a whole one
        return true;
      }
      if (r.value) {
        this.sink.groups?.(r.value as Buffer[]);
        this.sink.patch(this.compiler.asPatch(this.zone, r.value as Buffer[]));
      }
      if (++this.steps > MIN_STEPS && this.clock() >= deadline) return false;
    }
  }

  private later(): void {
    if (this.pending) return;
    this.pending = setImmediate(() => {
      this.pending = null;
      if (this.job) this.slicedTurns++;
      this.run();
    });
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
        this.run();
      }
    }
  }

  /** What a whole table is compiled from, as it is now. */
  input(): TableInput {
    const clients: ClientClass[] = [
      ...LOOPBACK.map((cidr) => ({ cidr, flags: CLIENT_LOCAL })),
      ...this.clients.recursionCidrs.map((cidr) => ({ cidr, flags: CLIENT_RECURSION })),
      ...this.clients.bridgeSubnets.map((cidr) => ({ cidr, flags: CLIENT_RECURSION | CLIENT_LOCAL })),
      // While rootless users' container names are known, a query from this host's own address goes to JS, which finds who asks.
      ...this.clients.hostAddresses.map((cidr) => ({ cidr, flags: CLIENT_RECURSION | CLIENT_LOCAL | (this.containers?.ownersKnown ? 0 : CLIENT_HOST) })),
    ];
    return { zone: this.zone, services: this.registry.services(), clients, containers: this.containers, unknownServfail: this.grace?.active };
  }

  close(): void {
    this.adopting = null;
    this.unsubscribe();
    if (this.pending) clearImmediate(this.pending);
    this.pending = null;
  }
}
