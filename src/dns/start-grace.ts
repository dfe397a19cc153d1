// No false NXDOMAIN at start. Until this node has seen Podman's containers and the cluster's
// states once, a name missing from the zone may be missing only for now; clients cache NXDOMAIN
// (for the SOA minimum), so in that window such a name gets SERVFAIL, which they do not cache and
// retry. Names the zone does know are answered at once. The window ends when every sync is done
// or after `--start-grace`, whichever comes first.

/** Something the daemon waits for once at start: done() turns true when it has happened. */
export interface StartSync {
  name: string;
  done(): boolean;
}

/** How often the syncs are checked while the window is open (only then). */
const POLL_MS = 20;

export class StartGrace {
  private over: boolean;
  private readonly ended: Array<() => void> = [];
  private poll: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;

  /** Open from construction (the DNS sockets may be bound before start()), unless `ms` is 0. */
  constructor(private readonly ms: number) {
    this.over = ms <= 0;
  }

  get active(): boolean {
    return !this.over;
  }

  /**
   * Starts the clock: the window closes once every sync is done, or after the grace period.
   * `report` hears how it closed, once (not at all when there was nothing to wait for).
   */
  start(syncs: StartSync[], report: (waitedMs: number, missing: string[]) => void): void {
    if (this.over) return;
    if (syncs.length === 0) return this.end();
    const t0 = performance.now();
    const finish = (): void => {
      const missing = syncs.filter((s) => !s.done()).map((s) => s.name);
      this.end();
      report(Math.round(performance.now() - t0), missing);
    };
    const check = (): void => {
      if (syncs.every((s) => s.done())) finish();
    };
    this.deadline = setTimeout(finish, this.ms);
    this.poll = setInterval(check, POLL_MS);
    this.deadline.unref();
    this.poll.unref();
    check();
  }

  /** Runs `fn` when the window closes (at once when it is closed already). */
  onEnd(fn: () => void): void {
    if (this.over) fn();
    else this.ended.push(fn);
  }

  /** Closes the window now (also on stop). */
  end(): void {
    if (this.poll) clearInterval(this.poll);
    if (this.deadline) clearTimeout(this.deadline);
    this.poll = this.deadline = null;
    if (this.over) return;
    this.over = true;
    for (const fn of this.ended.splice(0)) fn();
  }
}
