import { isIP } from 'node:net';
import type { Answer as RR } from 'dns-packet';
import type { ReverseEntry } from '../registry/registry.js';
import { servable, type ServiceView, type ViewEndpoint } from '../registry/view.js';
import { minimalAny } from './message.js';
import { locate, reverseAddress, zoneLabels, type NameLookups } from './names.js';

// Record building (docs/architecture.md#dns): a question and the zone view in, the sections of the answer out.
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
  /** At most this many A/AAAA records in a UDP answer (0: no limit). */
  udpAnswerLimit?: number;
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
}

export interface Client {
  /** The query comes from this host or one of its bridge subnets (prefer-local applies). */
  local: boolean;
  /**
   * Rotation of the answer records: each group (this host's endpoints, the others) starts at
   * record `rotation % length`. The servers pass the query ID, so every query gets its own order
   * with no state to keep, and both DNS paths give the same order. Default 0.
   */
  rotation?: number;
  /** ANY lists every record (the native table compiler asks so); otherwise ANY gets RFC 8482's HINFO. */
  fullAny?: boolean;
}

/** The in-zone or reverse answer, or null when the name is not ours (forward it). */
export function answerQuestion(q: Question, zone: Zone, client: Client): Answer | null {
  const lower = q.name.toLowerCase().replace(/\.$/, '');
  const labels = zoneLabels(lower, zone.settings.domain);
  if (labels === null) return reverse(q, lower, zone, client);
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
    if (target.kind === 'none') return this.negative('NXDOMAIN');
    if (this.type === 'ANY' && !this.client.fullAny) return positive([minimalAny(this.q.name)]);
    switch (target.kind) {
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
        const groups = this.groups(view);
        const records = groups.map(() => [] as RR[]);
        if (view.vip) this.address(records[0]!, this.q.name, [view.vip], ttl);
        else groups.forEach((g, i) => this.address(records[i]!, this.q.name, g.flatMap((e) => e.reach!.addresses), ttl));
        if (this.wants('SRV')) this.srv(view, groups, ttl, records);
        this.answers.push(...this.rotated(records));
        break;
      }
      case 'host': {
        const view = this.view(target.namespace, target.service);
        // Each group's endpoints of that host name, from a per-view index: O(its endpoints).
        const all = servableGroups(view, s.failOpen);
        const groups = this.groups(view).map((g) => (hostIndex(all, g).get(target.host) ?? []).map((i) => g[i]!));
        const records = groups.map(() => [] as RR[]);
        groups.forEach((g, i) => this.address(records[i]!, this.q.name, g.flatMap((e) => e.reach!.addresses), view.ttl ?? s.ttl));
        this.answers.push(...this.rotated(records));
        break;
      }
      case 'srv': {
        const view = this.view(target.namespace, target.service);
        if (this.wants('SRV')) {
          const groups = this.groups(view);
          const records = groups.map(() => [] as RR[]);
          this.srv(view, groups, view.ttl ?? s.ttl, records, target.port, target.protocol);
          this.answers.push(...this.rotated(records));
        }
        break;
      }
    }
    if (this.answers.length === 0) return this.negative('NOERROR');
    return { rcode: 'NOERROR', authoritative: true, answers: this.answers, authorities: [], additionals: this.additionals };
  }

  /** The groups' records without duplicates (a record stays in the first group that has it), each rotated. */
  private rotated(groups: RR[][]): RR[] {
    const seen = new Set<string>();
    const turn = this.client.rotation ?? 0;
    return groups.flatMap((g) => {
      const kept = g.filter((rr) => {
        const k = `${rr.type} ${JSON.stringify((rr as { data: unknown }).data)}`;
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      });
      return rotate(kept, turn);
    });
  }

  private view(namespace: string, service: string): ServiceView {
    return this.zone.source.service(namespace, service)!;
  }

  /** Servable endpoints: this host's, then the others' when prefer-local applies and both exist. */
  private groups(view: ServiceView): ViewEndpoint[][] {
    const groups = servableGroups(view, this.s.failOpen);
    if (this.s.preferLocal && this.client.local && groups.local.length > 0 && groups.remote.length > 0) return [groups.local, groups.remote];
    return [groups.all];
  }

  /**
   * ordered(view) filtered to one hostname, without looking at the other endpoints: the same
   * list in the same order, so all the host names of a service cost O(endpoints), not O(E²).
   */
  /** A and/or AAAA records of `name` for those of `addresses` the question asks for. */
  private address(out: RR[], name: string, addresses: string[], ttl: number, additional = false): void {
    for (const ip of addresses) {
      const type = isIP(ip) === 6 ? 'AAAA' : 'A';
      if (additional || this.wants(type)) out.push(this.rr(type, name, ttl, ip));
    }
  }

  /**
   * SRV records of each group (into `out[i]`) and the addresses of their targets as additional
   * records, without duplicates, in group order.
   */
  private srv(view: ServiceView, groups: ViewEndpoint[][], ttl: number, out: RR[][], port?: string, protocol?: string): void {
    const seen = new Set<string>();
    groups.forEach((eps, i) => {
      const into = out[i]!;
      for (const e of eps) {
        const target = `${e.endpoint.hostname}.${view.name}.${view.namespace}.svc.${this.s.domain}`;
        let added = false;
        for (const [name, p] of Object.entries(e.reach!.ports).sort(([a], [b]) => (a < b ? -1 : 1))) {
          if (port !== undefined && (name !== port || p.protocol !== protocol)) continue;
          into.push(this.rr('SRV', this.q.name, ttl, { priority: 0, weight: e.endpoint.weight, port: p.port, target }));
          added = true;
        }
        if (!added) continue;
        for (const ip of e.reach!.addresses) {
          const key = `${target} ${ip}`;
          if (seen.has(key)) continue;
          seen.add(key);
          this.address(this.additionals, target, [ip], ttl, true);
        }
      }
    });
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

/** The name lookups of a zone source, memoised per source (also for `explain`). */
export function lookupsOf(src: ZoneSource): NameLookups {
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
function reverse(q: Question, lower: string, zone: Zone, client: Client): Answer | null {
  const type = q.type.toUpperCase();
  if (type !== 'PTR' && type !== 'ANY') return null;
  const ip = reverseAddress(lower);
  if (!ip) return null;
  const entries = zone.source.lookupAddress(ip);
  if (entries.length === 0) return null;
  if (type === 'ANY' && !client.fullAny) return positive([minimalAny(q.name)]);
  const { domain, ttl } = zone.settings;
  const targets = unique(
    entries.map((r) => {
      const [ns, svc] = r.service.split('/') as [string, string];
      return r.hostname ? `${r.hostname}.${svc}.${ns}.svc.${domain}` : `${svc}.${ns}.svc.${domain}`;
    }),
  );
  // Rotated by the query ID as the native path rotates an entry's answers (an address several
  // endpoints share has a PTR each).
  return positive(rotate(targets.map((t) => ({ type: 'PTR', name: q.name, ttl, class: 'IN', data: t })), client.rotation ?? 0));
}

/** A positive authoritative answer with only an answer section. */
export function positive(answers: RR[]): Answer {
  return { rcode: 'NOERROR', authoritative: true, answers, authorities: [], additionals: [] };
}

/** `list` starting at element `offset % length`. */
export function rotate<T>(list: T[], offset: number): T[] {
  if (list.length < 2) return list;
  const k = offset % list.length;
  return k === 0 ? list : [...list.slice(k), ...list.slice(0, k)];
}

const unique = <T>(list: T[]): T[] => [...new Set(list)];
