import { checkApiConfig, setupApi, type ApiSetup } from './api/setup.js';
import { Metrics } from './api/metrics.js';
import { ConfigError } from './config/errors.js';
import { loadConfigSliced, type LoadedConfig, type LoadInput } from './config/load.js';
import { OPTIONS, type OptionKey, type Options } from './config/options.js';
import { privileges, runtimeOf, type Privileges } from './config/runtime.js';
import { setupDns } from './dns/setup.js';
import { gossipOff, setupGossip } from './gossip/setup.js';
import { setupEtcd, type EtcdSetup } from './etcd/setup.js';
import { registerHealthMetrics } from './health/metrics.js';
import { setupHealth } from './health/setup.js';
import { ingressEntries, setupLb, setupLink } from './lb/setup.js';
import { FailureLog } from './log-once.js';
import { createLogger, type Logger, type LogLevel } from './log.js';
import { limitHeapGrowth } from './memory.js';
import { setupNative } from './native/setup.js';
import { oneAtATime, plural, Problems, type Context, type Part } from './part.js';
import { setupPodman } from './podman/setup.js';
import { logServiceChanges } from './registry/change-log.js';
import { LocalNode } from './registry/local.js';
import { Registry } from './registry/registry.js';
import { registerStateMetrics } from './state/health.js';
import { setupState } from './state/setup.js';
import type { StatusCounts } from './systemd/messages.js';
import { settleEarly } from './systemd/early-dns.js';
import { systemdSockets } from './systemd/fd-store.js';
import { setupSystemd, type SystemdSetup } from './systemd/setup.js';
import type { StartSync } from './dns/start-grace.js';
import type { GossipSetup } from './gossip/setup.js';
import type { PodmanSetup } from './podman/setup.js';
import { VERSION } from './version.js';

// Creates the parts (each from its src/<part>/setup.ts) and orders their start, reload and stop.
// Sources feed the local node, the registry derives views, DNS and the API read them
// (docs/architecture.md#overview).

export class Daemon {
  readonly log: Logger;
  readonly registry: Registry;
  readonly local: LocalNode;
  readonly metrics: Metrics;
  private readonly c: Context;
  private readonly api: ApiSetup;
  private readonly systemd: SystemdSetup;
  /** In the order they start; every part is asked to check and then to apply a reload. */
  private readonly starting: Part[];
  /** In the order they stop: gossip first, so every host withdraws this node's endpoints at once;
   *  DNS near the end, so that it answers until the process is about to exit (on a restart the
   *  next process answers right after). */
  private readonly stopping: Part[];
  private ready = false;
  private stopped = false;

  constructor(
    loaded: LoadedConfig,
    private readonly input: LoadInput,
    priv: Privileges = privileges(),
    log?: Logger,
  ) {
    const o = loaded.options;
    this.log = log ?? createLogger(o.logLevel as LogLevel);
    const c: Context = (this.c = { opts: o, origin: loaded.origin, rt: runtimeOf(o, input.env), priv, env: input.env, log: this.log, problems: new Problems(this.log), failures: new FailureLog(this.log) });
    ingressEntries(o.ingress); // a malformed --ingress stops the start, like any bad option
    checkApiConfig(c);

    const state = setupState(c);
    const registry = (this.registry = new Registry({ localNode: state.identity.id, routableContainerIps: o.routableContainerIps, defaultMode: o.defaultMode }));
    const local = (this.local = new LocalNode(registry, { id: state.identity.id, name: c.rt.nodeName, address: c.rt.advertise, incarnation: 0 }, Date.now, o.maxEndpointsPerNode));
    const metrics = (this.metrics = new Metrics({ registry, cache: () => dns.forwarder.cache, failures: c.failures }));
    registerStateMetrics(metrics.prom, state.health);
    const link = setupLink(c);
    const dns = setupDns(c, { registry, metrics, link: link.link, native: (core) => setupNative(c, core, { registry, metrics }) });
    // With --registry etcd, etcd carries the node states instead of gossip and its sync.
    const etcd = o.registry === 'etcd' ? setupEtcd(c, { registry, metrics }) : null;
    const gossip = etcd ? gossipOff('the registry is etcd (--registry etcd): hosts meet through it, there is no gossip to join') : setupGossip(c, { registry, identity: state.identity, metrics });
    const lb = setupLb(c, { registry, metrics, link: link.link });
    const health = setupHealth(c, { local, podmanHealth: (id) => podman.source()?.podmanHealth(id) ?? Promise.resolve(undefined) });
    registerHealthMetrics(metrics.prom, health.checker);
    const podman = setupPodman(c, { local, dns, health: health.checker });
    this.api = setupApi(c, { registry, local, metrics, state, dns, link, gossip, etcd, podman, health, lb, startedAt: Date.now(), ready: () => this.ready });
    this.systemd = setupSystemd(c, { registry, dns, link });
    logServiceChanges(registry, this.log);
    // The registry itself has no setup (it is the core every part reads): its sources at start, its options.
    // (Held until start only: 50,000 endpoints from the file are the local node's once there.)
    let fromFile: LoadedConfig['endpoints'] | null = loaded.endpoints;
    const core: Part = {
      start: async () => {
        local.replaceSource('config', fromFile ?? []);
        fromFile = null;
        state.restore(local);
      },
      reload: (next, changed) => {
        if (changed.has('routableContainerIps') || changed.has('defaultMode')) registry.setOptions({ localNode: registry.localNode, routableContainerIps: next.routableContainerIps, defaultMode: next.defaultMode });
      },
    };
    // Listening sockets systemd keeps across restarts: the servers take theirs back by name.
    const sockets = systemdSockets(c.env, this.log);
    dns.server.sockets = this.api.server.sockets = lb.sockets = sockets;
    // Once every listener took its socket: the stored ones nothing took are closed.
    const adopted: Part = {
      start: async () => {
        settleEarly(sockets, this.log);
        sockets.release();
      },
    };
    const grace: Part = {
      start: async () =>
        dns.grace.start(startSyncs(c.opts, podman, gossip, etcd), (ms, missing) => this.log.info({ ms, missing }, missing.length
          ? `start grace over after ${ms} ms without the first ${missing.join(' and ')} sync: unknown names in the zone get NXDOMAIN again`
          : `first syncs done in ${ms} ms: unknown names in the zone get NXDOMAIN again (SERVFAIL until now)`)),
    };
    const cluster: Part = etcd ?? gossip;
    this.starting = [state, core, cluster, link, lb, dns, this.api, adopted, podman, grace, health];
    this.stopping = [cluster, podman, health, this.api, lb, state, this.systemd, dns, link];
  }

  async start(): Promise<void> {
    const { c, log } = this;
    const o = c.opts;
    // Before anything reaches the network: is another daemon on one of our API sockets?
    await this.api.guard();
    if (!c.priv.bindLowPorts && o.dnsListen.length === 0) {
      log.info('not running as root (no CAP_NET_BIND_SERVICE): serving DNS on 127.0.0.1:5353 and the API on loopback and a user socket; run as root for the cluster DNS address on port 53');
    }
    for (const [key, def] of Object.entries(OPTIONS) as Array<[OptionKey, (typeof OPTIONS)[OptionKey]]>) {
      if ('pending' in def && def.pending && this.c.origin[key] !== 'default') {
        c.problems.set(`pending:${key}`, `--${def.name} is accepted but has no effect yet: ${def.pending} is not in this version`);
      }
    }
    for (const part of this.starting) await part.start?.();
    this.ready = true;
    await this.systemd.start?.();
    log.info(
      { node: c.rt.nodeName, id: this.registry.localNode, version: VERSION, services: this.registry.serviceCount, endpoints: this.registry.endpointCount },
      `ready: node ${c.rt.nodeName}, ${plural(this.registry.serviceCount, 'service')}, zone ${o.domain}`,
    );
    limitHeapGrowth();
  }

  /**
   * SIGHUP: re-read the configuration, apply the options marked `live` in the option table, report
   * the others. One reload at a time, and at most one waiting: any number of signals during a
   * reload make one more. The file is checked in slices (loadConfigSliced): gossip and DNS keep
   * their turns while a large one is read.
   */
  readonly reload = oneAtATime(() => this.reloadNow());

  private async reloadNow(): Promise<{ applied: string[]; restart: string[] }> {
    let next: LoadedConfig;
    try {
      next = await loadConfigSliced(this.input);
    } catch (e) {
      this.log.error(e instanceof ConfigError ? {} : { err: e }, `reload failed, keeping the running configuration: ${(e as Error).message}`);
      throw e;
    }
    if (this.stopped) throw new Error('the daemon is stopping: the configuration read was not applied');
    const before = this.c.opts;
    const changed = (Object.keys(OPTIONS) as OptionKey[]).filter((k) => JSON.stringify(before[k]) !== JSON.stringify(next.options[k]));
    const live = changed.filter((k) => (OPTIONS[k] as { live?: true }).live);
    const applied = live.map((k) => OPTIONS[k].name);
    const restart = changed.filter((k) => !live.includes(k)).map((k) => OPTIONS[k].name);
    // Options that need a restart keep their running values until then.
    const after: Options = { ...before };
    for (const k of live) (after as Record<OptionKey, unknown>)[k] = next.options[k];
    for (const part of this.starting) part.check?.(after);
    this.c.opts = after;
    this.log.level = after.logLevel;
    const set = new Set(live);
    for (const part of this.starting) part.reload?.(after, set);
    if (this.local.replaceSource('config', next.endpoints)) applied.push('services');
    this.log.info({ applied, restart }, `reloaded: ${applied.length ? `applied ${applied.join(', ')}` : 'nothing changed'}${restart.length ? `; needs a restart: ${restart.join(', ')}` : ''}`);
    return { applied, restart };
  }

  /** `restart`: the process comes back at once (systemd said so): no leave, the link and resolved stay as they are. */
  async stop(restart = false): Promise<void> {
    this.ready = false;
    this.stopped = true;
    this.log.info(restart ? 'stopping for a restart: staying in the cluster, keeping the link' : 'stopping');
    for (const part of this.stopping) await part.stop?.(restart);
    this.log.info('stopped');
  }

  /** For systemd's STATUS= line. */
  counts(): StatusCounts {
    return this.systemd.counts();
  }

  /** A real query over UDP to our first DNS listener (the watchdog's liveness proof). */
  selfQuery(timeoutMs: number): Promise<boolean> {
    return this.systemd.selfQuery(timeoutMs);
  }

  status(): Record<string, unknown> {
    return this.api.status();
  }
}

/**
 * What the start grace waits for: the first Podman sync, and the first exchange with the cluster
 * when there is one to join and no persisted state from it.
 */
function startSyncs(o: Options, podman: PodmanSetup, gossip: GossipSetup, etcd: EtcdSetup | null): StartSync[] {
  const syncs: StartSync[] = [];
  const source = podman.source();
  if (source) syncs.push({ name: 'Podman', done: () => source.synced() });
  if (etcd) syncs.push({ name: 'etcd', done: () => etcd.synced() });
  const cluster = gossip.cluster();
  if (cluster && !cluster.stale && (o.join.length > 0 || o.joinToken !== '')) syncs.push({ name: 'cluster', done: () => cluster.membership.size > 1 });
  return syncs;
}
