import { isIP } from 'node:net';
import type { Answer as RR } from 'dns-packet';
import { canonicalIp, CidrSet, parseCidr, type Cidr } from '../net/cidr.js';
import { minimalAny } from './message.js';
import { reverseAddress } from './names.js';
import { positive, rotate, type Answer, type Question } from './records.js';

// Podman container names answered the way aardvark-dns does (docs/architecture.md#container-names):
// `<name>`, `<alias>` and `<name>.dns.podman`, TTL 0, scoped by the querier's network — a
// container sees only the containers it shares a network with, and only their IPs on those
// networks. The querier's network is found from its source address. The containers of other
// owners (rootless users' Podman, followed by a root daemon) are kept apart: their networks live
// in the user's own network namespace and may repeat the names and subnets of root's, so they
// answer only queriers known to be that user (`owner`), never by source address. Pure: the
// watcher feeds it.

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

/** Names → IPs and IP → names, per network, in the networks' order. */
interface Indexed {
  byNetwork: Map<string, Map<string, string[]>>;
  reverse: Map<string, Map<string, string[]>>;
}

function index(containers: ScopedContainer[]): Indexed {
  const byNetwork = new Map<string, Map<string, string[]>>();
  const reverse = new Map<string, Map<string, string[]>>();
  for (const c of containers) {
    for (const [net, ips] of Object.entries(c.networks)) {
      let names = byNetwork.get(net);
      if (!names) byNetwork.set(net, (names = new Map()));
      for (const name of c.names) names.set(name, [...(names.get(name) ?? []), ...ips]);
      let byIp = reverse.get(net);
      if (!byIp) reverse.set(net, (byIp = new Map()));
      for (const ip of ips) byIp.set(canonicalIp(ip), c.names);
    }
  }
  return { byNetwork, reverse };
}

/** `name` (lower case, no trailing dot) could be a container name or a container IP's PTR. */
export const maybeContainerName = (name: string): boolean => {
  const lower = name.toLowerCase().replace(/\.$/, '');
  return (lower !== '' && !lower.includes('.')) || lower.endsWith(SUFFIX) || reverseAddress(lower) !== null;
};

export class ContainerNames {
  /** network → subnets */
  private subnets = new Map<string, CidrSet>();
  /** network → name → IPs */
  private byNetwork = new Map<string, Map<string, string[]>>();
  /** network → IP → names (PTR) */
  private reverse = new Map<string, Map<string, string[]>>();
  /**
   * Called after every change (the native answer table follows, src/native/live-table.ts);
   * `hostView` when ownersKnown changed (what this host's own addresses see).
   */
  onChange: (hostView?: boolean) => void = () => undefined;
  /** What the last setNetworks()/setContainers() were given: the same again changes nothing. */
  private networksSeen = '';
  private containersSeen = '';
  /** Other owners (rootless users, by uid) → their containers' names, and what they were given last. */
  private owners = new Map<number, Indexed & { seen: string }>();

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
    ({ byNetwork: this.byNetwork, reverse: this.reverse } = index(containers));
    this.onChange();
  }

  /**
   * Another owner's containers (a rootless user's Podman, `uid`), answered only to queriers that
   * are that user; null when the daemon no longer follows that user's Podman. While any owner is
   * known, this host's own addresses no longer see every network by address alone (ownersKnown).
   */
  setOwnerContainers(uid: number, containers: ScopedContainer[] | null): void {
    const before = this.owners.size;
    if (containers === null) {
      if (!this.owners.delete(uid)) return;
    } else {
      const seen = JSON.stringify(containers.map((c) => [c.names, c.networks]));
      if (this.owners.get(uid)?.seen === seen) return;
      // Without the user's network list, its networks in name order: the first that has a name answers.
      const { byNetwork, reverse } = index(containers);
      const sorted = <V>(m: Map<string, V>): Map<string, V> => new Map([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      this.owners.set(uid, { byNetwork: sorted(byNetwork), reverse: sorted(reverse), seen });
    }
    this.onChange(before === 0 || this.owners.size === 0);
  }

  /** Some other owner's containers are known: a query from this host's own address must say who asks. */
  get ownersKnown(): boolean {
    return this.owners.size > 0;
  }

  /**
   * The answer for a container name asked by `client`, or null when it is not one we know.
   * `host`: the client is this host itself, which sees the containers of every network;
   * `owner`: the uid the query came from, when known (a rootless user's querier sees its own
   * user's containers, of every network of that user, and nothing else);
   * `rotation`: the answer starts at record `rotation % count`, as zone answers do.
   */
  answer(q: Question, client: string, { host = false, rotation = 0, owner }: { host?: boolean; rotation?: number; owner?: number } = {}): Answer | null {
    const lower = q.name.toLowerCase().replace(/\.$/, '');
    const type = q.type.toUpperCase();
    const view = this.view(client, host, owner);
    const ptr = reverseAddress(lower);
    if (ptr) return this.pointer(q, type, ptr, view, rotation);
    const podmanSuffix = lower.endsWith(SUFFIX);
    const name = podmanSuffix ? lower.slice(0, -SUFFIX.length) : lower;
    if (!name || name.includes('.')) return null;
    const ips: string[] = [];
    for (const names of view.networks) {
      for (const ip of names.get(name) ?? []) if (!ips.includes(ip)) ips.push(ip);
      // Seeing every network: the first that has the name answers.
      if (view.all && ips.length > 0) break;
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

  /**
   * The networks whose names `client` sees, each as name → IPs with its IP → names: another
   * owner's querier sees all of that owner's; this host all of the daemon's own Podman's; any
   * other client those of the daemon's own networks its address is on.
   */
  private view(client: string, host: boolean, owner: number | undefined): { all: boolean; networks: Array<Map<string, string[]>>; reverse: Array<Map<string, string[]>> } {
    const other = owner === undefined ? undefined : this.owners.get(owner);
    if (other) return { all: true, networks: [...other.byNetwork.values()], reverse: [...other.reverse.values()] };
    const nets = [...this.subnets].filter(([, set]) => host || set.has(client)).map(([net]) => net);
    return { all: host, networks: nets.map((n) => this.byNetwork.get(n) ?? new Map()), reverse: nets.map((n) => this.reverse.get(n) ?? new Map()) };
  }

  /** PTR of a container IP on a network the querier shares: the container's names, as aardvark answers. */
  private pointer(q: Question, type: string, ip: string, view: { reverse: Array<Map<string, string[]>> }, rotation: number): Answer | null {
    const key = canonicalIp(ip);
    for (const byIp of view.reverse) {
      const names = byIp.get(key);
      if (!names) continue;
      if (type === 'ANY') return positive([minimalAny(q.name)]);
      const answers = type === 'PTR' ? names.map((n) => ({ type: 'PTR', name: q.name, ttl: 0, class: 'IN', data: `${n}.` }) as RR) : [];
      return { rcode: 'NOERROR', authoritative: true, answers: rotate(answers, rotation), authorities: [], additionals: [] };
    }
    return null;
  }
}
