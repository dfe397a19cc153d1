// The registry's data model (docs/architecture.md#registry-and-gossip). Everything here is plain data: it is what the gossip layer
// carries between hosts and what the state file holds, so it stays JSON-serialisable.

export type Protocol = 'tcp' | 'udp';
export type ServiceMode = 'dnsrr' | 'vip';

/** `tcp`, `http:<path>`, `podman` (the container's own healthcheck) or `none`. */
export type HealthSpec = 'tcp' | 'podman' | 'none' | `http:${string}`;

export interface NamedPort {
  port: number;
  protocol: Protocol;
  /** Port published on the owning node's address (Podman `-p`), used from other hosts (docs/architecture.md#dns). */
  hostPort?: number;
}

/** Where a local endpoint came from; only the owning node cares, but it travels for `status`. */
export type EndpointSource = 'config' | 'api' | 'podman';

export interface Endpoint {
  /** Unique within (owning node, namespace, service). */
  id: string;
  namespace: string;
  service: string;
  /** DNS label used for `<host>.<svc>.<ns>.svc.<zone>`. */
  hostname: string;
  /** IPv4 and/or IPv6 addresses of the endpoint itself (container IP or explicit address). */
  addresses: string[];
  /**
   * True when the address was given explicitly (config file, API): it is answered as-is on every
   * host. False for container IPs, which only the owning host (or a routed network) can reach.
   */
  explicit: boolean;
  ports: Record<string, NamedPort>;
  /** 1–100: SRV weight and load-balancer weight. */
  weight: number;
  health: HealthSpec;
  healthy: boolean;
  source: EndpointSource;
  /** Service-level settings carried by every endpoint; the view reconciles them (docs/architecture.md#labels). */
  mode?: ServiceMode;
  /** Per-service TTL override in seconds (`podman-swarm.ttl`). */
  ttl?: number;
  /**
   * Podman container, when the endpoint is one. `owner`: the user whose rootless Podman runs it
   * (absent for root's). `isolated`: a rootless container without a published port, reachable
   * only inside its owner's network namespace (not served to other hosts, not health-checked).
   */
  container?: { id: string; name: string; network?: string; owner?: string; isolated?: boolean };
  /** Configuration problems found while building the endpoint (bad labels), shown in status/API. */
  problems?: string[];
  /**
   * When the owner first saw the endpoint as it is now (ms since the epoch). A look that finds it
   * unchanged (a Podman resync, a reload) keeps the old value: it is not a heartbeat, so an idle
   * node's state stays the same and nothing is gossiped.
   */
  lastSeen: number;
}

export interface NodeState {
  id: string;
  name: string;
  /** Address other hosts use for this node and its published ports. */
  address: string;
  incarnation: number;
  /** Owner-assigned, strictly increasing for every change of this state. */
  version: number;
  endpoints: Endpoint[];
}

/**
 * The ports of an endpoint that has none, one frozen object shared by all of them (most have
 * none: at 50,000 endpoints, 2.7 MB of empty objects otherwise).
 */
export const NO_PORTS: Readonly<Record<string, never>> = Object.freeze({});

/**
 * `<namespace>/<service>/<id>`, as one flat string: many are kept as map keys (the local node's
 * sources, the API's registrations), and a template literal leaves a chain of pieces instead
 * (~170 bytes a key instead of ~40: 6 MB at 50,000 endpoints).
 */
export const endpointKey = (e: Pick<Endpoint, 'namespace' | 'service' | 'id'>): string => [e.namespace, e.service, e.id].join('/');

export const serviceKey = (namespace: string, service: string): string => `${namespace}/${service}`;

/** The order of endpoint keys (and so of the endpoints in every node state). */
export const compareKeys = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
