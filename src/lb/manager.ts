import type { Logger } from 'pino';
import { NO_SOCKET_STORE, socketName, type SocketStore } from '../net/sockets.js';
import type { Registry } from '../registry/registry.js';
import { BackendSet, type Backend } from './backends.js';
import { Plan, type IngressEntry, type ListenerSpec } from './plan.js';
import type { PolicyName } from './policy.js';
import { NativeTcpProxy } from './native-tcp-proxy.js';
import { NativeUdpProxy } from './native-udp-proxy.js';
import { relayAddon, udpRelayAddon } from './relay-choice.js';
import { TcpProxy, type ConnectionLimit } from './tcp-proxy.js';
import { UdpProxy } from './udp-proxy.js';

// Keeps the running listeners equal to plan(registry): on every registry change the services it
// names are planned again and their listeners diffed. A listener that stays gets its new backend list (new endpoints get
// traffic at once, removed ones none, their open connections drain); a new one gets its VIP on
// the link and a socket; one that goes stops accepting, drains, then gives its VIP back.

export interface LbOptions {
  policy: PolicyName;
  preferLocal: boolean;
  failOpen: boolean;
  idleTimeoutMs: number;
  udpIdleTimeoutMs: number;
  udpMaxSessions: number;
  maxConnections: number;
  proxyProtocol: boolean;
  ingress: IngressEntry[];
  hostAddress: string;
  ejectMs: number;
  connectTimeoutMs: number;
}

export const LB_DEFAULTS = { ejectMs: 5_000, connectTimeoutMs: 3_000, attempts: 3 };

/** Puts VIPs on and off the daemon's link; null when the daemon has no link (no CAP_NET_ADMIN). */
export interface AddressOps {
  add(ip: string): Promise<void>;
  remove(ip: string): Promise<void>;
}

export interface Listener {
  spec: ListenerSpec;
  backends: BackendSet;
  /** The addon's relay where it can serve, else the JS proxy (relay-choice.ts). */
  tcp?: TcpProxy | NativeTcpProxy;
  udp?: UdpProxy | NativeUdpProxy;
}

/**
 * Descriptors of VIP listeners kept in systemd's store at most: the unit's
 * FileDescriptorStoreMax (4096) minus room for the DNS and API sockets, which are kept after
 * the load balancer's (systemd closes what comes beyond its maximum). Listeners beyond it bind
 * fresh sockets after a restart.
 */
export const STORE_BUDGET = 3072;

/** The name a listener's socket is kept under across restarts. */
const storedName = (spec: ListenerSpec): string => socketName(spec.protocol === 'tcp' ? 'lb-tcp' : 'lb-udp', spec.host, spec.port);

/** What both kinds of proxy offer for stored sockets. */
interface StoredProxy {
  listen(host: string, port: number): Promise<unknown>;
  adopt(fds: number[], host: string, port: number): Promise<unknown>;
  fds(): number[];
}

export class LbManager {
  private readonly running = new Map<string, Listener>();
  /** Listener keys that could not be bound, with why (reported in status, retried on change). */
  readonly failures = new Map<string, string>();
  private readonly addresses = new Map<string, number>();
  /** Descriptors in systemd's store per listener socket name (at most storeBudget in all). */
  private readonly stored = new Map<string, number>();
  private storedTotal = 0;
  private overBudget = false;
  readonly limit: ConnectionLimit;
  ejections = 0;
  private chain: Promise<void> = Promise.resolve();
  private pending = false;
  private stopped = false;
  private unsubscribe: (() => void) | null = null;
  /** The plan as of the last sync (null: plan everything at the next one). */
  private plan: Plan | null = null;
  /** Services changed since the last sync. */
  private readonly touched = new Set<string>();

  constructor(
    private readonly registry: Registry,
    private opts: LbOptions,
    private readonly addrs: AddressOps | null,
    private readonly log: Logger,
    /** Where VIP sockets come from and are kept across restarts (systemd's descriptor store). */
    private readonly sockets: SocketStore = NO_SOCKET_STORE,
    private readonly storeBudget = STORE_BUDGET,
  ) {
    this.limit = { active: 0, max: opts.maxConnections, refused: 0 };
  }

  /** Starts following the registry; resolves after the first sync. */
  start(): Promise<void> {
    this.unsubscribe = this.registry.onChange((c) => {
      for (const key of c.services) this.touched.add(key);
      this.schedule();
    });
    return this.sync();
  }

  configure(opts: LbOptions): Promise<void> {
    this.opts = opts;
    this.plan = null;
    this.limit.max = opts.maxConnections;
    for (const l of this.running.values()) {
      l.backends.configure({ policy: opts.policy, preferLocal: opts.preferLocal, ejectMs: opts.ejectMs });
      if (l.tcp) l.tcp.opts = { ...l.tcp.opts, idleTimeoutMs: opts.idleTimeoutMs, proxyProtocol: opts.proxyProtocol };
      if (l.tcp instanceof NativeTcpProxy) l.tcp.configurePolicy({ policy: opts.policy, preferLocal: opts.preferLocal, ejectMs: opts.ejectMs });
      if (l.udp) l.udp.opts = { idleTimeoutMs: opts.udpIdleTimeoutMs, maxSessions: opts.udpMaxSessions };
      if (l.udp instanceof NativeUdpProxy) l.udp.configurePolicy({ policy: opts.policy, preferLocal: opts.preferLocal, ejectMs: opts.ejectMs });
    }
    return this.sync();
  }

  listeners(): IterableIterator<Listener> {
    // The relay's counters live in the addon: copy them in for whoever reads them.
    for (const l of this.running.values()) {
      if (l.tcp instanceof NativeTcpProxy) l.tcp.refresh();
      l.udp?.refresh();
    }
    return this.running.values();
  }

  /** Registry changes come in bursts (a node's state touches many services): one sync per burst. */
  private schedule(): void {
    if (this.pending || this.stopped) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      void this.sync();
    });
  }

  /** Serialised: a sync starts after the previous one has finished its socket work. */
  sync(): Promise<void> {
    this.chain = this.chain.then(() => this.syncNow()).catch((e) => this.log.error({ err: e }, `load balancer sync failed: ${(e as Error).message}`));
    return this.chain;
  }

  /** The listener keys to look at: all of them after a start or reload, else those of the services changed since. */
  private replan(): Set<string> {
    const o = this.opts;
    if (!this.plan) {
      this.plan = new Plan({ failOpen: o.failOpen, ingress: o.ingress, hostAddress: o.hostAddress });
      this.touched.clear();
      for (const v of this.registry.services()) this.plan.update(v.key, v);
      return new Set([...this.plan.keys(), ...this.running.keys(), ...this.failures.keys()]);
    }
    // Listeners that could not be bound are tried again on every change.
    const keys = new Set(this.failures.keys());
    for (const key of this.touched) {
      const slash = key.indexOf('/');
      for (const l of this.plan.update(key, this.registry.service(key.slice(0, slash), key.slice(slash + 1)))) keys.add(l);
    }
    this.touched.clear();
    return keys;
  }

  private async syncNow(): Promise<void> {
    if (this.stopped) return;
    const o = this.opts;
    const keys = this.replan();
    const plan = this.plan!;
    for (const key of keys) {
      const l = this.running.get(key);
      if (l && !plan.wanted(key)) await this.remove(key, l);
    }
    for (const key of keys) {
      const spec = plan.wanted(key);
      if (!spec) {
        this.failures.delete(key);
        continue;
      }
      let l = this.running.get(key);
      // PROXY protocol switched on or off: the listener moves between the relay and the JS proxy.
      if (l?.tcp && (l.tcp instanceof NativeTcpProxy) !== (relayAddon(o.proxyProtocol) !== null)) {
        await this.remove(key, l);
        l = undefined;
      }
      if (l) {
        l.spec = spec;
        l.backends.update(spec.backends);
        if (l.tcp instanceof NativeTcpProxy) l.tcp.backendsChanged();
        l.udp?.backendsChanged();
      } else {
        await this.add(spec);
      }
    }
  }

  private async add(spec: ListenerSpec): Promise<void> {
    const o = this.opts;
    const backends = new BackendSet({ policy: o.policy, preferLocal: o.preferLocal, ejectMs: o.ejectMs }, spec.backends);
    const l: Listener = { spec, backends };
    try {
      if (!spec.ingress) await this.holdAddress(spec.host);
      if (spec.protocol === 'tcp') {
        const topts = { idleTimeoutMs: o.idleTimeoutMs, connectTimeoutMs: o.connectTimeoutMs, proxyProtocol: o.proxyProtocol, attempts: LB_DEFAULTS.attempts };
        const events = { ejected: (b: Backend) => this.ejected(spec, b) };
        const relay = relayAddon(o.proxyProtocol);
        l.tcp = await this.serve(spec, () => relay
          ? new NativeTcpProxy(relay, backends, topts, { policy: o.policy, preferLocal: o.preferLocal, ejectMs: o.ejectMs }, this.limit, events)
          : new TcpProxy(backends, topts, this.limit, events));
      } else {
        const uopts = { idleTimeoutMs: o.udpIdleTimeoutMs, maxSessions: o.udpMaxSessions };
        const relay = udpRelayAddon();
        l.udp = await this.serve(spec, () => relay ? new NativeUdpProxy(relay, backends, uopts, { policy: o.policy, preferLocal: o.preferLocal, ejectMs: o.ejectMs }) : new UdpProxy(backends, uopts));
      }
    } catch (e) {
      l.udp?.close();
      if (!spec.ingress) await this.releaseAddress(spec.host);
      const why = (e as Error).message;
      if (this.failures.get(spec.key) !== why) {
        this.log.warn({ service: spec.service, listener: spec.key }, `load balancer: cannot listen on ${spec.host}:${spec.port}/${spec.protocol} for ${spec.service}: ${why}`);
      }
      this.failures.set(spec.key, why);
      return;
    }
    this.failures.delete(spec.key);
    this.running.set(spec.key, l);
    this.log.info(
      { service: spec.service, listener: spec.key, backends: spec.backends.length },
      `load balancer: ${spec.service} port ${spec.portName} on ${spec.host}:${spec.port}/${spec.protocol}${spec.ingress ? ' (ingress)' : ''}, ${spec.backends.length} endpoint${spec.backends.length === 1 ? '' : 's'}`,
    );
  }

  /**
   * A proxy serving spec's address: on the socket an earlier process kept for it (a restart
   * under systemd: the connections and datagrams that arrived meanwhile are served), else on a
   * new one, kept for the next process. A stored socket that does not fit is closed and dropped.
   */
  private async serve<P extends StoredProxy>(spec: ListenerSpec, make: () => P): Promise<P> {
    const name = storedName(spec);
    const stored = this.sockets.take(name);
    if (stored.length > 0) {
      const p = make();
      try {
        await p.adopt(stored, spec.host, spec.port);
        this.count(name, stored.length);
        return p;
      } catch (e) {
        this.log.warn({ listener: spec.key, name }, `load balancer: closed the stored socket ${name}: ${(e as Error).message}; binding a new one`);
        this.sockets.forget(name);
      }
    }
    const p = make();
    await p.listen(spec.host, spec.port);
    const fds = p.fds();
    if (this.storedTotal + fds.length <= this.storeBudget) {
      this.sockets.keep(name, fds);
      this.count(name, fds.length);
    } else if (!this.overBudget) {
      this.overBudget = true;
      this.log.warn(`load balancer: more than ${this.storeBudget} VIP sockets; those beyond are not kept across restarts (bound anew after one)`);
    }
    return p;
  }

  /** `name` now has `n` descriptors in the store (0: none, it was dropped). */
  private count(name: string, n: number): void {
    this.storedTotal += n - (this.stored.get(name) ?? 0);
    if (n > 0) this.stored.set(name, n);
    else this.stored.delete(name);
  }

  private async remove(key: string, l: Listener): Promise<void> {
    this.running.delete(key);
    const name = storedName(l.spec);
    this.sockets.forget(name);
    this.count(name, 0);
    this.log.info({ service: l.spec.service, listener: key }, `load balancer: ${l.spec.service} no longer on ${l.spec.host}:${l.spec.port}/${l.spec.protocol}`);
    l.udp?.close();
    if (l.tcp) {
      await l.tcp.close();
      // Open connections drain; the VIP stays on the link until they have.
      const tcp = l.tcp;
      if (!l.spec.ingress) void tcp.drained().then(() => this.releaseAddress(l.spec.host));
      return;
    }
    if (!l.spec.ingress) await this.releaseAddress(l.spec.host);
  }

  private ejected(spec: ListenerSpec, b: Backend): void {
    this.ejections++;
    this.log.warn({ service: spec.service, backend: b.id }, `load balancer: ${spec.service} endpoint ${b.host}:${b.port} refused a connection; skipped for a while`);
  }

  private async holdAddress(ip: string): Promise<void> {
    const n = this.addresses.get(ip) ?? 0;
    if (n === 0 && this.addrs) await this.addrs.add(ip);
    this.addresses.set(ip, n + 1);
  }

  private async releaseAddress(ip: string): Promise<void> {
    const n = (this.addresses.get(ip) ?? 0) - 1;
    if (n > 0) return void this.addresses.set(ip, n);
    this.addresses.delete(ip);
    if (this.addrs && !this.stopped) {
      try {
        await this.addrs.remove(ip);
      } catch (e) {
        this.log.warn(`load balancer: could not remove ${ip} from the link: ${(e as Error).message}`);
      }
    }
  }

  /** `restart`: the listening sockets are closed, not shut down (systemd keeps them for the next process). */
  async stop(restart = false): Promise<void> {
    this.unsubscribe?.();
    await this.chain;
    this.stopped = true;
    for (const l of this.running.values()) {
      l.udp?.close();
      await l.tcp?.close(true, restart);
    }
    this.running.clear();
  }
}
