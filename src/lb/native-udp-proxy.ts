import type { BackendSet } from './backends.js';
import { backendLines, copyBackendStats, NativeRelayProxy, policyNumber, relayMs, U32, type RelayPolicy } from './native-relay.js';
import { fdBuffer } from '../native/index.js';
import type { RelayAddon } from './native-tcp-proxy.js';
import type { UdpProxyOptions } from './udp-proxy.js';

// The UDP proxy run by the addon's UDP relay thread (native/src/relay_udp.rs): the same contract
// as UdpProxy (a session per client address:port with its own connected socket, the idle
// timeout, the session bound ending the least recently used session, sessions leaving an
// endpoint that left), with no JS per datagram. JS pushes the backend list and the options down
// and copies the relay's counters into the same Backend objects (refresh).

export type UdpRelayAddon = Pick<RelayAddon, 'relayUdpListen' | 'relayUdpConfigure' | 'relaySetBackends' | 'relayClose' | 'relayForget' | 'relayStats' | 'relayUdpAdopt' | 'relayFds'>;

export class NativeUdpProxy extends NativeRelayProxy<UdpProxyOptions> {
  private sessions = 0;
  private _evicted = 0;

  // New opts (the idle timeout, the session bound) take effect for open sessions too.
  constructor(
    private readonly addon: UdpRelayAddon,
    backends: BackendSet,
    opts: UdpProxyOptions,
    policy: RelayPolicy,
  ) {
    super(addon, backends, opts, policy);
  }

  private args(): [number, boolean, number, number, number] {
    const o = this.opts;
    return [policyNumber(this.policy.policy), this.policy.preferLocal, relayMs(o.idleTimeoutMs), relayMs(this.policy.ejectMs), Math.max(1, Math.min(U32, o.maxSessions))];
  }

  protected push(): void {
    if (this.id !== 0) this.addon.relayUdpConfigure(this.id, ...this.args());
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return this.serve(host, () => this.addon.relayUdpListen(host, port, ...this.args()));
  }

  /** Serves the socket an earlier process kept (systemd's store), with the datagrams queued on it; closed when it does not fit. */
  adopt(fds: number[], host: string, port: number): Promise<{ host: string; port: number }> {
    return this.serve(host, () => this.addon.relayUdpAdopt(fdBuffer(fds), host, port, ...this.args(), backendLines(this.backends)), fds);
  }

  /** Copies the relay's counters into the Backend objects. */
  refresh(): void {
    if (this.id === 0) return;
    const s = this.addon.relayStats(this.id);
    if (!s) return;
    this.sessions = s[0] as number;
    this._evicted = s[1] as number;
    copyBackendStats(s, this.backends, this.ejections);
  }

  get sessionCount(): number {
    this.refresh();
    return this.sessions;
  }

  /** Sessions ended early to make room for a new client at the session bound. */
  get evicted(): number {
    this.refresh();
    return this._evicted;
  }

  /** Ends every session and frees the port (synchronously, as UdpProxy.close). */
  close(): void {
    this.stopRefresh();
    if (this.id === 0) return;
    this.refresh();
    this.addon.relayClose(this.id, true);
    this.addon.relayForget(this.id);
    this.id = 0;
  }
}
