import { ConfigError } from '../config/errors.js';
import type { Options } from '../config/options.js';
import { cidrContains, parseCidr, type Cidr } from '../net/cidr.js';
import type { VipAssigner } from '../registry/registry.js';
import { LB_DEFAULTS, type LbOptions } from './manager.js';
import { parseIngress, type IngressEntry } from './plan.js';
import { allocateVips } from './vip.js';

// The daemon's options turned into what the load balancer needs; kept here so the daemon only
// wires.

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
