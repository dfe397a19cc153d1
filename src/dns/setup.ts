import type { Metrics } from '../api/metrics.js';
import { showHostPort, type HostPort } from '../config/kinds.js';
import type { Options } from '../config/options.js';
import type { LinkInfo } from '../lb/link.js';
import type { NativeDns } from '../native/dns.js';
import { followHostAddresses } from '../net/host-addresses.js';
import type { Context, Part } from '../part.js';
import type { Registry } from '../registry/registry.js';
import { ClientPolicy } from './clients.js';
import { Forwarder, type ForwarderOptions } from './forwarder.js';
import { GatewayListeners } from './gateways.js';
import { DnsHandler } from './handler.js';
import { queryInProcess } from './query.js';
import { StartGrace } from './start-grace.js';
import { QueryLog } from './querylog.js';
import { defaultUpstreams } from './resolvconf.js';
import { limitReply, ResponseRateLimiter } from './rrl.js';
import { QuerierOwners } from './querier-owner.js';
import { ContainerNames } from './scoped.js';
import { BindError, DEFAULT_SERVER_OPTIONS, DnsServer, type DnsServerOptions } from './server.js';
import { ZoneState, type ZoneOptions } from './zone.js';

// DNS: the zone over the registry's views, who may recurse, forwarding, the UDP+TCP listeners
// (the native fast path serves UDP when it is loaded) and the Podman gateways served too.

/** What the native fast path is built from. */
export interface DnsCore {
  zone: ZoneState;
  clients: ClientPolicy;
  handler: DnsHandler;
  names: ContainerNames;
  /** --dns-rrl for the replies JS sends. */
  udpLimit: (ip: string, reply: Buffer) => Buffer | null;
  /** Fills the native cache of forwarded names with what it keeps. */
  forwarder: Forwarder;
  /** At start: SERVFAIL instead of NXDOMAIN for names not known yet (--start-grace). */
  grace: StartGrace;
}

export interface DnsSetup extends DnsCore, Part {
  server: DnsServer;
  gateways: GatewayListeners;
  /** The native fast path; started, reloaded and stopped with DNS. */
  native: NativeDns & Part;
  /** A question answered in-process, as a loopback client over TCP would get it. */
  query(name: string, type: string, client?: string): Promise<Record<string, unknown>>;
}

export interface DnsDeps {
  registry: Registry;
  metrics: Metrics;
  /** The daemon's link, once it is set up (the cluster DNS address is served on it). */
  link: () => LinkInfo | null;
  /** Builds the native fast path over the JS one (it answers what the native side hands over). */
  native: (core: DnsCore) => NativeDns & Part;
}

/** How often this host's own addresses are re-read (they also are when Podman's gateways change). */
const HOST_ADDRESS_INTERVAL_MS = 10_000;

export function setupDns(c: Context, d: DnsDeps): DnsSetup {
  const { log, rt, problems } = c;
  const { metrics } = d;
  let opts = c.opts;
  const forwarderOptions = (o: Options, own: HostPort[]): ForwarderOptions => ({
    upstreams: o.upstreamDns.length > 0 ? o.upstreamDns : defaultUpstreams([...own, { host: rt.dnsAddress, port: 53 }]),
    timeoutMs: o.upstreamTimeout,
    cacheSize: o.cacheSize,
    forwardAllow: o.forwardAllow,
    serveStaleMs: o.serveStale,
  });
  const zone = new ZoneState(d.registry, zoneOptions(opts, rt.dnsAddress));
  const clients = new ClientPolicy(opts.allowRecursion);
  const names = new ContainerNames();
  const forwarder = new Forwarder(forwarderOptions(opts, []), {
    upstreamFailed: (upstream, reason) => {
      metrics.upstreamFailed(upstream);
      log.warn({ upstream, reason }, `upstream DNS server ${upstream} is failing (${reason}); trying the next one`);
    },
    upstreamRecovered: (upstream) => log.info({ upstream }, `upstream DNS server ${upstream} answers again`),
  });
  const queryLog = new QueryLog(log, metrics.prom);
  queryLog.configure(opts.queryLog, opts.queryLogFile);
  const grace = new StartGrace(opts.startGrace);
  const owners = new QuerierOwners();
  const handler = new DnsHandler({ zone, clients, forwarder, metrics, log, containerNames: names, querierUid: (q) => owners.uid(q), queryLog, grace });
  let rrl: ResponseRateLimiter | null = null;
  const udpLimit = (ip: string, reply: Buffer): Buffer | null => limitReply(rrl, ip, reply, (r) => metrics.shed(r));
  const native = d.native({ zone, clients, handler, names, udpLimit, forwarder, grace });
  if (native.queryLog) queryLog.attachNative(native.queryLog);
  const server = new DnsServer(handler, { ...DEFAULT_SERVER_OPTIONS, ...tcpOptions(opts), udpLimit }, log, native.udpBinder, (reason) => metrics.shed(reason));
  const gateways = new GatewayListeners(server, log);
  const setRrl = (o: Options): void => {
    rrl = o.dnsRrl > 0 ? new ResponseRateLimiter(o.dnsRrl, o.dnsRrlSlip) : null;
  };
  setRrl(opts);
  let stopHostAddresses = (): void => undefined;

  /** Where to listen, and whether the user chose it (then a failed bind stops the start). */
  const listenPlan = (): { addresses: HostPort[]; explicit: boolean } => {
    if (opts.dnsListen.length > 0) return { addresses: opts.dnsListen, explicit: true };
    if (!c.priv.bindLowPorts) return { addresses: [{ host: '127.0.0.1', port: 5353 }], explicit: false };
    const addresses: HostPort[] = [];
    if (d.link()) addresses.push({ host: rt.dnsAddress, port: 53 });
    addresses.push({ host: '127.0.0.1', port: 53 });
    return { addresses, explicit: false };
  };

  return {
    zone, clients, handler, names, udpLimit, forwarder, grace, server, gateways, native,
    query: (name, type, client) => queryInProcess(handler, name, type, client),
    async start() {
      // Queries from this host's own addresses may recurse and see every network's container names.
      stopHostAddresses = followHostAddresses((ips, prune) => clients.setHostAddresses(ips, prune), HOST_ADDRESS_INTERVAL_MS);
      const listen = listenPlan();
      forwarder.configure(forwarderOptions(opts, listen.addresses));
      if (forwarder.upstreams.length === 0) {
        problems.set('upstreams', 'no upstream DNS servers (none given and none usable in /etc/resolv.conf): names outside the zone get SERVFAIL');
      }
      // Stored sockets hold the queries sent while the daemon restarted: the native threads start
      // reading them with the persisted state's answers already installed.
      await native.start();
      await native.tableReady;
      for (const addr of listen.addresses) {
        try {
          const bound = await server.listen(addr);
          log.info({ address: showHostPort(bound) }, `serving DNS on ${showHostPort(bound)} (udp+tcp)`);
        } catch (e) {
          if (!(e instanceof BindError) || listen.explicit) throw e;
          problems.set(`dns:${showHostPort(addr)}`, e.message);
        }
      }
      if (server.addresses.length === 0) throw new Error('no DNS address could be bound; see the errors above, or give --dns-listen');
    },
    reload(next, changed) {
      opts = next;
      // Only what the reload changed moves: the same settings again rebuild no table.
      if (zone.configure(zoneOptions(next, rt.dnsAddress))) native.table?.schedule();
      clients.configure(next.allowRecursion);
      forwarder.configure(forwarderOptions(next, server.addresses));
      server.configure(tcpOptions(next));
      setRrl(next);
      queryLog.configure(next.queryLog, next.queryLogFile);
      native.reload?.(next, changed);
    },
    async stop(restart) {
      // The next process answers from this table until its own is built (while the sockets still answer).
      if (restart) native.saveTable?.();
      grace.end();
      stopHostAddresses();
      await gateways.close();
      await server.close();
      await native.stop?.(false);
      queryLog.close();
      zone.close();
    },
  };
}

const zoneOptions = (o: Options, nameserver: string): ZoneOptions => ({
  domain: o.domain,
  ttl: o.ttl,
  negativeTtl: o.negativeTtl,
  nameserver,
  failOpen: o.failOpen,
  preferLocal: o.preferLocal,
  udpAnswerLimit: o.udpAnswerLimit,
});

const tcpOptions = (o: Options): Partial<DnsServerOptions> => ({
  tcpIdleTimeoutMs: o.tcpIdleTimeout, tcpReadTimeoutMs: o.tcpReadTimeout, maxTcpConnections: o.tcpMaxConnections, maxTcpPerClient: o.tcpMaxConnectionsPerClient,
});
