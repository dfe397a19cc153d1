import { isIP } from 'node:net';
import type { Answer as RR } from 'dns-packet';
import { canonicalIp, CidrSet, parseCidr, type Cidr } from '../net/cidr.js';
import { minimalAny } from './message.js';
import { reverseAddress } from './names.js';
import { positive, rotate, type Answer, type Question } from './records.js';

// Podman container names answered the way aardvark-dns does (docs/architecture.md#container-names):
// `<name>`, `<alias>` and `<name>.dns.podman`, TTL 0, scoped by the querier's network — a
// container sees only the containers it shares a network with, and only their IPs on those
// networks. The querier's network is found from its source address. Pure: the watcher feeds it.

export interface ScopedContainer {
  names: string[];
  /** Network name → the container's IPs on it. */
  networks: Record<string, string[]>;
}

const SUFFIX = '.dns.podman';

/** The SOA of NODATA answers under `dns.podman` (TTL 0 like the names: nothing is cached). */
export const PODMAN_SOA: RR = {
  type: 'SOA', name: 'dns.podman', ttl: 0, class: 'IN',
  data: { mname: 'dns.podman', rname: 'hostmaster.dns.podman', serial: 1, refresh: 7200, retry: 1800, expire: 86400, minimum: 0 },
} as RR;

export class ContainerNames {
  /** network → subnets */
  private subnets = new Map<string, CidrSet>();
  /** network → name → IPs */
  private byNetwork = new Map<string, Map<string, string[]>>();
  /** network → IP → names (PTR) */
  private reverse = new Map<string, Map<string, string[]>>();
  /** Called after every change (the native answer table follows, src/native/live-table.ts). */
  onChange: () => void = () => undefined;
  /** What the last setNetworks()/setContainers() were given: the same again changes nothing. */
  private networksSeen = '';
  private containersSeen = '';

  /** Per network, in the order answer() tries them: its subnets, names → IPs, IP → names. */
  *scopes(): Generator<{ subnets: readonly Cidr[]; names: ReadonlyMap<string, string[]>; reverse: ReadonlyMap<string, string[]> }> {
    for (const [net, set] of this.subnets) {
      yield { subnets: set.list, names: this.byNetwork.get(net) ?? new Map(), reverse: this.reverse.get(net) ?? new Map() };
    }
  }

  setNetworks(networks: Array<{ name: string; subnets: string[] }>): void {
    const seen = JSON.stringify(networks.map((n) => [n.name, n.subnets]));
    if (seen === this.networksSeen) return;
    this.networksSeen = seen;
    const next = new Map<string, CidrSet>();
    for (const n of networks) {
      const cidrs = n.subnets.map((s) => parseCidr(s)).filter((c) => c !== null);
      if (cidrs.length) next.set(n.name, new CidrSet(cidrs));
    }
    this.subnets = next;
    this.onChange();
  }

  setContainers(containers: ScopedContainer[]): void {
    const seen = JSON.stringify(containers.map((c) => [c.names, c.networks]));
    if (seen === this.containersSeen) return;
    this.containersSeen = seen;
    const next = new Map<string, Map<string, string[]>>();
    const reverse = new Map<string, Map<string, string[]>>();
    for (const c of containers) {
      for (const [net, ips] of Object.entries(c.networks)) {
        let names = next.get(net);
        if (!names) next.set(net, (names = new Map()));
        for (const name of c.names) names.set(name, [...(names.get(name) ?? []), ...ips]);
        let byIp = reverse.get(net);
        if (!byIp) reverse.set(net, (byIp = new Map()));
        for (const ip of ips) byIp.set(canonicalIp(ip), c.names);
      }
    }
    this.byNetwork = next;
    this.reverse = reverse;
    this.onChange();
  }

  /**
   * The answer for a container name asked by `client`, or null when it is not one we know.
   * `host`: the client is this host itself, which sees the containers of every network;
   * `rotation`: the answer starts at record `rotation % count`, as zone answers do.
   */
  answer(q: Question, client: string, { host = false, rotation = 0 }: { host?: boolean; rotation?: number } = {}): Answer | null {
    const lower = q.name.toLowerCase().replace(/\.$/, '');
    const type = q.type.toUpperCase();
    const ptr = reverseAddress(lower);
    if (ptr) return this.pointer(q, type, ptr, client, host, rotation);
    const podmanSuffix = lower.endsWith(SUFFIX);
    const name = podmanSuffix ? lower.slice(0, -SUFFIX.length) : lower;
    if (!name || name.includes('.')) return null;
    const ips: string[] = [];
    for (const [net, set] of this.subnets) {
      if (!host && !set.has(client)) continue;
      for (const ip of this.byNetwork.get(net)?.get(name) ?? []) if (!ips.includes(ip)) ips.push(ip);
      // This host sees every network; the first that has the name answers.
      if (host && ips.length > 0) break;
    }
    if (ips.length === 0) return null;
    if (type === 'ANY') return positive([minimalAny(q.name)]);
    const answers: RR[] = [];
    for (const ip of ips) {
      const t = isIP(ip) === 6 ? 'AAAA' : 'A';
      if (type === t) answers.push({ type: t, name: q.name, ttl: 0, class: 'IN', data: ip } as RR);
    }
    // NODATA carries the SOA, as every NODATA does, for names under dns.podman.
    const soa = answers.length === 0 && podmanSuffix ? [PODMAN_SOA] : [];
    return { rcode: 'NOERROR', authoritative: true, answers: rotate(answers, rotation), authorities: soa, additionals: [] };
  }

  /** PTR of a container IP on a network the querier shares: the container's names, as aardvark answers. */
  private pointer(q: Question, type: string, ip: string, client: string, host: boolean, rotation: number): Answer | null {
    const key = canonicalIp(ip);
    for (const [net, set] of this.subnets) {
      if (!host && !set.has(client)) continue;
      const names = this.reverse.get(net)?.get(key);
      if (!names) continue;
      if (type === 'ANY') return positive([minimalAny(q.name)]);
      const answers = type === 'PTR' ? names.map((n) => ({ type: 'PTR', name: q.name, ttl: 0, class: 'IN', data: `${n}.` }) as RR) : [];
      return { rcode: 'NOERROR', authoritative: true, answers: rotate(answers, rotation), authorities: [], additionals: [] };
    }
    return null;
  }
}
