import { fdBuffer, type Addon } from '../native/index.js';
import type { BackendSet } from './backends.js';
import { backendLines, copyBackendStats, NativeRelayProxy, policyNumber, relayMs as ms, U32, type RelayPolicy } from './native-relay.js';
import type { ConnectionLimit, TcpEvents, TcpProxyOptions } from './tcp-proxy.js';

// The TCP proxy run by the addon's relay thread (native/src/relay.rs): the same contract as
// TcpProxy (backpressure, half-close, idle timeout, connection limit, retry on the next endpoint
// and passive ejection), with no JS on the per-connection or per-byte path. JS keeps the
// registry's backend list, the policy name and the options and pushes them down; the relay
// counts per backend in atomics that refresh() copies into the same Backend objects the JS proxy
// would update, so status and metrics read them the same way. No PROXY protocol here: the
// manager keeps the JS proxy for that (src/lb/relay-choice.ts).

export type { RelayPolicy };

export type RelayAddon = Pick<
  Addon,
  | 'relayListen' | 'relayConfigure' | 'relaySetBackends' | 'relaySetMax' | 'relaySetThreads' | 'relayClose' | 'relayForget' | 'relayStats' | 'relayUdpListen' | 'relayUdpConfigure'
  | 'relayAdopt' | 'relayUdpAdopt' | 'relayFds'
>;

export class NativeTcpProxy extends NativeRelayProxy<TcpProxyOptions> {
  private refused = 0;
  private active = 0;

  // New opts (idle and connect timeouts) take effect for new and open connections alike.
  constructor(
    private readonly addon: RelayAddon,
    backends: BackendSet,
    opts: TcpProxyOptions,
    policy: RelayPolicy,
    private readonly limit: ConnectionLimit,
    private readonly events: TcpEvents = {},
  ) {
    super(addon, backends, opts, policy);
  }

  private args(): [number, boolean, number, number, number, number] {
    const o = this.opts;
    return [policyNumber(this.policy.policy), this.policy.preferLocal, ms(o.idleTimeoutMs), ms(o.connectTimeoutMs), ms(this.policy.ejectMs), Math.max(1, o.attempts)];
  }

  protected push(): void {
    if (this.id === 0 || this.closed) return;
    this.addon.relayConfigure(this.id, ...this.args());
    this.addon.relaySetMax(Math.min(U32, this.limit.max));
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    this.addon.relaySetMax(Math.min(U32, this.limit.max));
    return this.serve(host, () => this.addon.relayListen(host, port, 4096, ...this.args()));
  }

  /** Serves listening sockets an earlier process kept (systemd's store); they are closed when they do not fit. */
  adopt(fds: number[], host: string, port: number): Promise<{ host: string; port: number }> {
    this.addon.relaySetMax(Math.min(U32, this.limit.max));
    return this.serve(host, () => this.addon.relayAdopt(fdBuffer(fds), host, port, ...this.args(), backendLines(this.backends)), fds);
  }

  /** Copies the relay's counters into the Backend objects and the shared limit. */
  refresh(): void {
    if (this.id === 0) return;
    const s = this.addon.relayStats(this.id);
    if (!s) return;
    this.active = s[0] as number;
    const refused = s[1] as number;
    this.limit.refused += refused - this.refused;
    this.refused = refused;
    this.limit.active = s[2] as number;
    copyBackendStats(s, this.backends, this.ejections, this.events.ejected);
  }

  get connections(): number {
    this.refresh();
    return this.active;
  }

  /**
   * Stops accepting; open connections drain unless `force`. `restart`: the sockets are closed but
   * not shut down, so systemd's copies keep queueing connections for the next process.
   */
  close(force = false, restart = false): Promise<void> {
    if (this.id !== 0 && !this.closed) {
      this.closed = true;
      this.addon.relayClose(this.id, force, restart);
    }
    this.stopRefresh();
    return Promise.resolve();
  }

  /** Resolves once no client connection is open (after close(): the listener has drained). */
  drained(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.connections > 0) return void setTimeout(check, 200).unref();
        if (this.closed) this.addon.relayForget(this.id);
        resolve();
      };
      check();
    });
  }
}
