import { isIP } from 'node:net';
import type { Answer as RR } from 'dns-packet';
import type { ReverseEntry } from '../registry/registry.js';
import { servable, type ServiceView, type ViewEndpoint } from '../registry/view.js';
import { locate, reverseAddress, zoneLabels, type NameLookups } from './names.js';

// Record building (SPEC §3): a question and the zone view in, the sections of the answer out.
// No sockets and no wire format here, so every row of the table is tested directly.

export const DNS_VERSION = '1.1.0';

export type Rcode = 'NOERROR' | 'FORMERR' | 'SERVFAIL' | 'NXDOMAIN' | 'NOTIMP' | 'REFUSED';

export interface Question {
  name: string;
  type: string;
  class?: string;
}

export interface Answer {
  rcode: Rcode;
  authoritative: boolean;
  answers: RR[];
  authorities: RR[];
  additionals: RR[];
}

export interface ZoneSettings {
  /** Lower case, no trailing dot. */
  domain: string;
  ttl: number;
  negativeTtl: number;
  /** Address of `ns.dns.<zone>`: the cluster DNS address. */
  nameserver: string;
  serial: number;
  failOpen: boolean;
  preferLocal: boolean;
}

/** What records read from the registry (Registry implements it). */
export interface ZoneSource {
  service(namespace: string, name: string): ServiceView | undefined;
  hasNamespace(namespace: string): boolean;
  readonly serviceCount: number;
  lookupAddress(ip: string): readonly ReverseEntry[];
}

export interface Zone {
  settings: ZoneSettings;
  source: ZoneSource;
  /** Rotation offset for a name; the server advances it per response. */
  rotation(key: string): number;
}

export interface Client {
  /** The query comes from this host or one of its bridge subnets (prefer-local applies). */
  local: boolean;
}

/** The in-zone or reverse answer, or null when the name is not ours (forward it). */
export function answerQuestion(q: Question, zone: Zone, client: Client): Answer | null {
  const lower = q.name.toLowerCase().replace(/\.$/, '');
  const labels = zoneLabels(lower, zone.settings.domain);
  if (labels === null) return reverse(q, lower, zone);
  return new Builder(q, zone, client).build(labels);
}

class Builder {
  private readonly answers: RR[] = [];
  private readonly additionals: RR[] = [];
  private readonly s: ZoneSettings;
  private readonly type: string;

  constructor(
    private readonly q: Question,
    private readonly zone: Zone,
    private readonly client: Client,
  ) {
    this.s = zone.settings;
    this.type = q.type.toUpperCase();
  }

  private wants(type: string): boolean {
    return this.type === type || this.type === 'ANY';
  }

  build(labels: string[]): Answer {
    const { s } = this;
    const target = locate(labels, lookupsOf(this.zone.source));
    switch (target.kind) {
      case 'none':
        return this.negative('NXDOMAIN');
      case 'empty':
        break;
      case 'apex':
        if (this.wants('SOA')) this.answers.push(this.soa(s.ttl));
        if (this.wants('NS')) {
          this.answers.push(this.rr('NS', this.q.name, s.ttl, `ns.dns.${s.domain}`));
          this.address(this.additionals, `ns.dns.${s.domain}`, [s.nameserver], s.ttl, true);
        }
        break;
      case 'version':
        if (this.wants('TXT')) this.answers.push(this.rr('TXT', this.q.name, s.ttl, [DNS_VERSION]));
        break;
      case 'nameserver':
        this.address(this.answers, this.q.name, [s.nameserver], s.ttl);
        break;
      case 'service': {
        const view = this.view(target.namespace, target.service);
        const ttl = view.ttl ?? s.ttl;
        const eps = this.ordered(view);
        if (view.vip) this.address(this.answers, this.q.name, [view.vip], ttl);
        else this.address(this.answers, this.q.name, unique(eps.flatMap((e) => e.reach!.addresses)), ttl);
        if (this.wants('SRV')) this.srv(view, eps, ttl);
        break;
      }
      case 'host': {
        const view = this.view(target.namespace, target.service);
        const eps = this.orderedHost(view, target.host);
        this.address(this.answers, this.q.name, unique(eps.flatMap((e) => e.reach!.addresses)), view.ttl ?? s.ttl);
        break;
      }
      case 'srv': {
        const view = this.view(target.namespace, target.service);
        if (this.wants('SRV')) this.srv(view, this.ordered(view), view.ttl ?? s.ttl, target.port, target.protocol);
        break;
      }
    }
    if (this.answers.length === 0) return this.negative('NOERROR');
    return { rcode: 'NOERROR', authoritative: true, answers: this.answers, authorities: [], additionals: this.additionals };
  }

  private view(namespace: string, service: string): ServiceView {
    return this.zone.source.service(namespace, service)!;
  }

  /** Servable endpoints, this host's first when prefer-local applies, each group rotated. */
  private ordered(view: ServiceView): ViewEndpoint[] {
    const groups = servableGroups(view, this.s.failOpen);
    const offset = this.zone.rotation(view.key);
    if (!(this.s.preferLocal && this.client.local)) return rotate(groups.all, offset);
    if (groups.remote.length === 0) return rotate(groups.local, offset);
    return [...rotate(groups.local, offset), ...rotate(groups.remote, offset)];
  }

  /**
   * ordered(view) filtered to one hostname, without looking at the other endpoints: the same
   * list in the same order, so all the host names of a service cost O(endpoints), not O(E²).
   */
  private orderedHost(view: ServiceView, host: string): ViewEndpoint[] {
    const groups = servableGroups(view, this.s.failOpen);
    const offset = this.zone.rotation(view.key);
    const pick = (list: ViewEndpoint[]): ViewEndpoint[] => rotatedHost(list, hostIndex(groups, list).get(host), offset);
    if (!(this.s.preferLocal && this.client.local)) return pick(groups.all);
    if (groups.remote.length === 0) return pick(groups.local);
    return [...pick(groups.local), ...pick(groups.remote)];
  }

  /** A and/or AAAA records of `name` for those of `addresses` the question asks for. */
  private address(out: RR[], name: string, addresses: string[], ttl: number, additional = false): void {
    for (const ip of addresses) {
      const type = isIP(ip) === 6 ? 'AAAA' : 'A';
      if (additional || this.wants(type)) out.push(this.rr(type, name, ttl, ip));
    }
  }

  private srv(view: ServiceView, eps: ViewEndpoint[], ttl: number, port?: string, protocol?: string): void {
    const seen = new Set<string>();
    for (const e of eps) {
      const target = `${e.endpoint.hostname}.${view.name}.${view.namespace}.svc.${this.s.domain}`;
      let added = false;
      for (const [name, p] of Object.entries(e.reach!.ports).sort(([a], [b]) => (a < b ? -1 : 1))) {
        if (port !== undefined && (name !== port || p.protocol !== protocol)) continue;
        this.answers.push(
          this.rr('SRV', this.q.name, ttl, { priority: 0, weight: e.endpoint.weight, port: p.port, target }),
        );
        added = true;
      }
      if (added) {
        const key = `${target} ${e.reach!.addresses.join(' ')}`;
        if (!seen.has(key)) {
          seen.add(key);
          this.address(this.additionals, target, e.reach!.addresses, ttl, true);
        }
      }
    }
  }

  private soa(ttl: number): RR {
    const { s } = this;
    return this.rr('SOA', s.domain, ttl, {
      mname: `ns.dns.${s.domain}`,
      rname: `hostmaster.${s.domain}`,
      serial: s.serial,
      refresh: 7200,
      retry: 1800,
      expire: 86400,
      minimum: s.negativeTtl,
    });
  }

  private negative(rcode: 'NOERROR' | 'NXDOMAIN'): Answer {
    return { rcode, authoritative: true, answers: [], authorities: [this.soa(this.s.negativeTtl)], additionals: [] };
  }

  private rr(type: string, name: string, ttl: number, data: unknown): RR {
    return { type, name, ttl, class: 'IN', data } as RR;
  }
}

interface Groups {
  failOpen: boolean;
  all: ViewEndpoint[];
  local: ViewEndpoint[];
  remote: ViewEndpoint[];
  /** Per group list: hostname → positions in it, ascending (built on the first host query). */
  hosts?: Map<ViewEndpoint[], Map<string, number[]>>;
}

function hostIndex(g: Groups, list: ViewEndpoint[]): Map<string, number[]> {
  g.hosts ??= new Map();
  let index = g.hosts.get(list);
  if (!index) {
    g.hosts.set(list, (index = new Map()));
    list.forEach((e, i) => {
      const at = index!.get(e.endpoint.hostname);
      if (at) at.push(i);
      else index!.set(e.endpoint.hostname, [i]);
    });
  }
  return index;
}

/** rotate(list, offset) filtered to the entries at `positions` (ascending), in O(positions). */
function rotatedHost(list: ViewEndpoint[], positions: number[] | undefined, offset: number): ViewEndpoint[] {
  if (!positions) return [];
  const k = list.length < 2 ? 0 : offset % list.length;
  let split = 0;
  while (split < positions.length && positions[split]! < k) split++;
  const out: ViewEndpoint[] = [];
  for (let i = split; i < positions.length; i++) out.push(list[positions[i]!]!);
  for (let i = 0; i < split; i++) out.push(list[positions[i]!]!);
  return out;
}

// Views are immutable once built, so what every query of a service needs is computed once per view.
const groupCache = new WeakMap<ServiceView, Groups>();

function servableGroups(view: ServiceView, failOpen: boolean): Groups {
  let g = groupCache.get(view);
  if (!g || g.failOpen !== failOpen) {
    const all = servable(view, failOpen);
    g = { failOpen, all, local: all.filter((e) => e.local), remote: all.filter((e) => !e.local) };
    groupCache.set(view, g);
  }
  return g;
}

const lookupCache = new WeakMap<ZoneSource, NameLookups>();

function lookupsOf(src: ZoneSource): NameLookups {
  let l = lookupCache.get(src);
  if (!l) lookupCache.set(src, (l = lookups(src)));
  return l;
}

function lookups(src: ZoneSource): NameLookups {
  return {
    hasService: (ns, svc) => src.service(ns, svc) !== undefined,
    hasHost: (ns, svc, host) => hostnames(src.service(ns, svc)!).has(host),
    hasProtocol: (ns, svc, proto) => Object.values(src.service(ns, svc)!.ports).includes(proto as 'tcp'),
    hasPort: (ns, svc, port, proto) => src.service(ns, svc)!.ports[port] === proto,
    hasNamespace: (ns) => src.hasNamespace(ns),
    hasServices: () => src.serviceCount > 0,
  };
}

const hostnameCache = new WeakMap<ServiceView, Set<string>>();

function hostnames(view: ServiceView): Set<string> {
  let set = hostnameCache.get(view);
  if (!set) hostnameCache.set(view, (set = new Set(view.endpoints.map((e) => e.endpoint.hostname))));
  return set;
}

/** PTR for addresses the registry knows; anything else in the reverse tree is forwarded. */
function reverse(q: Question, lower: string, zone: Zone): Answer | null {
  const type = q.type.toUpperCase();
  if (type !== 'PTR' && type !== 'ANY') return null;
  const ip = reverseAddress(lower);
  if (!ip) return null;
  const entries = zone.source.lookupAddress(ip);
  if (entries.length === 0) return null;
  const { domain, ttl } = zone.settings;
  const targets = unique(
    entries.map((r) => {
      const [ns, svc] = r.service.split('/') as [string, string];
      return r.hostname ? `${r.hostname}.${svc}.${ns}.svc.${domain}` : `${svc}.${ns}.svc.${domain}`;
    }),
  );
  return {
    rcode: 'NOERROR',
    authoritative: true,
    answers: targets.map((t) => ({ type: 'PTR', name: q.name, ttl, class: 'IN', data: t })),
    authorities: [],
    additionals: [],
  };
}

function rotate<T>(list: T[], offset: number): T[] {
  if (list.length < 2) return list;
  const k = offset % list.length;
  return k === 0 ? list : [...list.slice(k), ...list.slice(0, k)];
}

const unique = <T>(list: T[]): T[] => [...new Set(list)];
