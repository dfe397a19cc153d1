import { isIP } from 'node:net';
import type * as packet from 'dns-packet';
import type { MemberState } from '../gossip/codec.js';
import type { Member } from '../gossip/membership.js';
import type { Registry } from '../registry/registry.js';
import type { NodeState, Protocol } from '../registry/types.js';
import { servable, type ServiceView, type ViewEndpoint } from '../registry/view.js';

// JSON shapes of the HTTP API (docs/architecture.md#http-api), snake_case as the seed system's clients expect.
// Addresses and ports are as seen from this host (docs/architecture.md#addresses).

export interface ServiceSummaryJson {
  namespace: string;
  name: string;
  mode: string;
  vip: string | null;
  ports: Record<string, Protocol>;
  endpoints: number;
  healthy: number;
}

export interface EndpointJson {
  id: string;
  service_name: string;
  namespace: string;
  pod_id: string;
  pod_name: string;
  node_name: string;
  node_id: string;
  hostname: string;
  address: string;
  port: number | null;
  ports: Record<string, { port: number; protocol: Protocol }>;
  weight: number;
  healthy: boolean;
  health: string;
  /** False for another host's container that publishes no port: nothing to hand out from here. */
  reachable: boolean;
  local: boolean;
  source: string;
  /** Whose Podman runs the container: `root` or the user (rootless); null for other sources. */
  owner: string | null;
  /** A rootless container without a published port: reachable only inside its owner's network namespace, never served to other hosts. */
  isolated: boolean;
  last_seen: string;
  problems: string[];
}

export function serviceSummary(v: ServiceView): ServiceSummaryJson {
  return {
    namespace: v.namespace,
    name: v.name,
    mode: v.mode,
    vip: v.vip ?? null,
    ports: v.ports,
    endpoints: v.endpoints.length,
    healthy: v.endpoints.filter((e) => e.endpoint.healthy && e.reach).length,
  };
}

export function serviceDetail(v: ServiceView): Omit<ServiceSummaryJson, 'endpoints'> & {
  ttl: number | null;
  problems: string[];
  endpoints: EndpointJson[];
} {
  return { ...serviceSummary(v), ttl: v.ttl ?? null, problems: v.problems, endpoints: v.endpoints.map((e) => endpointJson(v, e)) };
}

export function endpointJson(v: ServiceView, e: ViewEndpoint): EndpointJson {
  const ep = e.endpoint;
  const ports = e.reach?.ports ?? Object.fromEntries(Object.entries(ep.ports).map(([n, p]) => [n, { port: p.port, protocol: p.protocol }]));
  const first = Object.keys(ports).sort()[0];
  return {
    id: ep.id,
    service_name: v.name,
    namespace: v.namespace,
    pod_id: ep.container?.id ?? '',
    pod_name: ep.container?.name ?? ep.hostname,
    node_name: e.node.name,
    node_id: e.node.id,
    hostname: ep.hostname,
    address: (e.reach?.addresses ?? ep.addresses)[0] ?? '',
    port: first === undefined ? null : ports[first]!.port,
    ports,
    weight: ep.weight,
    healthy: ep.healthy,
    health: ep.health,
    reachable: e.reach !== null,
    local: e.local,
    source: ep.source,
    owner: ep.container ? ep.container.owner ?? 'root' : null,
    isolated: ep.container?.isolated === true,
    last_seen: new Date(ep.lastSeen).toISOString(),
    problems: ep.problems ?? [],
  };
}

/** `ip:port` of every endpoint DNS would hand out (first named port), or `ip` without ports. */
export function serviceAddresses(v: ServiceView, failOpen: boolean): string[] {
  const out: string[] = [];
  for (const e of servable(v, failOpen)) {
    const first = Object.keys(e.reach!.ports).sort()[0];
    for (const ip of e.reach!.addresses) {
      if (first === undefined) out.push(ip);
      else out.push(`${isIP(ip) === 6 ? `[${ip}]` : ip}:${e.reach!.ports[first]!.port}`);
    }
  }
  return [...new Set(out)];
}

export function nodeJson(n: NodeState, localId: string, state = 'alive'): Record<string, unknown> {
  return {
    id: n.id,
    name: n.name,
    address: n.address,
    state,
    local: n.id === localId,
    incarnation: n.incarnation,
    version: n.version,
    endpoints: n.endpoints.length,
  };
}

export interface MemberJson {
  id: string;
  name: string;
  address: string;
  gossip_address: string | null;
  state: MemberState | 'stale' | 'unknown';
  /** When the member entered its state (ISO time); absent for nodes known only from the registry. */
  state_since?: string;
  /** When this node last heard from the member directly (ISO time); null before it has, absent for nodes known only from the registry. */
  last_contact?: string | null;
  local: boolean;
  incarnation: number;
  version: number | null;
  endpoints: number;
}

/**
 * Members and registry nodes for `GET /api/v1/nodes` and `podman-swarm-dns members`: every
 * member with the state held of it, then nodes held without a member (from the state file:
 * `stale` until the cluster confirms them).
 */
export function membersJson(members: Member[], registry: Registry, stale: (id: string) => boolean): MemberJson[] {
  const local = registry.localNode;
  const out = new Map<string, MemberJson>();
  for (const m of members) {
    const s = registry.node(m.id);
    out.set(m.id, {
      id: m.id, name: m.name, address: s?.address ?? m.addr.replace(/:\d+$/, '').replace(/^\[|\]$/g, ''), gossip_address: m.addr,
      state: m.state, state_since: new Date(m.since).toISOString(), last_contact: m.contact ? new Date(m.contact).toISOString() : null, local: m.id === local, incarnation: m.inc, version: s?.version ?? null, endpoints: s?.endpoints.length ?? 0,
    });
  }
  for (const s of registry.nodes()) {
    if (out.has(s.id)) continue;
    out.set(s.id, {
      id: s.id, name: s.name, address: s.address, gossip_address: null, state: stale(s.id) ? 'stale' : 'unknown',
      local: false, incarnation: s.incarnation, version: s.version, endpoints: s.endpoints.length,
    });
  }
  return [...out.values()].sort((a, b) => (a.local ? -1 : b.local ? 1 : a.name.localeCompare(b.name)));
}

export interface DnsRecordJson {
  name: string;
  type: string;
  ttl: number | undefined;
  data: unknown;
}

/**
 * Records of a DNS reply as /api/v1/dns returns them: the decoded data, with TXT strings as text
 * and other raw bytes (types the decoder does not know) as hex, never a serialized Buffer.
 */
export function dnsRecordsJson(list: packet.Answer[] | undefined): DnsRecordJson[] {
  return (list ?? [])
    .filter((a) => a.type !== 'OPT')
    .map((a) => ({ name: a.name, type: a.type, ttl: 'ttl' in a ? a.ttl : undefined, data: bytesAsText(a.data, a.type === 'TXT') }));
}

function bytesAsText(d: unknown, text: boolean): unknown {
  if (Buffer.isBuffer(d)) return d.toString(text ? 'utf8' : 'hex');
  return Array.isArray(d) ? d.map((x) => bytesAsText(x, text)) : d;
}
