import { isIP } from 'node:net';
import type { Protocol } from '../registry/types.js';
import { servable, type ServiceView } from '../registry/view.js';
import type { BackendSpec } from './backends.js';

// Pure: from the registry's views to the listeners this host should have. The manager diffs the
// result against what runs. One listener per named port of every service that has a VIP (on the
// VIP, at the port's number) and per --ingress entry (on the host's address).

export interface ListenerSpec {
  /** `<proto>:<host>:<port>`: what identifies a socket; the diff key. */
  key: string;
  service: string;
  portName: string;
  protocol: Protocol;
  host: string;
  port: number;
  ingress: boolean;
  backends: BackendSpec[];
}

export interface IngressEntry {
  namespace: string;
  service: string;
  /** A port name, or a port number as text. */
  port: string;
}

export interface PlanOptions {
  failOpen: boolean;
  ingress: IngressEntry[];
  /** The host's own address, where ingress listeners go. */
  hostAddress: string;
}

/** `<ns>/<svc>:<port>` or `<svc>:<port>` (namespace `default`); null when malformed. */
export function parseIngress(text: string): IngressEntry | null {
  const m = /^(?:([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/)?([a-z0-9]([-a-z0-9]*[a-z0-9])?):([-a-z0-9]+)$/.exec(text.trim());
  if (!m) return null;
  return { namespace: m[1] ?? 'default', service: m[3]!, port: m[5]! };
}

export function planListeners(views: Iterable<ServiceView>, o: PlanOptions): ListenerSpec[] {
  const out: ListenerSpec[] = [];
  const byKey = new Map<string, ServiceView>();
  for (const v of views) {
    byKey.set(v.key, v);
    if (!v.vip) continue;
    for (const portName of Object.keys(v.ports).sort()) {
      const l = listenerFor(v, portName, v.vip, null, false, o.failOpen);
      if (l) out.push(l);
    }
  }
  for (const ing of o.ingress) {
    const v = byKey.get(`${ing.namespace}/${ing.service}`);
    if (!v || !o.hostAddress) continue;
    for (const portName of Object.keys(v.ports).sort()) {
      const number = portNumber(v, portName);
      if (portName !== ing.port && String(number) !== ing.port) continue;
      const l = listenerFor(v, portName, o.hostAddress, number, true, o.failOpen);
      if (l) out.push(l);
    }
  }
  // One socket per key: the first claim wins (services sorted the same on every host).
  const seen = new Set<string>();
  return out.filter((l) => (seen.has(l.key) ? false : (seen.add(l.key), true)));
}

/** The number a named port is offered at: the container port of the first endpoint having it. */
function portNumber(v: ServiceView, portName: string): number | null {
  for (const e of v.endpoints) {
    const p = e.endpoint.ports[portName];
    if (p) return p.port;
  }
  return null;
}

function listenerFor(v: ServiceView, portName: string, host: string, port: number | null, ingress: boolean, failOpen: boolean): ListenerSpec | null {
  const protocol = v.ports[portName]!;
  const number = port ?? portNumber(v, portName);
  if (number === null) return null;
  const backends: BackendSpec[] = [];
  for (const e of servable(v, failOpen)) {
    const reach = e.reach!;
    const p = reach.ports[portName];
    if (!p || p.protocol !== protocol) continue;
    const address = pickAddress(reach.addresses, host);
    if (!address) continue;
    backends.push({ id: `${e.node.id}/${e.endpoint.id}`, host: address, port: p.port, weight: e.endpoint.weight, local: e.local });
  }
  return { key: `${protocol}:${host}:${number}`, service: v.key, portName, protocol, host, port: number, ingress, backends };
}

/** The endpoint address of the listener's family when there is one, else any usable one. */
function pickAddress(addresses: string[], listener: string): string | undefined {
  const family = isIP(listener);
  return addresses.find((a) => isIP(a) === family) ?? addresses.find((a) => isIP(a) !== 0);
}
