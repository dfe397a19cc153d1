import { reachable, type Perspective, type Reachable } from './addresses.js';
import { NO_PORTS, type Endpoint, type NodeState, type Protocol, type ServiceMode } from './types.js';

/** What this host hands out for an endpoint: addresses and ports. */
export type Reach = Pick<Reachable, 'addresses' | 'ports'>;

// A service as this host sees it: every endpoint of every node, with the addresses and ports
// this host should hand out for it. Built per service, so a change rebuilds only what it touches.

export interface ViewOptions extends Perspective {
  defaultMode: ServiceMode;
}

export interface ViewEndpoint {
  endpoint: Endpoint;
  node: { id: string; name: string; address: string };
  local: boolean;
  /**
   * null: not reachable from this host (another host's container without published ports). An
   * endpoint answered as it is (its own addresses, ports without host ports: explicit ones, the
   * common case) is its own reach, not a copy (50,000 endpoints: 2.4 MB of copies). A reach
   * with the endpoint's own addresses holds the endpoint's list itself (`isDirect`).
   */
  reach: Reach | null;
}

/**
 * The endpoint's own addresses are answered, not its owner's (they then answer PTR). Read from
 * the reach, which holds the endpoint's own address list exactly then (addresses.ts `reachable`),
 * rather than kept in a field of every view endpoint (50,000 endpoints: 0.4 MB).
 */
export const isDirect = (e: ViewEndpoint): e is ViewEndpoint & { reach: Reach } => e.reach !== null && e.reach.addresses === e.endpoint.addresses;

export interface ServiceView {
  key: string;
  namespace: string;
  name: string;
  mode: ServiceMode;
  /** Virtual IP of a vip-mode service, once the load balancer allocates one (docs/architecture.md#load-balancer). */
  vip?: string;
  /** TTL override in seconds, when an endpoint asks for one (the smallest wins). */
  ttl?: number;
  /** Union of the named ports of all endpoints. */
  ports: Record<string, Protocol>;
  /** Sorted by node id, then endpoint id: the same order on every host. */
  endpoints: ViewEndpoint[];
  problems: string[];
}

/** The view of service `key` (`namespace/name`, the registry's own string for it: one copy per service). */
export function buildService(
  key: string,
  namespace: string,
  name: string,
  members: Array<{ endpoint: Endpoint; owner: NodeState }>,
  opts: ViewOptions,
): ServiceView {
  // In place: the registry builds `members` for this call alone.
  const sorted = members.sort((a, b) => cmp(a.owner.id, b.owner.id) || cmp(a.endpoint.id, b.endpoint.id));
  // Built by map, which sizes the list exactly (one grown by push keeps room for ~12 more: 10,000
  // services of 5 endpoints, ~1 MB).
  const endpoints = sorted.map(({ endpoint, owner }): ViewEndpoint => {
    const reach = reachable(endpoint, owner, opts);
    return {
      endpoint,
      node: nodeOf(owner),
      local: owner.id === opts.localNode,
      reach: reach?.direct && asItIs(endpoint) ? endpoint : reach,
    };
  });
  const ports: Record<string, Protocol> = {};
  const problems: string[] = [];
  const modes = new Map<ServiceMode, number>();
  let ttl: number | undefined;
  for (const { endpoint } of sorted) {
    for (const portName in endpoint.ports) {
      if (ports[portName] === undefined) ports[portName] = endpoint.ports[portName]!.protocol;
    }
    const mode = endpoint.mode ?? opts.defaultMode;
    modes.set(mode, (modes.get(mode) ?? 0) + 1);
    if (endpoint.ttl !== undefined) ttl = ttl === undefined ? endpoint.ttl : Math.min(ttl, endpoint.ttl);
    for (const p of endpoint.problems ?? []) problems.push(`${endpoint.id}: ${p}`);
  }
  let mode: ServiceMode = opts.defaultMode;
  if (modes.size > 1) {
    // The majority wins; on a tie the first endpoint's choice, so every host agrees.
    const first = sorted[0]!.endpoint.mode ?? opts.defaultMode;
    mode = [...modes].reduce((best, [m, n]) => (n > (modes.get(best) ?? 0) ? m : best), first);
    problems.push(`endpoints disagree on the mode (${[...modes.keys()].join(', ')}); using ${mode}`);
  } else if (modes.size === 1) {
    mode = [...modes.keys()][0]!;
  }
  // Most services have no ports and no problems: they share one frozen empty object and list
  // (10,000 services: ~1 MB).
  const view: ServiceView = {
    key,
    namespace,
    name,
    mode,
    ports: Object.keys(ports).length ? ports : (NO_PORTS as Record<string, Protocol>),
    endpoints,
    problems: problems.length ? problems : NO_PROBLEMS,
  };
  if (ttl !== undefined) view.ttl = ttl;
  return view;
}

const NO_PROBLEMS = Object.freeze([]) as unknown as string[];

/** The endpoint's ports are what a direct reach has (no host ports to leave out). */
function asItIs(e: Endpoint): boolean {
  for (const name in e.ports) if (e.ports[name]!.hostPort !== undefined) return false;
  return true;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** One `node` object per node state, shared by the views of all its endpoints (50,000 endpoints: one per host, not per endpoint). */
const nodes = new WeakMap<NodeState, ViewEndpoint['node']>();
function nodeOf(owner: NodeState): ViewEndpoint['node'] {
  let n = nodes.get(owner);
  if (!n) nodes.set(owner, (n = Object.freeze({ id: owner.id, name: owner.name, address: owner.address })));
  return n;
}

/** Endpoints that DNS and the load balancer hand out: healthy ones, or all with fail-open. */
export function servable(view: ServiceView, failOpen: boolean): ViewEndpoint[] {
  const reachableOnes = view.endpoints.filter((e) => e.reach !== null);
  if (failOpen) {
    const healthy = reachableOnes.filter((e) => e.endpoint.healthy);
    return healthy.length > 0 ? healthy : reachableOnes;
  }
  return reachableOnes.filter((e) => e.endpoint.healthy);
}
