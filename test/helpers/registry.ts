import type { Endpoint, NodeState } from '../../src/registry/types.js';

// Builders for registry data in unit tests.

let seq = 0;

export function ep(service: string, address: string | string[], extra: Partial<Endpoint> = {}): Endpoint {
  const addresses = Array.isArray(address) ? address : [address];
  const id = extra.id ?? `e${++seq}`;
  return {
    id,
    namespace: 'default',
    service,
    hostname: id,
    addresses,
    explicit: true,
    ports: {},
    weight: 10,
    health: 'none',
    healthy: true,
    source: 'api',
    lastSeen: 0,
    ...extra,
  };
}

export function node(id: string, version: number, endpoints: Endpoint[], extra: Partial<NodeState> = {}): NodeState {
  return { id, name: id, address: `192.0.2.${id.length}`, incarnation: 0, version, endpoints, ...extra };
}
