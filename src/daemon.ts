import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as packet from 'dns-packet';
import { ChangeIndex } from './api/blocking.js';
import { dnsRecordsJson } from './api/format.js';
import { Metrics } from './api/metrics.js';
import type { ApiContext } from './api/routes.js';
import { Serial } from './api/serial.js';
import { ApiServer, ApiSocketInUse, checkApiListen, unixSocketAlive } from './api/server.js';
import { ConfigError } from './config/errors.js';
import { apiListen as apiListenKind, showHostPort, type ApiListen, type HostPort } from './config/kinds.js';
import { loadConfig, type LoadedConfig, type LoadInput } from './config/load.js';
import { OPTIONS, type OptionKey, type Options } from './config/options.js';
import {
  defaultAdvertiseAddress,
  defaultApiListen,
  defaultNodeName,
  defaultStateDir,
  privileges,
  type Privileges,
} from './config/runtime.js';
import { ClientPolicy } from './dns/clients.js';
import { Forwarder, type ForwarderOptions } from './dns/forwarder.js';
import { DnsHandler } from './dns/handler.js';
import { defaultUpstreams } from './dns/resolvconf.js';
import { limitReply, ResponseRateLimiter } from './dns/rrl.js';
import { BindError, DEFAULT_SERVER_OPTIONS, DnsServer, type DnsServerOptions } from './dns/server.js';
import { ZoneState, type ZoneOptions } from './dns/zone.js';
import { addAddress, ensureLink, removeAddress, removeLink, type LinkInfo } from './lb/link.js';
import { LbManager } from './lb/manager.js';
import { registerLbMetrics } from './lb/metrics.js';
import { ingressEntries, lbOptions, loopbackRange, vipAssigner } from './lb/setup.js';
import { createLogger, type Logger, type LogLevel } from './log.js';
import { addressAt } from './net/cidr.js';
import { nativeDns, type NativeDns } from './native/dns.js';
import { LocalNode } from './registry/local.js';
import { Registry } from './registry/registry.js';
import { loadNodeKey } from './state/node-key.js';
import type { NodeIdentity } from './gossip/identity.js';
import { stateApiToken, MIN_TOKEN_LENGTH, type StateToken } from './state/api-token.js';
import { observeWrites, removeStaleTemps, type WriteOutcome } from './state/files.js';
import { registerStateMetrics, StateDirHealth } from './state/health.js';
import { RegistrationStore } from './state/registrations.js';
import { VERSION } from './version.js';
import { GatewayListeners } from './dns/gateways.js';
import { ContainerNames } from './dns/scoped.js';
import { HealthChecker, type HealthOptions } from './health/checker.js';
import { registerHealthMetrics } from './health/metrics.js';
import { PodmanSource } from './podman/source.js';
import { ResolvedClient, type ResolvedLink, type ResolvedMode } from './systemd/resolved.js';
import type { StatusCounts } from './systemd/messages.js';
import { selfQuery } from './systemd/self-query.js';
import { Cluster } from './gossip/cluster.js';
import { gossipMetrics } from './gossip/metrics.js';
import { clusterSettings } from './gossip/setup.js';
import { followHostAddresses, hostAddresses } from './net/host-addresses.js';

// Wires the parts together and owns the order of start, reload and stop. Sources feed the local
// node, the registry derives views, DNS and the API read them.

/** Everything computed from the options at start: the defaults that depend on the host. */
interface Runtime {
  nodeName: string;
  stateDir: string;
  advertise: string;
  dnsAddress: string;
  apiListen: ApiListen[];
  apiListenExplicit: boolean;
}

export class Daemon {
  readonly log: Logger;
  readonly registry: Registry;
  readonly local: LocalNode;
  readonly metrics: Metrics;
  private readonly zone: ZoneState;
  private readonly clients: ClientPolicy;
  private readonly forwarder: Forwarder;
  private readonly handler: DnsHandler;
  private readonly dns: DnsServer;
  /** The native DNS fast path (docs/architecture.md#native-addon), or the reason the JS path serves UDP. */
  readonly native: NativeDns;
  private readonly api: ApiServer;
  private readonly changes: ChangeIndex;
  private readonly store: RegistrationStore;
  private readonly stateHealth: StateDirHealth;
  private readonly stopObservingWrites: () => void;
  /** The token made in the state directory, once it is needed (no --api-token-file). */
  private ownToken: StateToken | null = null;
  private readonly rt: Runtime;
  private readonly startedAt = Date.now();
  private opts: Options;
  private link: LinkInfo | null = null;
  private lb: LbManager | null = null;
  /** The gossip layer (docs/architecture.md#registry-and-gossip); null when it is off or not started yet. */
  cluster: Cluster | null = null;
  private readonly identity: NodeIdentity;
  private readonly gossipLag: (ms: number) => void;
  private ready = false;
  /** Problems found at start or reload that an operator should see in `status`. */
  private readonly problems = new Map<string, string>();
  /** Why this node does not gossip (null when it does, or is trying to). */
  private gossipOff: string | null = null;
  // Podman integration and local health checks (docs/architecture.md#podman, docs/architecture.md#health).
  private podman: PodmanSource | null = null;
  private readonly names = new ContainerNames();
  /** --dns-rrl for the replies JS sends; the native threads keep their own table. */
  private rrl: ResponseRateLimiter | null = null;
  private readonly udpLimit = (ip: string, reply: Buffer): Buffer | null => limitReply(this.rrl, ip, reply, (r) => this.metrics.shed(r));
  private readonly health: HealthChecker;
  private readonly gateways: GatewayListeners;
  private readonly resolved: ResolvedClient;
  private stopHostAddresses: () => void = () => undefined;
  private resolvedStarted: Promise<void> = Promise.resolve();

  constructor(
    private loaded: LoadedConfig,
    private readonly input: LoadInput,
    private readonly priv: Privileges = privileges(),
    log?: Logger,
  ) {
    const o = (this.opts = loaded.options);
    this.log = log ?? createLogger(o.logLevel as LogLevel);
    const env = input.env;
    const apiListenExplicit = o.apiListen.length > 0;
    const stateDir = o.stateDir || defaultStateDir(env);
    this.rt = {
      nodeName: o.nodeName || defaultNodeName(),
      stateDir,
      advertise: o.advertiseAddress || defaultAdvertiseAddress(o.link === 'none' ? [] : [o.link]),
      dnsAddress: addressAt(o.serviceCidr, 10),
      apiListen: apiListenExplicit ? o.apiListen : defaultApiListen(env, stateDir),
      apiListenExplicit,
    };
    ingressEntries(o.ingress); // a malformed --ingress stops the start, like any bad option
    const problem = checkApiListen(this.rt.apiListen, o.apiTokenFile !== '');
    if (problem) throw new ConfigError('ERR_CONFIG_BAD_VALUE', problem);

    this.stateHealth = new StateDirHealth(this.rt.stateDir);
    this.stopObservingWrites = observeWrites((w) => this.stateWritten(w));
    const stale = removeStaleTemps(this.rt.stateDir);
    if (stale.length) this.log.info({ files: stale }, `removed ${plural(stale.length, 'temp file')} a killed daemon left in ${this.rt.stateDir}`);
    this.identity = this.nodeIdentity();
    const nodeId = this.identity.id;
    this.registry = new Registry({ localNode: nodeId, routableContainerIps: o.routableContainerIps, defaultMode: o.defaultMode });
    this.local = new LocalNode(this.registry, { id: nodeId, name: this.rt.nodeName, address: this.rt.advertise, incarnation: 0 }, Date.now, o.maxEndpointsPerNode);
    this.store = new RegistrationStore(this.rt.stateDir);
    this.zone = new ZoneState(this.registry, this.zoneOptions(o));
    this.clients = new ClientPolicy(o.allowRecursion);
    this.forwarder = new Forwarder(this.forwarderOptions(o, []), {
      upstreamFailed: (upstream, reason) => {
        this.metrics.upstreamFailed(upstream);
        this.log.warn({ upstream, reason }, `upstream DNS server ${upstream} is failing (${reason}); trying the next one`);
      },
      upstreamRecovered: (upstream) => this.log.info({ upstream }, `upstream DNS server ${upstream} answers again`),
    });
    this.metrics = new Metrics({ registry: this.registry, cache: () => this.forwarder.cache });
    this.gossipLag = gossipMetrics(this.metrics.prom, () => this.cluster).lag;
    this.handler = new DnsHandler({ zone: this.zone, clients: this.clients, forwarder: this.forwarder, metrics: this.metrics, log: this.log, containerNames: this.names });
    this.native = nativeDns(o.dnsThreads, DEFAULT_SERVER_OPTIONS.udpReceiveBuffer, {
      registry: this.registry, zone: this.zone, clients: this.clients, handler: this.handler, metrics: this.metrics, log: this.log, env: input.env, containerNames: this.names,
      udpLimit: this.udpLimit,
    });
    this.dns = new DnsServer(this.handler, { ...DEFAULT_SERVER_OPTIONS, ...tcpOptions(o), udpLimit: this.udpLimit }, this.log, this.native.udpBinder, (reason) => this.metrics.shed(reason));
    this.setRrl(o);
    this.changes = new ChangeIndex(this.registry);
    this.api = new ApiServer(this.apiContext(), this.apiToken(o.apiTokenFile));
    this.gateways = new GatewayListeners(this.dns, this.log);
    this.health = new HealthChecker(this.local, healthOptions(o), (id) => this.podman?.podmanHealth(id) ?? Promise.resolve(undefined), this.log);
    this.resolved = new ResolvedClient({
      mode: o.resolved as ResolvedMode,
      domain: o.domain,
      log: this.log,
      problem: (message) => (message ? this.problem('resolved', message) : this.problems.delete('resolved')),
    });
    registerLbMetrics(this.metrics.prom, () => this.lb);
    registerHealthMetrics(this.metrics.prom, this.health);
    registerStateMetrics(this.metrics.prom, this.stateHealth);
    this.registry.onChange((change) => {
      for (const key of change.services) {
        const [ns, svc] = key.split('/') as [string, string];
        const v = this.registry.service(ns, svc);
        const healthy = v ? v.endpoints.filter((e) => e.endpoint.healthy).length : 0;
        this.log.info({ service: key, endpoints: v?.endpoints.length ?? 0, healthy }, v ? `service ${key}: ${plural(v.endpoints.length, 'endpoint')} (${healthy} healthy)` : `service ${key} removed`);
      }
    });
  }

  async start(): Promise<void> {
    const o = this.opts;
    const { log, rt } = this;
    // Before anything reaches the network (a gossip leave at the failed start would speak for
    // the other daemon too): is another daemon on one of our API sockets?
    for (const l of rt.apiListen) {
      if (l.kind === 'unix' && (await unixSocketAlive(l.path))) throw this.apiSocketError(new ApiSocketInUse(l.path));
    }
    if (!this.priv.bindLowPorts && o.dnsListen.length === 0) {
      log.info('not running as root (no CAP_NET_BIND_SERVICE): serving DNS on 127.0.0.1:5353 and the API on loopback and a user socket; run as root for the cluster DNS address on port 53');
    }
    for (const [key, def] of Object.entries(OPTIONS) as Array<[OptionKey, (typeof OPTIONS)[OptionKey]]>) {
      if ('pending' in def && def.pending && this.loaded.origin[key] !== 'default') {
        this.problem(`pending:${key}`, `--${def.name} is accepted but has no effect yet: ${def.pending} is not in this version`);
      }
    }
    this.local.replaceSource('config', this.loaded.endpoints);
    this.loadRegistrations();
    await this.startCluster();

    if (o.link !== 'none') await this.setUpLink();
    // Queries from this host's own addresses may recurse and see every network's container names.
    this.stopHostAddresses = followHostAddresses((ips, prune) => this.clients.setHostAddresses(ips, prune), HOST_ADDRESS_INTERVAL_MS);
    await this.startLb();
    const listen = this.dnsListenPlan();
    this.forwarder.configure(this.forwarderOptions(o, listen.addresses));
    if (this.forwarder.upstreams.length === 0) {
      this.problem('upstreams', 'no upstream DNS servers (none given and none usable in /etc/resolv.conf): names outside the zone get SERVFAIL');
    }
    for (const addr of listen.addresses) {
      try {
        const bound = await this.dns.listen(addr);
        log.info({ address: showHostPort(bound) }, `serving DNS on ${showHostPort(bound)} (udp+tcp)`);
      } catch (e) {
        if (!(e instanceof BindError) || listen.explicit) throw e;
        this.problem(`dns:${showHostPort(addr)}`, e.message);
      }
    }
    if (this.dns.addresses.length === 0) throw new Error('no DNS address could be bound; see the errors above, or give --dns-listen');

    for (const l of rt.apiListen) {
      try {
        const bound = await this.api.listen(l);
        log.info({ address: apiListenKind.show(bound) }, `serving the API on ${apiListenKind.show(bound)}`);
      } catch (e) {
        if (rt.apiListenExplicit || e instanceof ApiSocketInUse) throw this.apiSocketError(e as Error);
        this.problem(`api:${apiListenKind.show(l)}`, (e as Error).message);
      }
    }
    this.startPodman();
    this.health.start();
    this.ready = true;
    // Not awaited: READY=1 never waits for D-Bus; the client logs its own outcome.
    this.resolvedStarted = this.resolved.start(this.resolvedLinks());
    log.info(
      { node: rt.nodeName, id: this.registry.localNode, version: VERSION, services: this.registry.serviceCount, endpoints: this.registry.endpointCount },
      `ready: node ${rt.nodeName}, ${plural(this.registry.serviceCount, 'service')}, zone ${o.domain}`,
    );
  }

  /**
   * The default socket belongs to the state dir: a daemon on it is a second one with the same
   * state dir, which would share this node's id and registrations.
   */
  private apiSocketError(e: Error): Error {
    if (!(e instanceof ApiSocketInUse)) return e;
    if (this.rt.apiListenExplicit) return new ConfigError('ERR_CONFIG_BAD_VALUE', `${e.message}; stop that daemon or give --api-listen another unix:PATH`);
    return new ConfigError('ERR_CONFIG_BAD_VALUE', `another podman-swarm-dns daemon already runs with the state dir ${this.rt.stateDir} ` +
      `(its API answers on unix:${e.path}); two daemons must not share one: give this one its own --state-dir ` +
      '(its API socket is then <state-dir>/api.sock), or stop the other');
  }

  /** SIGHUP: re-read the configuration, apply what can change live, report what cannot. */
  reload(): { applied: string[]; restart: string[] } {
    let next: LoadedConfig;
    try {
      next = loadConfig(this.input);
    } catch (e) {
      this.log.error(e instanceof ConfigError ? {} : { err: e }, `reload failed, keeping the running configuration: ${(e as Error).message}`);
      throw e;
    }
    ingressEntries(next.options.ingress); // reject a malformed --ingress before applying anything
    const before = this.opts;
    const changed = (Object.keys(OPTIONS) as OptionKey[]).filter((k) => JSON.stringify(before[k]) !== JSON.stringify(next.options[k]));
    const applied = changed.filter((k) => LIVE_OPTIONS.has(k)).map((k) => OPTIONS[k].name);
    const restart = changed.filter((k) => !LIVE_OPTIONS.has(k)).map((k) => OPTIONS[k].name);
    // Options that need a restart keep their running values until then.
    const after = { ...before };
    for (const k of changed) if (LIVE_OPTIONS.has(k)) (after as Record<OptionKey, unknown>)[k] = next.options[k];
    if (checkApiListen(this.rt.apiListen, after.apiTokenFile !== '') !== null) {
      throw new ConfigError('ERR_CONFIG_BAD_VALUE', 'reload refused: the API listens off loopback and the new configuration has no --api-token-file');
    }
    const token = this.apiToken(after.apiTokenFile);
    this.opts = after;
    this.log.level = after.logLevel;
    // Only what the reload changed moves: the same settings again rebuild no table, no LB plan.
    if (this.zone.configure(this.zoneOptions(after))) this.native.table?.schedule();
    this.clients.configure(after.allowRecursion);
    this.forwarder.configure(this.forwarderOptions(after, this.dns.addresses));
    this.dns.configure(tcpOptions(after));
    this.setRrl(after);
    this.api.setToken(token);
    this.health.configure(healthOptions(after));
    if (this.lb && JSON.stringify(lbOptions(before, this.rt.advertise)) !== JSON.stringify(lbOptions(after, this.rt.advertise))) void this.lb.configure(lbOptions(after, this.rt.advertise));
    if (changed.includes('routableContainerIps') || changed.includes('defaultMode')) {
      this.registry.setOptions({ localNode: this.registry.localNode, routableContainerIps: after.routableContainerIps, defaultMode: after.defaultMode });
    }
    if (this.local.replaceSource('config', next.endpoints)) applied.push('services');
    this.loaded = next;
    this.log.info({ applied, restart }, `reloaded: ${applied.length ? `applied ${applied.join(', ')}` : 'nothing changed'}${restart.length ? `; needs a restart: ${restart.join(', ')}` : ''}`);
    return { applied, restart };
  }

  async stop(): Promise<void> {
    this.ready = false;
    this.log.info('stopping');
    // Leave first, so every host withdraws this node's endpoints at once (docs/architecture.md#registry-and-gossip).
    await this.cluster?.stop().catch((e: Error) => this.log.warn(`leaving the cluster failed: ${e.message}`));
    this.changes.close();
    this.stopHostAddresses();
    this.podman?.stop();
    this.health.stop();
    await this.gateways.close();
    await Promise.all([this.api.close(), this.dns.close(), this.lb?.stop()]);
    this.native.close();
    this.zone.close();
    this.stopObservingWrites();
    await this.resolvedStarted;
    await this.resolved.stop();
    if (this.link && this.link.type !== 'existing') {
      try {
        await removeLink(this.link.name);
      } catch (e) {
        this.log.warn({ err: e }, `could not remove link ${this.link.name}: ${(e as Error).message}`);
      }
    }
    this.log.info('stopped');
  }

  private async startCluster(): Promise<void> {
    const o = this.opts;
    const settings = clusterSettings({ ...o, advertise: this.rt.advertise });
    if (settings.disabled) {
      this.gossipOff = settings.disabled;
      // With no peer to join (a single host) there is no cluster to miss: said once, not a problem.
      if (settings.seeds.length) this.problem('gossip', settings.disabled);
      else this.log.info(settings.disabled);
      return;
    }
    const unspecified = o.gossipListen.host === '0.0.0.0' || o.gossipListen.host === '::';
    try {
      this.cluster = await Cluster.start({
        identity: this.identity, name: this.rt.nodeName, listenHost: o.gossipListen.host, listenPort: o.gossipListen.port,
        advertiseHost: unspecified ? this.rt.advertise : o.gossipListen.host, keyring: settings.keyring, seeds: settings.seeds,
        registry: this.registry, log: this.log, stateDir: this.rt.stateDir, onMerged: this.gossipLag,
        maxEndpoints: o.maxEndpointsPerNode, maxConnections: o.gossipMaxConnections,
      });
    } catch (e) {
      const msg = `cannot gossip on ${showHostPort(o.gossipListen)}: ${(e as Error).message}`;
      if (this.loaded.origin.gossipListen !== 'default') throw new Error(msg);
      this.problem('gossip', `${msg}; running without the cluster`);
    }
  }

  private startPodman(): void {
    const o = this.opts;
    if (o.podmanSocket === 'none') return;
    // Rootless Podman serves its API under the user's runtime directory.
    const xdg = this.input.env.XDG_RUNTIME_DIR;
    const socket = this.loaded.origin.podmanSocket === 'default' && process.getuid?.() !== 0 && xdg ? join(xdg, 'podman', 'podman.sock') : o.podmanSocket;
    this.podman = new PodmanSource(
      { socket, resyncIntervalMs: o.resyncInterval, nodeAddress: this.rt.advertise, maxPorts: o.maxPortsPerEndpoint, maxEndpoints: o.maxEndpointsPerService },
      {
        local: this.local,
        names: (containers) => {
          // A container's start may have brought up its network's bridge and gateway address:
          // taken in the same table update as the container (a no-op when nothing is new).
          this.clients.setHostAddresses(hostAddresses());
          this.names.setContainers(containers.map((c) => c.names));
        },
        networks: (nets) => this.names.setNetworks(nets),
        bridgeSubnets: (subnets) => this.clients.setBridgeSubnets(subnets),
        gateways: (gws) => {
          this.clients.setHostAddresses(hostAddresses());
          if (this.priv.bindLowPorts) void this.gateways.set(gws);
          else if (gws.length) this.problem('gateways', `not root (no CAP_NET_BIND_SERVICE): not serving DNS on the gateways of Podman networks ${gws.join(', ')}`);
        },
        healthEvent: (id) => this.health.checkContainer(id),
        batch: (update) => (this.native.table ? this.native.table.batch(update) : update()),
      },
      this.log,
    );
    this.podman.start();
  }

  private async setUpLink(): Promise<void> {
    const { opts: o, rt } = this;
    if (!this.priv.netAdmin) {
      this.log.info(`no CAP_NET_ADMIN: not creating link ${o.link} with the cluster DNS address ${rt.dnsAddress}`);
      return;
    }
    try {
      this.link = await ensureLink(o.link);
      await addAddress(o.link, rt.dnsAddress);
      this.log.info({ link: o.link, type: this.link.type, address: rt.dnsAddress }, `link ${o.link} (${this.link.type}) holds the cluster DNS address ${rt.dnsAddress}`);
    } catch (e) {
      this.problem('link', `could not set up link ${o.link} with ${rt.dnsAddress}: ${(e as Error).message}`);
    }
  }

  /** Links resolved should send the zone to: ours, when the cluster DNS address is served on it. */
  private resolvedLinks(): ResolvedLink[] {
    if (!this.link) return [];
    const served = this.dns.addresses.find((a) => a.host === this.rt.dnsAddress);
    return served ? [{ name: this.link.name, servers: [{ address: served.host, port: served.port }] }] : [];
  }

  /** For systemd's STATUS= line. */
  counts(): StatusCounts {
    const all = [...this.registry.services()].flatMap((v) => v.endpoints);
    return { services: this.registry.serviceCount, endpoints: all.length, healthy: all.filter((e) => e.endpoint.healthy).length, dns: this.dns.addresses.map(showHostPort) };
  }

  /** A real query over UDP to our first DNS listener (the watchdog's liveness proof). */
  selfQuery(timeoutMs: number): Promise<boolean> {
    const first = this.dns.addresses[0];
    return first ? selfQuery(first, this.opts.domain, timeoutMs) : Promise.resolve(false);
  }

  /**
   * docs/architecture.md#load-balancer: VIPs for vip-mode services, with listeners on them. VIPs need the daemon's link; a
   * service range inside 127.0.0.0/8 works without one (loopback answers for all of it).
   */
  private async startLb(): Promise<void> {
    const o = this.opts;
    const onLoopback = loopbackRange(o.serviceCidr);
    if (!this.link && !onLoopback) {
      const vipServices = [...this.registry.services()].some((v) => v.mode === 'vip') || o.lbAll || o.defaultMode === 'vip';
      if (vipServices) this.problem('lb', `the load balancer is off (no link ${o.link} for the VIPs: needs CAP_NET_ADMIN); vip-mode services are answered with their endpoints' addresses`);
      return;
    }
    const link = this.link?.name;
    const addrs = link && !onLoopback ? { add: (ip: string) => addAddress(link, ip), remove: (ip: string) => removeAddress(link, ip) } : null;
    this.lb = new LbManager(this.registry, lbOptions(o, this.rt.advertise), addrs, this.log);
    this.registry.setVipAssigner(vipAssigner(o.serviceCidr, o.lbAll));
    await this.lb.start();
  }

  private dnsListenPlan(): { addresses: HostPort[]; explicit: boolean } {
    const o = this.opts;
    if (o.dnsListen.length > 0) return { addresses: o.dnsListen, explicit: true };
    if (!this.priv.bindLowPorts) return { addresses: [{ host: '127.0.0.1', port: 5353 }], explicit: false };
    const addresses: HostPort[] = [];
    if (this.link) addresses.push({ host: this.rt.dnsAddress, port: 53 });
    addresses.push({ host: '127.0.0.1', port: 53 });
    return { addresses, explicit: false };
  }

  private setRrl(o: Options): void {
    this.rrl = o.dnsRrl > 0 ? new ResponseRateLimiter(o.dnsRrl, o.dnsRrlSlip) : null;
    this.native.setRrl(o.dnsRrl, o.dnsRrlSlip);
  }

  private zoneOptions(o: Options): ZoneOptions {
    return {
      domain: o.domain,
      ttl: o.ttl,
      negativeTtl: o.negativeTtl,
      nameserver: addressAt(o.serviceCidr, 10),
      failOpen: o.failOpen,
      preferLocal: o.preferLocal,
      udpAnswerLimit: o.udpAnswerLimit,
    };
  }

  private forwarderOptions(o: Options, own: HostPort[]): ForwarderOptions {
    return {
      upstreams: o.upstreamDns.length > 0 ? o.upstreamDns : defaultUpstreams([...own, { host: this.rt.dnsAddress, port: 53 }]),
      timeoutMs: o.upstreamTimeout,
      cacheSize: o.cacheSize,
      forwardAllow: o.forwardAllow,
    };
  }

  /** --api-token-file's token, or the one kept in the state directory (made at first start). */
  private apiToken(file: string): string {
    if (file) return this.readToken(file);
    if (!this.ownToken) {
      const own = (this.ownToken = stateApiToken(this.rt.stateDir));
      if (own.unsaved) {
        this.problem('api-token', `could not save the API token to ${own.path} (${own.unsaved}): writes over TCP need a token nobody has; use the unix socket or --api-token-file`);
      } else if (own.created) {
        this.log.info({ path: own.path }, `made an API token in ${own.path}: writes over TCP need "Authorization: Bearer <its content>"; the unix socket needs none`);
      }
    }
    return this.ownToken.token;
  }

  private readToken(file: string): string {
    let token: string;
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (e) {
      throw new ConfigError('ERR_CONFIG_FILE', `--api-token-file ${file}: cannot read it (${(e as Error).message})`);
    }
    if (token.length < MIN_TOKEN_LENGTH) throw new ConfigError('ERR_CONFIG_BAD_VALUE', `--api-token-file ${file}: the token is shorter than ${MIN_TOKEN_LENGTH} characters; use e.g. \`openssl rand -hex 32 > ${file}\``);
    return token;
  }

  /** The node's signing key and the node id derived from it, kept in the state directory. */
  private nodeIdentity(): NodeIdentity {
    const key = loadNodeKey(this.rt.stateDir);
    for (const note of key.notes) this.log.info(note);
    for (const warning of key.warnings) this.log.warn(warning);
    if (key.problem) this.problem('state-dir', `${key.problem}; API registrations may not survive a restart either`);
    return key.identity;
  }

  private loadRegistrations(): void {
    const r = this.store.load();
    if (r.kind === 'ok') {
      const { endpoints, skipped } = r.value;
      this.local.replaceSource('api', endpoints);
      if (endpoints.length) this.log.info({ count: endpoints.length }, `restored ${endpoints.length} API-registered endpoints from ${this.store.path}`);
      for (const why of skipped) this.log.warn(`not restoring the API registration ${why}`);
    } else if (r.kind === 'corrupt') {
      this.problem('registrations', `${this.store.path} could not be read (${r.reason})${r.movedTo ? `; moved to ${r.movedTo}` : ''}; API registrations start empty`);
    }
  }

  /** Every write to the state directory: its health for `status` and metrics, a log line when a file starts or stops failing. */
  private stateWritten(w: WriteOutcome): void {
    const change = this.stateHealth.record(w);
    if (!change) return;
    if (change.error) this.log.warn({ file: change.file }, `state directory ${this.rt.stateDir}: ${change.error}; the previous ${change.file} is kept`);
    else this.log.info({ file: change.file }, `state directory ${this.rt.stateDir}: ${change.file} is written again`);
  }

  private problem(key: string, message: string): void {
    if (this.problems.get(key) === message) return;
    this.problems.set(key, message);
    this.log.warn(message);
  }

  private apiContext(): ApiContext {
    return {
      registry: this.registry,
      local: this.local,
      changes: this.changes,
      metrics: this.metrics,
      log: this.log,
      failOpen: () => this.opts.failOpen,
      ready: () => this.ready,
      status: () => this.status(),
      query: (name, type, client) => this.query(name, type, client),
      dns: { zone: this.zone, clients: this.clients, forwarder: this.forwarder, containerNames: this.names },
      nodes: () => this.cluster?.nodes(),
      joinToken: () => this.cluster?.joinToken() ?? null,
      join: async (seeds) => {
        if (!this.cluster) return { joined: 0, errors: [this.problems.get('gossip') ?? this.gossipOff ?? 'gossip is off'] };
        return this.cluster.join(seeds);
      },
      saveRegistrations: (endpoints) => this.store.save(endpoints),
      writes: new Serial(MAX_WAITING_WRITES),
      limits: () => ({ maxPorts: this.opts.maxPortsPerEndpoint, maxEndpoints: this.opts.maxEndpointsPerService }),
      lb: () => this.lb,
    };
  }

  status(): Record<string, unknown> {
    const views = [...this.registry.services()];
    const all = views.flatMap((v) => v.endpoints);
    return {
      node: { id: this.registry.localNode, name: this.rt.nodeName, address: this.rt.advertise },
      version: VERSION,
      uptime_seconds: Math.round((Date.now() - this.startedAt) / 1000),
      ready: this.ready,
      dns: {
        domain: this.opts.domain,
        listen: this.dns.addresses.map(showHostPort),
        cluster_address: this.rt.dnsAddress,
        link: this.link ? { name: this.link.name, type: this.link.type } : null,
        upstreams: this.forwarder.upstreams.map(showHostPort),
        path: this.native.path,
      },
      api: { listen: this.api.listening.map((l) => apiListenKind.show(l)) },
      state: this.stateHealth.status(),
      cluster: this.cluster
        ? { gossip: this.cluster.transport.address, members: this.cluster.membership.size, stale: this.cluster.stale }
        : null,
      podman: this.podman ? { ...this.podman.status(), dns_gateways: this.gateways.addresses } : null,
      health: this.health.status(),
      lb: this.lb
        ? {
            listeners: [...this.lb.listeners()].map((l) => ({ service: l.spec.service, listen: l.spec.key, endpoints: l.backends.size })),
            active_connections: this.lb.limit.active,
          }
        : null,
      registry: {
        services: views.length,
        endpoints: all.length,
        healthy_endpoints: all.filter((e) => e.endpoint.healthy).length,
        nodes: [...this.registry.nodes()].length,
        index: this.registry.index,
      },
      problems: [...this.problems.values(), ...this.stateHealth.problems(), ...(this.podman?.problems() ?? []), ...this.gateways.problems(), ...views.flatMap((v) => v.problems.map((p) => `${v.key}: ${p}`)),
        ...[...(this.lb?.failures.entries() ?? [])].map(([k, why]) => `load balancer ${k}: ${why}`)],
    };
  }

  /** A DNS question answered in-process, exactly as a loopback client over TCP would get it. */
  async query(name: string, type: string, client = '127.0.0.1'): Promise<Record<string, unknown>> {
    let raw: Buffer;
    try {
      raw = packet.encode({ id: 1, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name, type: type as 'A', class: 'IN' }] });
    } catch (e) {
      return { name, type, error: `cannot build a query: ${(e as Error).message}` };
    }
    const reply = await this.handler.handle(raw, { address: client, port: 0, transport: 'tcp' });
    if (!reply) return { name, type, error: 'no answer' };
    const d = packet.decode(reply);
    return {
      name,
      type,
      rcode: (d as { rcode?: string }).rcode,
      authoritative: d.flag_aa,
      answers: dnsRecordsJson(d.answers),
      authorities: dnsRecordsJson(d.authorities),
      additionals: dnsRecordsJson(d.additionals),
    };
  }
}

/** Options a SIGHUP applies without a restart (docs/architecture.md#reload). */
const LIVE_OPTIONS = new Set<OptionKey>([
  'logLevel', 'ttl', 'negativeTtl', 'upstreamDns', 'upstreamTimeout', 'cacheSize', 'allowRecursion', 'forwardAllow',
  'preferLocal', 'failOpen', 'udpAnswerLimit', 'dnsRrl', 'dnsRrlSlip', 'tcpIdleTimeout', 'tcpReadTimeout', 'tcpMaxConnections', 'tcpMaxConnectionsPerClient', 'apiTokenFile', 'routableContainerIps', 'defaultMode',
  'healthInterval', 'healthTimeout', 'healthFall', 'healthRise',
  'lbPolicy', 'lbPreferLocal', 'lbIdleTimeout', 'lbUdpTimeout', 'lbMaxConnections', 'lbProxyProtocol', 'ingress',
]);

/** How often this host's own addresses are re-read (they also are when Podman's gateways change). */
const HOST_ADDRESS_INTERVAL_MS = 10_000;

/** API registration writes waiting for the disk before more get 503. */
const MAX_WAITING_WRITES = 256;

const tcpOptions = (o: Options): Partial<DnsServerOptions> => ({
  tcpIdleTimeoutMs: o.tcpIdleTimeout, tcpReadTimeoutMs: o.tcpReadTimeout, maxTcpConnections: o.tcpMaxConnections, maxTcpPerClient: o.tcpMaxConnectionsPerClient,
});

const healthOptions = (o: Options): HealthOptions => ({ intervalMs: o.healthInterval, timeoutMs: o.healthTimeout, rise: o.healthRise, fall: o.healthFall });

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
