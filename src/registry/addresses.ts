import { NO_PORTS, type Endpoint, type NamedPort, type NodeState, type Protocol } from './types.js';

// docs/architecture.md#addresses: what a querying host is told for an endpoint.
//  - explicit addresses (config file, API, host-network containers): as given, everywhere;
//  - the querying host's own container endpoints, or any with --routable-container-ips:
//    the container IP and container ports;
//  - another host's container: that host's address and the published host ports. Without a
//    published port such an endpoint is unreachable from here and is not answered at all;
//  - a rootless container without a published port (container.isolated): only on its own host.

export interface Perspective {
  localNode: string;
  routableContainerIps: boolean;
}

export interface ReachablePort {
  port: number;
  protocol: Protocol;
}

export interface Reachable {
  /** True when the endpoint's own addresses are answered (not its owner's address). */
  direct: boolean;
  addresses: string[];
  ports: Record<string, ReachablePort>;
}

const plain = (p: NamedPort): ReachablePort => ({ port: p.port, protocol: p.protocol });

export function reachable(ep: Endpoint, owner: NodeState, view: Perspective): Reachable | null {
  if (ep.container?.isolated && owner.id !== view.localNode) return null;
  const direct = ep.explicit || owner.id === view.localNode || view.routableContainerIps;
  // (Most endpoints have no ports: no copy to make, no garbage made for them.) A direct reach
  // holds the endpoint's own address list, not a copy: that is how a view tells it is direct
  // (view.ts isDirect).
  if (ep.ports === NO_PORTS) return direct ? { direct: true, addresses: ep.addresses, ports: NO_PORTS } : null;
  const ports: Record<string, ReachablePort> = {};
  if (direct) {
    for (const [name, p] of Object.entries(ep.ports)) ports[name] = plain(p);
    return { direct: true, addresses: ep.addresses, ports: Object.keys(ports).length ? ports : NO_PORTS };
  }
  for (const [name, p] of Object.entries(ep.ports)) {
    if (p.hostPort !== undefined) ports[name] = { port: p.hostPort, protocol: p.protocol };
  }
  if (Object.keys(ports).length === 0 || !owner.address) return null;
  return { direct: false, addresses: [owner.address], ports };
}
