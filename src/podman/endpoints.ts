import { isIP } from 'node:net';
import { addressProblem, DEFAULT_MAX_PORTS } from '../registry/input.js';
import type { Endpoint, NamedPort, Protocol } from '../registry/types.js';
import { ENABLE, parseLabels, toLabel } from './labels.js';
import type { ContainerInspect, InspectNetwork, NetworkInfo } from './types.js';

// One inspected container → its endpoint (docs/architecture.md#podman) and the names it answers to on each network
// (aardvark-compatible names, docs/architecture.md#dns). Pure: inspect JSON and the network list in, data out.

/** Drivers whose container IPs are reachable from the LAN as they are. */
const ROUTABLE_DRIVERS = new Set(['macvlan', 'ipvlan']);

export interface ContainerNames {
  /** Container name and aliases, lower case. */
  names: string[];
  /** Network name → this container's IPs on it. */
  networks: Record<string, string[]>;
}

export interface ContainerFacts {
  id: string;
  name: string;
  running: boolean;
  endpoint: Endpoint | null;
  names: ContainerNames;
  /** Problems worth a warning (bad labels, a labelled container with no address). */
  problems: string[];
  /** Podman's own healthcheck status when the container has one (`healthy`, `unhealthy`, `starting`). */
  podmanHealth?: string;
}

export const autoRegisters = (n: NetworkInfo | undefined): boolean => n?.labels?.[ENABLE] === 'true';

/** The container whose network namespace `--network container:<id>` (or a pod's infra) shares. */
export const sharedNetworkOf = (c: ContainerInspect): string | undefined => /^container:(.+)$/.exec(c.HostConfig?.NetworkMode ?? '')?.[1];

export function describeContainer(
  c: ContainerInspect,
  networks: ReadonlyMap<string, NetworkInfo>,
  node: { address: string; maxPorts?: number },
  now: number,
  /** Inspect of another container, for one that shares its network namespace (pods). */
  lookup: (id: string) => ContainerInspect | undefined = () => undefined,
): ContainerFacts {
  const name = (c.Name ?? '').replace(/^\//, '') || c.Id.slice(0, 12);
  const running = c.State?.Running === true;
  // A pod member (or --network container:X) has its addresses on the container it shares with.
  const sharedWith = sharedNetworkOf(c);
  const owner = sharedWith ? lookup(sharedWith) : undefined;
  const hasIp = (n: Record<string, InspectNetwork> | null | undefined): boolean => Object.values(n ?? {}).some((i) => i?.IPAddress || i?.GlobalIPv6Address);
  const netSource = owner && !hasIp(c.NetworkSettings?.Networks) ? owner : c;
  const nets = netSource.NetworkSettings?.Networks ?? {};
  const names: ContainerNames = { names: [name.toLowerCase()], networks: {} };
  for (const [net, info] of Object.entries(nets)) {
    const ips = [info?.IPAddress, info?.GlobalIPv6Address].filter((ip): ip is string => !!ip && isIP(ip) !== 0);
    if (ips.length) names.networks[net] = ips;
    for (const a of info?.Aliases ?? []) {
      const lower = typeof a === 'string' ? a.toLowerCase() : '';
      if (lower && !names.names.includes(lower)) names.names.push(lower);
    }
  }
  const facts: ContainerFacts = { id: c.Id, name, running, endpoint: null, names, problems: [] };
  const hc = c.State?.Health?.Status;
  if (c.Config?.Healthcheck?.Test?.length && hc) facts.podmanHealth = hc;
  if (!running) return facts;

  const spec = parseLabels(c.Config?.Labels);
  const autoNets = Object.keys(nets).filter((n) => autoRegisters(networks.get(n)));
  const auto = autoNets.length > 0 && spec.enable !== false;
  if (!spec.labelled && !auto) return facts;
  facts.problems.push(...spec.problems);

  const service = spec.service ?? spec.composeService ?? toLabel(name);
  if (!service) {
    facts.problems.push(`no service name: the container name ${JSON.stringify(name)} is not usable as a DNS label; set podman-swarm.service`);
    return facts;
  }

  // Addresses: host network → the node's address; macvlan/ipvlan → the container IP, routable;
  // bridges → the container IP on each network (all of them when labelled, else only those of
  // auto-registering networks).
  const hostNetwork = c.HostConfig?.NetworkMode === 'host';
  let addresses: string[] = [];
  let explicit = false;
  let network: string | undefined;
  if (hostNetwork) {
    if (node.address) addresses = [node.address];
    explicit = true;
  } else {
    const candidates = spec.labelled ? Object.keys(nets) : autoNets;
    const routable = candidates.filter((n) => ROUTABLE_DRIVERS.has(networks.get(n)?.driver ?? ''));
    const chosen = routable.length ? routable : candidates;
    explicit = routable.length > 0;
    for (const n of chosen) {
      for (const ip of names.networks[n] ?? []) {
        const bad = addressProblem(ip);
        if (bad) facts.problems.push(`address ${ip} on network ${n} ${bad}: skipped`);
        else if (!addresses.includes(ip)) addresses.push(ip);
      }
    }
    network = chosen.find((n) => names.networks[n]);
  }
  if (addresses.length === 0) {
    facts.problems.push(`container ${name} has no address (network mode ${c.HostConfig?.NetworkMode ?? 'unknown'}): not registered`);
    return facts;
  }

  const published = publishedPorts(netSource);
  let ports: Record<string, NamedPort> = spec.ports;
  if (Object.keys(ports).length === 0) {
    ports = {};
    for (const [key, hostPort] of published) {
      const [port, protocol] = key.split('/') as [string, Protocol];
      ports[`p${port}`] = { port: Number(port), protocol, hostPort };
    }
  } else {
    ports = Object.fromEntries(
      Object.entries(ports).map(([n, p]) => {
        const hostPort = published.get(`${p.port}/${p.protocol}`);
        return [n, hostPort === undefined ? { ...p } : { ...p, hostPort }];
      }),
    );
  }
  if (hostNetwork) for (const p of Object.values(ports)) delete p.hostPort;
  const maxPorts = node.maxPorts ?? DEFAULT_MAX_PORTS;
  const portNames = Object.keys(ports);
  if (portNames.length > maxPorts) {
    facts.problems.push(`${portNames.length} ports, more than --max-ports-per-endpoint ${maxPorts}: ${portNames.slice(maxPorts).join(', ')} skipped`);
    ports = Object.fromEntries(Object.entries(ports).slice(0, maxPorts));
  }

  const hasHealthcheck = (c.Config?.Healthcheck?.Test?.length ?? 0) > 0 && c.Config?.Healthcheck?.Test?.[0] !== 'NONE';
  const shortId = c.Id.slice(0, 12);
  const hostname = c.Config?.Hostname && c.Config.Hostname !== shortId ? toLabel(c.Config.Hostname) : undefined;
  const ep: Endpoint = {
    id: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(name) ? name : shortId,
    namespace: spec.namespace ?? 'default',
    service,
    hostname: hostname ?? toLabel(name) ?? shortId,
    addresses,
    explicit,
    ports,
    weight: spec.weight ?? 10,
    health: spec.health ?? (hasHealthcheck ? 'podman' : 'tcp'),
    healthy: true,
    source: 'podman',
    container: network ? { id: c.Id, name, network } : { id: c.Id, name },
    lastSeen: now,
  };
  if (spec.mode) ep.mode = spec.mode;
  if (spec.ttl !== undefined) ep.ttl = spec.ttl;
  if (spec.problems.length) ep.problems = [...spec.problems];
  facts.endpoint = ep;
  return facts;
}

/** `<port>/<proto>` → host port, for ports published with `-p`. */
function publishedPorts(c: ContainerInspect): Map<string, number> {
  const out = new Map<string, number>();
  for (const [key, bindings] of Object.entries(c.NetworkSettings?.Ports ?? {})) {
    const m = /^(\d+)\/(tcp|udp)$/.exec(key);
    const hp = Number(bindings?.find((b) => b?.HostPort)?.HostPort);
    if (m && Number.isInteger(hp) && hp > 0 && hp < 65536) out.set(`${m[1]}/${m[2]}`, hp);
  }
  return out;
}

/** The containers' endpoints, at most `max` per service; the containers beyond it, in order, in `over`. */
export function endpointsWithin(all: ContainerFacts[], max: number): { endpoints: Endpoint[]; over: ContainerFacts[] } {
  const endpoints: Endpoint[] = [];
  const over: ContainerFacts[] = [];
  const perService = new Map<string, number>();
  for (const c of all) {
    if (!c.endpoint) continue;
    const key = `${c.endpoint.namespace}/${c.endpoint.service}`;
    const n = perService.get(key) ?? 0;
    if (n >= max) over.push(c);
    else {
      perService.set(key, n + 1);
      endpoints.push(c.endpoint);
    }
  }
  return { endpoints, over };
}
