import * as packet from 'dns-packet';
import { pino } from 'pino';
import { ClientPolicy } from '../../src/dns/clients.js';
import { Forwarder } from '../../src/dns/forwarder.js';
import { DnsHandler } from '../../src/dns/handler.js';
import { ZoneState } from '../../src/dns/zone.js';
import { parseCidr } from '../../src/net/cidr.js';
import { loadAddon, type Addon } from '../../src/native/index.js';
import { CLIENT_HOST, CLIENT_LOCAL, CLIENT_RECURSION, compileTable, type ClientClass } from '../../src/native/table.js';
import { ContainerNames } from '../../src/dns/scoped.js';
import { Registry } from '../../src/registry/registry.js';
import type { Endpoint } from '../../src/registry/types.js';
import { nativeSkip } from './native.js';
import { ep, node } from './registry.js';

// The real DNS components of one daemon, in process: the registry (this node and a remote one),
// the zone, the client policy with two bridge subnets, the JS handler, and the native addon
// answering from a table compiled from the same registry.

const loaded = loadAddon();
export const addon: Addon | null = loaded.addon;
/** tap skip reason when the addon is not built (no cargo on this machine); see helpers/native.ts. */
export const skip: string | false = nativeSkip();

export const BRIDGES = ['10.88.0.0/16', '10.89.0.0/16'];
export const CLIENTS = ['127.0.0.1', '10.88.0.7', '10.89.3.4', '192.0.2.50', '::1'];

const port = (n: number, protocol: 'tcp' | 'udp' = 'tcp') => ({ port: n, protocol });

export function localEndpoints(): Endpoint[] {
  const big = Array.from({ length: 60 }, (_, i) => ep('big', `10.1.${i >> 4}.${(i & 15) + 1}`, { id: `big${i}`, hostname: `big-${i}`, ports: { http: port(80) } }));
  return [
    ep('web', '10.0.0.1', { id: 'w1', hostname: 'web-1', ports: { http: port(8080), metrics: port(9090) }, weight: 20 }),
    ep('web', ['10.0.0.2', 'fd00::2'], { id: 'w2', hostname: 'web-2', ports: { http: port(8080) } }),
    ep('web', '10.0.0.9', { id: 'w9', hostname: 'web-9', healthy: false }),
    ep('dns', '10.0.0.3', { id: 'd1', hostname: 'dns-1', namespace: 'infra', ports: { dns: port(53, 'udp') } }),
    ep('db', 'fd00::10', { id: 'db1', hostname: 'db-1', namespace: 'infra', ttl: 30 }),
    ep('svc', '10.0.0.40', { id: 's1', hostname: 'svc', namespace: 'svc' }),
    ep('api', '10.0.0.50', { id: 'a1', hostname: 'api-1', mode: 'vip', ports: { http: port(80) } }),
    ep('api', '10.0.0.51', { id: 'a2', hostname: 'api-2', mode: 'vip', ports: { http: port(80) } }),
    ...big,
  ];
}

export function remoteEndpoints(): Endpoint[] {
  return [
    ep('web', '10.0.1.1', { id: 'r1', hostname: 'web-r1', ports: { http: port(8080) } }),
    ep('web', '10.0.1.2', { id: 'r2', hostname: 'web-r2', ports: { http: port(8080) } }),
    ep('down', '10.0.1.3', { id: 'r3', hostname: 'down-1', healthy: false }),
    ep('big', '10.2.0.1', { id: 'bigr', hostname: 'big-r', ports: { http: port(80) } }),
  ];
}

export interface World {
  registry: Registry;
  forwarder: Forwarder;
  zone: ZoneState;
  clients: ClientPolicy;
  handler: DnsHandler;
  containerNames: ContainerNames;
  /** Compiles the table from the registry as it is now and installs it in the addon. */
  install(): Buffer;
  close(): void;
}

export interface WorldOptions {
  failOpen?: boolean;
  preferLocal?: boolean;
  udpAnswerLimit?: number;
  /** Forwarding: the upstream (default: a closed port), cache size (default 0), --forward-allow. */
  upstream?: { host: string; port: number };
  cacheSize?: number;
  forwardAllow?: string[];
}

export function world(o: WorldOptions = {}): World {
  const registry = new Registry({ localNode: 'me', routableContainerIps: false, defaultMode: 'dnsrr' });
  // vip-mode services get a VIP, as the load balancer assigns them (issue 6).
  registry.setVipAssigner({ wants: (v) => v.mode === 'vip', allocate: (keys) => new Map(keys.map((k, i) => [k, `10.223.1.${i + 1}`])) });
  registry.apply(node('me', 1, localEndpoints()));
  registry.apply(node('other', 1, remoteEndpoints(), { address: '192.0.2.99' }));
  const zone = new ZoneState(registry, {
    domain: 'cluster.local', ttl: 5, negativeTtl: 7, nameserver: '10.223.0.10', failOpen: o.failOpen ?? false, preferLocal: o.preferLocal ?? true, udpAnswerLimit: o.udpAnswerLimit ?? 0,
  });
  const clients = new ClientPolicy(['127.0.0.0/8', '::1/128'].map((c) => parseCidr(c)!));
  clients.setBridgeSubnets(BRIDGES.map((c) => parseCidr(c)!));
  const forwarder = new Forwarder({ upstreams: [o.upstream ?? { host: '127.0.0.1', port: 9 }], timeoutMs: o.upstream ? 1000 : 200, cacheSize: o.cacheSize ?? 0, forwardAllow: o.forwardAllow ?? [] });
  // Podman container names on two networks, the bridges above.
  const containerNames = new ContainerNames();
  containerNames.setNetworks([{ name: 'n1', subnets: ['10.88.0.0/16'] }, { name: 'n2', subnets: ['10.89.0.0/16'] }]);
  containerNames.setContainers([
    { names: ['db', 'database'], networks: { n1: ['10.88.0.20'], n2: ['10.89.0.30', 'fd89::30'] } },
    { names: ['cache'], networks: { n1: ['10.88.0.21'] } },
    { names: ['v6only'], networks: { n2: ['fd89::31'] } },
    { names: ['web-1'], networks: { n2: ['10.0.0.1'] } },
  ]);
  const handler = new DnsHandler({ zone, clients, forwarder, metrics: { query: () => undefined, malformed: () => undefined }, log: pino({ level: 'silent' }), containerNames });
  const classes = (): ClientClass[] => [
      ...['127.0.0.0/8', '::1/128'].map((c) => ({ cidr: parseCidr(c)!, flags: CLIENT_LOCAL })),
      ...clients.recursionCidrs.map((cidr) => ({ cidr, flags: CLIENT_RECURSION })),
      ...clients.bridgeSubnets.map((cidr) => ({ cidr, flags: CLIENT_RECURSION | CLIENT_LOCAL })),
      ...clients.hostAddresses.map((cidr) => ({ cidr, flags: CLIENT_RECURSION | CLIENT_LOCAL | CLIENT_HOST })),
  ];
  const install = (): Buffer => {
    const table = compileTable({ zone, services: registry.services(), clients: classes(), containers: containerNames });
    addon!.setTable(table);
    return table;
  };
  return { registry, forwarder, zone, clients, handler, containerNames, install, close: () => zone.close() };
}

type Section = 'answers' | 'authorities' | 'additionals';

/**
 * A response with the order of records inside each section ignored (rotation reorders them):
 * the header, the question and every section as a sorted list of records.
 */
export function canonical(b: Buffer): string {
  const p = packet.decode(b);
  const sec = (s: Section) => (p[s] ?? []).map((r) => JSON.stringify(r, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v))).sort();
  return JSON.stringify({ header: b.subarray(0, 12).toString('hex'), q: p.questions, an: sec('answers'), ns: sec('authorities'), ar: sec('additionals'), length: b.length });
}
