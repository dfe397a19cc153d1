import { createPolicy, preferLocal, type Candidate, type Policy, type PolicyName } from './policy.js';

// The endpoints one listener balances over, with their live counters. The set follows the
// registry: update() keeps the Backend object of an endpoint that stays (its counters and open
// connections go on), drops one that left from the choice at once (its open connections drain:
// they are not cut), and adds new ones. A connect failure ejects the endpoint for a while
// (passive health), so the next connections go elsewhere without waiting for health checks.

export interface BackendSpec {
  /** Stable id (`<node>/<endpoint>`). */
  id: string;
  host: string;
  port: number;
  weight: number;
  local: boolean;
}

export class Backend implements Candidate {
  active = 0;
  connections = 0;
  bytesIn = 0;
  bytesOut = 0;
  connectFailures = 0;
  ejections = 0;
  /** ms since the epoch until which it is skipped; 0 when in service. */
  ejectedUntil = 0;
  /** False once the registry no longer lists it: open connections drain, no new ones. */
  current = true;
  host: string;
  port: number;
  weight: number;
  local: boolean;

  constructor(readonly id: string, spec: BackendSpec) {
    this.host = spec.host;
    this.port = spec.port;
    this.weight = spec.weight;
    this.local = spec.local;
  }
}

export interface BackendSetOptions {
  policy: PolicyName;
  preferLocal: boolean;
  /** How long a failed endpoint is skipped; doubles on each failure in a row, up to 8×. */
  ejectMs: number;
  random?: () => number;
  now?: () => number;
}

export class BackendSet {
  private readonly byId = new Map<string, Backend>();
  private live: Backend[] = [];
  private policy: Policy;
  private readonly now: () => number;
  /** Failures in a row per backend, for the ejection back-off. */
  private readonly streak = new Map<string, number>();

  constructor(private opts: BackendSetOptions, specs: BackendSpec[] = []) {
    this.policy = createPolicy(opts.policy, opts.random);
    this.now = opts.now ?? Date.now;
    this.update(specs);
  }

  configure(opts: Pick<BackendSetOptions, 'policy' | 'preferLocal' | 'ejectMs'>): void {
    if (opts.policy !== this.opts.policy) this.policy = createPolicy(opts.policy, this.opts.random);
    this.opts = { ...this.opts, ...opts };
  }

  update(specs: BackendSpec[]): void {
    const seen = new Set<string>();
    const live: Backend[] = [];
    for (const s of specs) {
      if (seen.has(s.id)) continue;
      seen.add(s.id);
      let b = this.byId.get(s.id);
      if (!b || b.host !== s.host || b.port !== s.port) {
        if (b) this.retire(b);
        b = new Backend(s.id, s);
        this.byId.set(s.id, b);
      }
      b.weight = s.weight;
      b.local = s.local;
      b.current = true;
      live.push(b);
    }
    for (const [id, b] of this.byId) {
      if (!seen.has(id)) {
        this.retire(b);
        this.byId.delete(id);
        this.streak.delete(id);
      }
    }
    this.live = live;
  }

  /** Backends that left but still have open connections (reported until they drain). */
  private retired: Backend[] = [];

  private retire(b: Backend): void {
    b.current = false;
    this.retired = this.retired.filter((r) => r.active > 0);
    if (b.active > 0) this.retired.push(b);
  }

  get size(): number {
    return this.live.length;
  }

  backends(): readonly Backend[] {
    return this.live;
  }

  /** Everything with counters worth reporting: current ones and draining ones. */
  reportable(): Backend[] {
    this.retired = this.retired.filter((b) => b.active > 0);
    return [...this.live, ...this.retired];
  }

  /**
   * The backend for a new connection, skipping `tried` and ejected ones. When every untried one is
   * ejected it still returns one of them: trying beats refusing the client outright.
   */
  pick(tried?: ReadonlySet<Backend>): Backend | null {
    const live = this.live;
    if (live.length === 0) return null;
    if (live.length === 1 && live[0]!.ejectedUntil === 0 && tried === undefined) return live[0]!;
    const now = this.now();
    // Fast path: nothing ejected, nothing tried (almost every connection).
    let clean = tried === undefined || tried.size === 0;
    if (clean) for (let i = 0; i < live.length; i++) if (live[i]!.ejectedUntil > now) { clean = false; break; }
    if (clean) return this.policy.pick(preferLocal(live, this.opts.preferLocal));
    const untried = tried ? live.filter((b) => !tried.has(b)) : live;
    if (untried.length === 0) return null;
    const ok = untried.filter((b) => b.ejectedUntil <= now);
    return this.policy.pick(preferLocal(ok.length > 0 ? ok : untried, this.opts.preferLocal));
  }

  /** A connect to `b` failed: skip it for a while. Returns true when this ejected it. */
  failed(b: Backend): boolean {
    b.connectFailures++;
    const n = (this.streak.get(b.id) ?? 0) + 1;
    this.streak.set(b.id, n);
    const now = this.now();
    const wasIn = b.ejectedUntil <= now;
    b.ejectedUntil = now + this.opts.ejectMs * Math.min(8, 2 ** (n - 1));
    if (wasIn) b.ejections++;
    return wasIn;
  }

  /** A connect to `b` succeeded: back in service, failures forgotten. */
  succeeded(b: Backend): void {
    if (b.ejectedUntil !== 0) b.ejectedUntil = 0;
    if (this.streak.size > 0) this.streak.delete(b.id);
  }
}
