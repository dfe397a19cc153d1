import { fdsOf, type Addon } from '../native/index.js';
import { closeFds } from '../net/sockets.js';
import type { Backend, BackendSet } from './backends.js';
import type { PolicyName } from './policy.js';

// What the TCP and UDP faces of the addon's relay share (native-tcp-proxy.ts,
// native-udp-proxy.ts): the policy as a number, the backend list as the text the relay parses,
// and the relay's per-backend counters copied into the Backend objects status and metrics read.

export interface RelayPolicy {
  policy: PolicyName;
  preferLocal: boolean;
  ejectMs: number;
}

const POLICY: Record<PolicyName, number> = { 'round-robin': 0, 'least-connections': 1, 'power-of-two': 2 };
export const U32 = 0xffff_ffff;

export const policyNumber = (p: PolicyName): number => POLICY[p] ?? 0;

/** A duration in whole ms the relay accepts (1 ms to 2³²−1). */
export const relayMs = (n: number): number => Math.max(1, Math.min(U32, Math.round(n)));

/** relaySetBackends' argument: one `id\thost\tport\tweight\tlocal` line per current backend. */
export function backendLines(set: BackendSet): string {
  return set.backends().map((b) => `${b.id}\t${b.host}\t${b.port}\t${b.weight}\t${b.local ? 1 : 0}\n`).join('');
}

/**
 * Copies relayStats' rows (from index 3, eight per backend) into `set`'s Backend objects; calls
 * `ejected` for each backend whose ejection count grew since the last copy (kept in `seen`).
 */
export function copyBackendStats(s: (number | string)[], set: BackendSet, seen: Map<string, number>, ejected?: (b: Backend) => void): void {
  const byId = new Map<string, Backend>();
  for (const b of set.reportable()) byId.set(b.id, b);
  for (let i = 3; i + 7 < s.length; i += 8) {
    const b = byId.get(s[i] as string);
    if (!b) continue;
    b.connections = s[i + 1] as number;
    b.active = s[i + 2] as number;
    b.bytesIn = s[i + 3] as number;
    b.bytesOut = s[i + 4] as number;
    b.connectFailures = s[i + 5] as number;
    b.ejectedUntil = s[i + 7] as number;
    const ej = s[i + 6] as number;
    if (ej > (seen.get(b.id) ?? 0)) ejected?.(b);
    seen.set(b.id, ej);
    b.ejections = ej;
  }
}

/**
 * What both native proxies do: keep their options and policy and push them down to the relay
 * whenever either changes (for open connections and sessions too; `push` is the subclass's, a
 * no-op while it has no listener), open or adopt their listener, hand the relay the backend list,
 * and copy its counters every second (`refresh`, the subclass's).
 */
export abstract class NativeRelayProxy<O> {
  readonly native = true;
  protected id = 0;
  protected closed = false;
  /** Ejections per backend as last copied (copyBackendStats logs the new ones). */
  protected readonly ejections = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private _opts: O;

  constructor(
    private readonly relay: Pick<Addon, 'relaySetBackends' | 'relayFds'>,
    public backends: BackendSet,
    opts: O,
    protected policy: RelayPolicy,
  ) {
    this._opts = opts;
  }

  get opts(): O {
    return this._opts;
  }

  set opts(o: O) {
    this._opts = o;
    this.push();
  }

  configurePolicy(p: RelayPolicy): void {
    this.policy = p;
    this.push();
  }

  protected abstract push(): void;

  /** Copies the relay's counters into the Backend objects (and the subclass's own). */
  abstract refresh(): void;

  /** The registry changed this listener's endpoints: the relay gets the new list. */
  backendsChanged(): void {
    if (this.id !== 0 && !this.closed) this.relay.relaySetBackends(this.id, backendLines(this.backends));
  }

  /** The listener's sockets, to keep across restarts. */
  fds(): number[] {
    const b = this.id === 0 ? undefined : this.relay.relayFds(this.id);
    return b ? fdsOf(b) : [];
  }

  /**
   * Opens the listener with `open` (the addon's listen or adopt entry: [id, bound port]); the
   * `stored` sockets of an adoption are closed when it throws.
   */
  protected serve(host: string, open: () => [number, number], stored: number[] = []): Promise<{ host: string; port: number }> {
    try {
      const [id, bound] = open();
      this.id = id;
      this.backendsChanged();
      // Ejections are logged and counters shown within a second without anyone asking.
      this.timer = setInterval(() => this.refresh(), 1000);
      this.timer.unref();
      return Promise.resolve({ host, port: bound });
    } catch (e) {
      closeFds(stored);
      return Promise.reject(e);
    }
  }

  protected stopRefresh(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
