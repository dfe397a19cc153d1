import { isIP } from 'node:net';
import { showHostPort } from '../config/kinds.js';
import type { ServiceView, ViewEndpoint } from '../registry/view.js';
import type { ClientPolicy } from './clients.js';
import type { Forwarder } from './forwarder.js';
import { locate, reverseAddress, zoneLabels, type Target } from './names.js';
import { lookupsOf, type Question, type Zone } from './records.js';

// Why a name gets the answer it gets, for `podman-swarm-dns explain` and /api/v1/explain: how the
// name parses, which endpoints are in or out of the answer and why, and for names outside the
// zone the recursion, --forward-allow and cache decisions. The answer itself comes from the real
// answer path (the caller adds it); this file only explains. Pure: every input is passed in.

export interface ExplainInputs {
  zone: Zone;
  /** The asking client's address (default: this host, 127.0.0.1). */
  client: string;
  recursionAllowed(ip: string): boolean;
  /** Prefer-local applies to this client (this host or one of its bridges). */
  isLocal(ip: string): boolean;
  forwardAllowed(name: string): boolean;
  forwardAllow: readonly string[];
  /** Whether a plain query (no EDNS) for the name and type is in the forwarding cache now. */
  cached(name: string, type: string): boolean;
  /** Upstreams in the order they would be asked. */
  upstreams: string[];
  containerName?(q: Question, client: string): boolean;
}

/** The parts of the DNS server an explanation reads. */
export interface ExplainSources {
  zone: Zone;
  clients: ClientPolicy;
  forwarder: Forwarder;
  containerNames?: { answer(q: Question, client: string, o: { host: boolean }): unknown };
}

export function explainInputs(d: ExplainSources, client: string): ExplainInputs {
  return {
    zone: d.zone,
    client,
    recursionAllowed: (ip) => d.clients.recursionAllowed(ip),
    isLocal: (ip) => d.clients.isLocal(ip),
    forwardAllowed: (name) => d.forwarder.allowed(name),
    forwardAllow: d.forwarder.forwardAllow,
    cached: (name, type) => d.forwarder.cached(name, type),
    upstreams: d.forwarder.order.map(showHostPort),
    containerName: (q, ip) => (d.containerNames?.answer(q, ip, { host: d.clients.isHost(ip) }) ?? null) !== null,
  };
}

export interface EndpointExplained {
  node: string;
  local: boolean;
  id: string;
  hostname: string;
  addresses: string[];
  healthy: boolean;
  reachable: boolean;
  in_answer: boolean;
  why: string;
}

export interface Explanation {
  name: string;
  type: string;
  client: string;
  parse: Record<string, unknown> & { kind: string; summary: string };
  service?: { key: string; mode: string; vip: string | null; order: string; endpoints: EndpointExplained[] };
  forward?: { recursion: { allowed: boolean; why: string }; forward_allow: { allowed: boolean; why: string }; cache: string; upstream: string | null; upstreams: string[] };
}

/** Why a name is malformed (for a 400 and exit code 2), or null. */
export function malformedName(name: string): string | null {
  if (name === '' || name === '.') return 'the name is empty';
  const bare = name.replace(/\.$/, '');
  if (Buffer.byteLength(bare) > 253) return `the name is ${Buffer.byteLength(bare)} bytes long, more than DNS allows (253)`;
  const labels = bare.split('.');
  const empty = labels.findIndex((l) => l === '');
  if (empty >= 0) return `label ${empty + 1} is empty (two dots in a row, or a leading dot)`;
  const long = labels.find((l) => Buffer.byteLength(l) > 63);
  if (long) return `the label "${long.slice(0, 20)}…" is ${Buffer.byteLength(long)} bytes long, more than DNS allows (63)`;
  const odd = labels.find((l) => !/^[A-Za-z0-9_-]+$/.test(l));
  if (odd) return `the label "${odd}" has characters other than letters, digits, '-' and '_'`;
  return null;
}

export function explain(inp: ExplainInputs, rawName: string, type: string): Explanation {
  const name = rawName.toLowerCase().replace(/\.$/, '');
  const { domain } = inp.zone.settings;
  const base = { name, type, client: inp.client };
  const labels = zoneLabels(name, domain);
  if (labels !== null) {
    const target = locate(labels, lookupsOf(inp.zone.source));
    const e: Explanation = { ...base, parse: parseInZone(labels, target, domain) };
    if (target.kind === 'service' || target.kind === 'host' || target.kind === 'srv') {
      e.service = serviceExplained(inp, inp.zone.source.service(target.namespace, target.service)!, target, type);
    }
    return e;
  }
  const ip = reverseAddress(name);
  if (ip && (type === 'PTR' || type === 'ANY')) {
    const entries = inp.zone.source.lookupAddress(ip);
    if (entries.length) {
      return { ...base, parse: { kind: 'reverse', address: ip, summary: `reverse name of ${ip}, an address of ${[...new Set(entries.map((r) => r.service))].join(', ')}: answered from the registry` } };
    }
  }
  if (inp.containerName?.({ name, type, class: 'IN' }, inp.client)) {
    return { ...base, parse: { kind: 'container', summary: `a Podman container name (or alias) on a network the client ${inp.client} shares with it: answered from the container list` } };
  }
  return { ...base, parse: { kind: 'outside', zone: domain, summary: `outside the zone ${domain}${ip ? ` (the reverse name of ${ip}, not an address of any endpoint)` : ''}: forwarded, if allowed` }, forward: forwarding(inp, name, type) };
}

function parseInZone(labels: string[], t: Target, domain: string): Explanation['parse'] {
  const rel = labels.join('.');
  switch (t.kind) {
    case 'apex': return { kind: 'apex', summary: `the zone apex ${domain} (SOA, NS)` };
    case 'version': return { kind: 'version', summary: 'the DNS schema version (TXT)' };
    case 'nameserver': return { kind: 'nameserver', summary: "the zone's name server name" };
    case 'empty': return { kind: 'empty', summary: `${rel} exists only because names below it do: no records of its own (NOERROR, no answers)` };
    case 'service': return { kind: 'service', namespace: t.namespace, service: t.service, summary: `service ${t.service} in namespace ${t.namespace}` };
    case 'host': return { kind: 'host', namespace: t.namespace, service: t.service, host: t.host, summary: `host name ${t.host} of service ${t.service} in namespace ${t.namespace}` };
    case 'srv': return { kind: 'srv', namespace: t.namespace, service: t.service, port: t.port, protocol: t.protocol, summary: `SRV name: port ${t.port}/${t.protocol} of service ${t.service} in namespace ${t.namespace}` };
    case 'none': return { kind: 'unknown', zone: domain, summary: `inside the zone ${domain}, but ${unknownWhy(labels)}: NXDOMAIN` };
  }
}

/** The most likely reading of an in-zone name that names nothing. */
function unknownWhy(labels: string[]): string {
  const l = labels.at(-1) === 'svc' ? labels.slice(0, -1) : labels;
  const n = l.length;
  if (n < 2) return `"${labels.join('.')}" is not <service>.<namespace>[.svc], nor a namespace with services`;
  if (n > 4) return `it has ${n} labels before the zone; names are <service>.<namespace>, <host>.<service>.<namespace>, _<proto>.<service>.<namespace> or _<port>._<proto>.<service>.<namespace> (each optionally followed by .svc)`;
  const [ns, svc] = [l[n - 1]!, l[n - 2]!];
  if (n === 2) return `no service ${svc} in namespace ${ns}`;
  if (n === 3 && l[0]!.startsWith('_')) return `service ${ns}/${svc} has no port of protocol ${l[0]!.slice(1)} (or no such service)`;
  if (n === 3) return `service ${ns}/${svc} has no endpoint with host name ${l[0]} (or no such service)`;
  return `service ${ns}/${svc} has no port named ${l[0]!.replace(/^_/, '')} of protocol ${l[1]!.replace(/^_/, '')} (or no such service; both labels need a leading _)`;
}

function serviceExplained(inp: ExplainInputs, v: ServiceView, t: Target & { kind: 'service' | 'host' | 'srv' }, type: string): NonNullable<Explanation['service']> {
  const s = inp.zone.settings;
  const healthyReachable = v.endpoints.filter((e) => e.reach !== null && e.endpoint.healthy);
  const failOpenNow = s.failOpen && healthyReachable.length === 0;
  const local = inp.isLocal(inp.client);
  const servable = (e: ViewEndpoint): boolean => e.reach !== null && (e.endpoint.healthy || failOpenNow);
  const anyLocal = v.endpoints.some((e) => e.local && servable(e));
  const anyRemote = v.endpoints.some((e) => !e.local && servable(e));
  const preferLocal = s.preferLocal && local && anyLocal && anyRemote;
  const endpoints = v.endpoints.map((e): EndpointExplained => {
    const ep = e.endpoint;
    const out = (why: string): EndpointExplained => ({
      node: e.node.name, local: e.local, id: ep.id, hostname: ep.hostname, addresses: e.reach?.addresses ?? ep.addresses,
      healthy: ep.healthy, reachable: e.reach !== null, in_answer: why.startsWith('in'), why,
    });
    if (t.kind === 'host' && ep.hostname !== t.host) return out(`out: its host name is ${ep.hostname}, not ${t.host}`);
    if (t.kind === 'srv') {
      const p = ep.ports[t.port];
      if (!p || p.protocol !== t.protocol) return out(`out: it has no port ${t.port}/${t.protocol}`);
    }
    if (e.reach === null) return out(`out: a container on node ${e.node.name} that publishes no port: this host cannot reach it`);
    if (!ep.healthy && !failOpenNow) return out(`out: unhealthy (check ${ep.health})${s.failOpen ? '; fail-open does not apply, other endpoints are healthy' : ''}`);
    const families = e.reach.addresses.filter((a) => type === 'ANY' || type === 'SRV' || (type === 'AAAA' ? isIP(a) === 6 : type === 'A' ? isIP(a) === 4 : true));
    if (families.length === 0) return out(`out: no ${type} address (it has ${e.reach.addresses.join(', ')})`);
    const why = !ep.healthy ? 'in: unhealthy, but fail-open (no endpoint is healthy)' : 'in: healthy and reachable';
    if (v.vip && t.kind === 'service') return out(`${why}; behind the VIP ${v.vip}, which is what DNS answers`);
    if (preferLocal) return out(`${why}; ${e.local ? 'listed first (on this host, prefer-local)' : 'listed after this host’s endpoints (prefer-local)'}`);
    return out(why);
  });
  const order = v.vip && t.kind === 'service'
    ? `the service is in vip mode: A queries get the VIP ${v.vip}; the load balancer spreads connections over the endpoints marked in`
    : preferLocal
      ? "prefer-local: this client is on this host, so this host's endpoints come first, then the others; each group rotated per query"
      : `one group, rotated per query${s.preferLocal && !local ? ` (prefer-local does not apply: ${inp.client} is not this host or one of its bridges)` : ''}`;
  return { key: v.key, mode: v.mode, vip: v.vip ?? null, order, endpoints };
}

function forwarding(inp: ExplainInputs, name: string, type: string): NonNullable<Explanation['forward']> {
  const recursion = inp.recursionAllowed(inp.client)
    ? { allowed: true, why: `${inp.client} may recurse (loopback, this host's addresses, Podman bridges or --allow-recursion)` }
    : { allowed: false, why: `${inp.client} may not recurse (only loopback, this host's addresses, Podman bridges and --allow-recursion): REFUSED` };
  const allow = inp.forwardAllow.length === 0
    ? { allowed: true, why: 'no --forward-allow: every name may be forwarded' }
    : inp.forwardAllowed(name)
      ? { allowed: true, why: `under --forward-allow ${inp.forwardAllow.join(',')}` }
      : { allowed: false, why: `not under --forward-allow ${inp.forwardAllow.join(',')}: REFUSED` };
  const go = recursion.allowed && allow.allowed;
  const cached = go && inp.cached(name, type);
  return {
    recursion,
    forward_allow: allow,
    cache: !go ? 'not consulted' : cached ? 'cached: answered from the cache' : 'not cached: asked upstream',
    upstream: go && !cached ? (inp.upstreams[0] ?? null) : null,
    upstreams: inp.upstreams,
  };
}
