import type { Metrics } from '../api/metrics.js';
import { ConfigError } from '../config/errors.js';
import type { Options } from '../config/options.js';
import { cidrContains, parseCidr, type Cidr } from '../net/cidr.js';
import { NO_SOCKET_STORE, type SocketStore } from '../net/sockets.js';
import type { Context, Part } from '../part.js';
import type { Registry, VipAssigner } from '../registry/registry.js';
import { addAddress, ensureLink, removeAddress, removeLink, type LinkInfo } from './link.js';
import { LB_DEFAULTS, LbManager, type LbOptions } from './manager.js';
import { registerLbMetrics } from './metrics.js';
import { relayAddon } from './relay-choice.js';
import { parseIngress, type IngressEntry } from './plan.js';
import { allocateVips } from './vip.js';

// The load balancer's part (docs/architecture.md#load-balancer) and the daemon's link that holds
// the cluster DNS address and the VIPs; the daemon's options turned into what they need.

export function ingressEntries(list: string[]): IngressEntry[] {
  return list.map((text) => {
    const e = parseIngress(text);
    if (!e) throw new ConfigError('ERR_CONFIG_BAD_VALUE', `--ingress ${JSON.stringify(text)}: expected <namespace>/<service>:<port> or <service>:<port> (port: a name or a number)`);
    return e;
  });
}

export function lbOptions(o: Options, hostAddress: string): LbOptions {
  return {
    policy: o.lbPolicy,
    preferLocal: o.lbPreferLocal,
    failOpen: o.failOpen,
    idleTimeoutMs: o.lbIdleTimeout,
    udpIdleTimeoutMs: o.lbUdpTimeout,
    udpMaxSessions: o.lbUdpMaxSessions,
    maxConnections: o.lbMaxConnections,
    proxyProtocol: o.lbProxyProtocol,
    ingress: ingressEntries(o.ingress),
    hostAddress,
    ejectMs: LB_DEFAULTS.ejectMs,
    connectTimeoutMs: LB_DEFAULTS.connectTimeoutMs,
  };
}

export function vipAssigner(range: Cidr, lbAll: boolean): VipAssigner {
  return {
    wants: (v) => (lbAll || v.mode === 'vip') && Object.keys(v.ports).length > 0,
    allocate: (keys) => allocateVips(keys, range),
  };
}

const LOOPBACK = parseCidr('127.0.0.0/8')!;

/** A service range inside 127.0.0.0/8 is bindable without a link (tests, development). */
export function loopbackRange(range: Cidr): boolean {
  return range.family === 4 && range.prefix >= 8 && cidrContains(LOOPBACK, range.bytes);
}

export interface LinkSetup extends Part {
  /** The link, once set up; null without one (--link none, no CAP_NET_ADMIN, or it failed). */
  link(): LinkInfo | null;
}

export function setupLink(c: Context): LinkSetup {
  const { opts: o, rt, log } = c;
  let link: LinkInfo | null = null;
  return {
    link: () => link,
    async start() {
      if (o.link === 'none') return;
      if (!c.priv.netAdmin) {
        log.info(`no CAP_NET_ADMIN: not creating link ${o.link} with the cluster DNS address ${rt.dnsAddress}`);
        return;
      }
      try {
        link = await ensureLink(o.link);
        await addAddress(o.link, rt.dnsAddress);
        log.info({ link: o.link, type: link.type, address: rt.dnsAddress }, `link ${o.link} (${link.type}) holds the cluster DNS address ${rt.dnsAddress}`);
      } catch (e) {
        c.problems.set('link', `could not set up link ${o.link} with ${rt.dnsAddress}: ${(e as Error).message}`);
      }
    },
    async stop(restart) {
      if (!link || link.type === 'existing' || restart) return;
      try {
        await removeLink(link.name);
      } catch (e) {
        log.warn({ err: e }, `could not remove link ${link.name}: ${(e as Error).message}`);
      }
    },
  };
}

export interface LbSetup extends Part {
  /** The running load balancer; null when it is off. */
  manager(): LbManager | null;
  /** Where VIP sockets come from and are kept across restarts (set before start). */
  sockets: SocketStore;
}

/**
 * VIPs for vip-mode services, with listeners on them. VIPs need the daemon's link; a service
 * range inside 127.0.0.0/8 works without one (loopback answers for all of it).
 */
export function setupLb(c: Context, d: { registry: Registry; metrics: Metrics; link: () => LinkInfo | null }): LbSetup {
  let opts = c.opts;
  let lb: LbManager | null = null;
  registerLbMetrics(d.metrics.prom, () => lb);
  const options = (o: Options): LbOptions => lbOptions(o, c.rt.advertise);
  const setup: LbSetup = {
    manager: () => lb,
    sockets: NO_SOCKET_STORE,
    async start() {
      const o = opts;
      const onLoopback = loopbackRange(o.serviceCidr);
      const linkName = d.link()?.name;
      if (!linkName && !onLoopback) {
        const vipServices = [...d.registry.services()].some((v) => v.mode === 'vip') || o.lbAll || o.defaultMode === 'vip';
        if (vipServices) c.problems.set('lb', `the load balancer is off (no link ${o.link} for the VIPs: needs CAP_NET_ADMIN); vip-mode services are answered with their endpoints' addresses`);
        return;
      }
      const addrs = linkName && !onLoopback ? { add: (ip: string) => addAddress(linkName, ip), remove: (ip: string) => removeAddress(linkName, ip) } : null;
      // Before the first listener starts the relay's threads.
      const relay = relayAddon(false);
      if (typeof relay?.relaySetThreads === 'function') relay.relaySetThreads(o.lbThreads);
      lb = new LbManager(d.registry, options(o), addrs, c.log, setup.sockets);
      d.registry.setVipAssigner(vipAssigner(o.serviceCidr, o.lbAll));
      await lb.start();
    },
    check: (next) => void ingressEntries(next.ingress),
    reload(next) {
      const before = opts;
      opts = next;
      if (lb && JSON.stringify(options(before)) !== JSON.stringify(options(next))) void lb.configure(options(next));
    },
    async stop(restart) {
      await lb?.stop(restart);
    },
  };
  return setup;
}
