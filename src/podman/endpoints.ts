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

/** Which Podman a container comes from: root's, or a user's (rootless). */
export interface PodmanOrigin {
  /** `root`, or the user's name (uid<N> when the name is unknown). */
  owner: string;
  /** Rootless Podman: containers live in the user's network namespace, reachable from outside only through published ports. */
  rootless: boolean;
  /**
   * Endpoint ids get `.<owner>`: the daemon follows several Podmans, and two users may both have
   * a container of the same name in the same service.
   */
  qualify: boolean;
  /** The user's uid, when known: its containers' names are answered to that user's queries only (src/dns/scoped.ts). */
  uid?: number;
}

export const ROOT_ORIGIN: PodmanOrigin = { owner: 'root', rootless: false, qualify: false };

export const autoRegisters = (n: NetworkInfo | undefined): boolean => n?.labels?.[ENABLE] === 'true';

/** The container whose network namespace `--network container:<id>` (or a pod's infra) shares. */
export const sharedNetworkOf = (c: ContainerInspect): string | undefined => /^container:(.+)$/.exec(c.HostConfig?.NetworkMode ?? '')?.[1];

export function describeContainer(
  c: ContainerInspect,
  networks: ReadonlyMap<string, NetworkInfo>,
  node: { address: string; maxPorts?: number; origin?: PodmanOrigin },
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

  // Addresses: host network → the node's address; rootless → the node's address and the published
  // ports (rootlessport listens there; the container IP lives in the user's network namespace);
  // macvlan/ipvlan → the container IP, routable; bridges → the container IP on each network (all
  // of them when labelled, else only those of auto-registering networks).
  const origin = node.origin ?? ROOT_ORIGIN;
  const hostNetwork = c.HostConfig?.NetworkMode === 'host';
  const published = publishedPorts(netSource, node.address);
  const viaNode = origin.rootless && !hostNetwork && published.open.size > 0;
  /** A rootless container without a published port: only its owner's network namespace reaches it. */
  const isolated = origin.rootless && !hostNetwork && !viaNode;
  let addresses: string[] = [];
  let explicit = false;
  let network: string | undefined;
  if (hostNetwork || viaNode) {
    if (node.address) addresses = [node.address];
    explicit = true;
  } else {
    const candidates = spec.labelled ? Object.keys(nets) : autoNets;
    const routable = candidates.filter((n) => ROUTABLE_DRIVERS.has(networks.get(n)?.driver ?? ''));
    const chosen = routable.length && !origin.rootless ? routable : candidates;
    explicit = routable.length > 0 && !origin.rootless;
    for (const n of chosen) {
      for (const ip of names.networks[n] ?? []) {
        const bad = addressProblem(ip);
        if (bad) facts.problems.push(`address ${ip} on network ${n} ${bad}: skipped`);
        else if (!addresses.includes(ip)) addresses.push(ip);
      }
    }
    network = chosen.find((n) => names.networks[n]);
  }
  for (const [key, ip] of published.local) facts.problems.push(`port ${key} is published on ${ip} only: other hosts cannot reach it there; publish it on all addresses (-p ${key.split('/')[0]}:…) to serve it`);
  if (isolated) {
    facts.problems.push(`rootless container of ${origin.owner} without a published port: reachable only inside ${origin.owner}'s network namespace, so not served to other hosts and not health-checked; publish its ports with -p`);
  } else if (addresses.length === 0) {
    facts.problems.push(`container ${name} has no address (network mode ${c.HostConfig?.NetworkMode ?? 'unknown'}): not registered`);
    return facts;
  }

  let ports: Record<string, NamedPort> = spec.ports;
  if (Object.keys(ports).length === 0) {
    ports = {};
    for (const [key, hostPort] of published.open) {
      const [port, protocol] = key.split('/') as [string, Protocol];
      ports[`p${port}`] = { port: Number(port), protocol, hostPort };
    }
  } else {
    ports = Object.fromEntries(
      Object.entries(ports).map(([n, p]) => {
        const hostPort = published.open.get(`${p.port}/${p.protocol}`);
        return [n, hostPort === undefined ? { ...p } : { ...p, hostPort }];
      }),
    );
  }
  if (hostNetwork) for (const p of Object.values(ports)) delete p.hostPort;
  if (viaNode) {
    // Everyone, this host included, reaches the container at the node's address and the published port.
    for (const [n, p] of Object.entries(ports)) {
      if (p.hostPort !== undefined) ports[n] = { port: p.hostPort, protocol: p.protocol };
      else {
        delete ports[n];
        facts.problems.push(`port ${n} (${p.port}/${p.protocol}) is not published: a rootless container is reachable only through its published ports; left out`);
      }
    }
  }
  const maxPorts = node.maxPorts ?? DEFAULT_MAX_PORTS;
  const portNames = Object.keys(ports);
  if (portNames.length > maxPorts) {
    facts.problems.push(`${portNames.length} ports, more than --max-ports-per-endpoint ${maxPorts}: ${portNames.slice(maxPorts).join(', ')} skipped`);
    ports = Object.fromEntries(Object.entries(ports).slice(0, maxPorts));
  }

  const hasHealthcheck = (c.Config?.Healthcheck?.Test?.length ?? 0) > 0 && c.Config?.Healthcheck?.Test?.[0] !== 'NONE';
  const shortId = c.Id.slice(0, 12);
  const hostname = c.Config?.Hostname && c.Config.Hostname !== shortId ? toLabel(c.Config.Hostname) : undefined;
  const baseId = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(name) ? name : shortId;
  const ownerTag = origin.qualify ? `.${toLabel(origin.owner) ?? 'user'}` : '';
  const container: NonNullable<Endpoint['container']> = network ? { id: c.Id, name, network } : { id: c.Id, name };
  if (origin.owner !== 'root') container.owner = origin.owner;
  if (isolated) container.isolated = true;
  const ep: Endpoint = {
    id: (baseId.slice(0, 127 - ownerTag.length) + ownerTag).replace(/^\./, ''),
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
    container,
    lastSeen: now,
  };
  if (spec.mode) ep.mode = spec.mode;
  if (spec.ttl !== undefined) ep.ttl = spec.ttl;
  if (spec.problems.length) ep.problems = [...spec.problems];
  facts.endpoint = ep;
  return facts;
}

const WILDCARD = new Set(['', '0.0.0.0', '::']);

/**
 * Ports published with `-p`: `<port>/<proto>` → host port in `open` when the node's address
 * reaches it (bound to all addresses or to that one), in `local` (→ the address it is bound to)
 * when it is bound to another address only (`-p 127.0.0.1:8080:80`).
 */
function publishedPorts(c: ContainerInspect, nodeAddress: string): { open: Map<string, number>; local: Map<string, string> } {
  const open = new Map<string, number>();
  const local = new Map<string, string>();
  for (const [key, bindings] of Object.entries(c.NetworkSettings?.Ports ?? {})) {
    const m = /^(\d+)\/(tcp|udp)$/.exec(key);
    if (!m || !Array.isArray(bindings)) continue;
    const valid = bindings.filter((b) => b && Number.isInteger(Number(b.HostPort)) && Number(b.HostPort) > 0 && Number(b.HostPort) < 65536);
    const reachable = valid.find((b) => WILDCARD.has(b.HostIp ?? '') || b.HostIp === nodeAddress);
    if (reachable) open.set(key, Number(reachable.HostPort));
    else if (valid[0]) local.set(key, valid[0].HostIp ?? '');
  }
  return { open, local };
}

/**
 * The containers' endpoints, at most `max` per service; the containers beyond it, in order, in
 * `over`; those whose endpoint key an earlier container has (two Podmans followed) in `duplicate`.
 */
export function endpointsWithin(all: ContainerFacts[], max: number): { endpoints: Endpoint[]; over: ContainerFacts[]; duplicate: ContainerFacts[] } {
  const endpoints: Endpoint[] = [];
  const over: ContainerFacts[] = [];
  const duplicate: ContainerFacts[] = [];
  const perService = new Map<string, number>();
  const keys = new Set<string>();
  for (const c of all) {
    if (!c.endpoint) continue;
    const key = `${c.endpoint.namespace}/${c.endpoint.service}`;
    const n = perService.get(key) ?? 0;
    const full = `${key}/${c.endpoint.id}`;
    if (keys.has(full)) duplicate.push(c);
    else if (n >= max) over.push(c);
    else {
      perService.set(key, n + 1);
      keys.add(full);
      endpoints.push(c.endpoint);
    }
  }
  return { endpoints, over, duplicate };
}
