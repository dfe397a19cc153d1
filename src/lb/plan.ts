import { isIP } from 'node:net';
import type { Protocol } from '../registry/types.js';
import { servable, type ServiceView } from '../registry/view.js';
import type { BackendSpec } from './backends.js';

// Pure: from the registry's views to the listeners this host should have. The manager diffs the
// result against what runs. One listener per named port of every service that has a VIP (on the
// VIP, at the port's number) and per --ingress entry (on the host's address). Planned per
// service, so a change re-plans only the services it touched.

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

/** The listeners of one service: one per named port on its VIP, and its ingress entries. */
function planService(v: ServiceView, ingress: readonly IngressEntry[], o: PlanOptions): ListenerSpec[] {
  const out: ListenerSpec[] = [];
  const names = Object.keys(v.ports).sort();
  if (v.vip) {
    for (const portName of names) {
      const l = listenerFor(v, portName, v.vip, null, false, o.failOpen);
      if (l) out.push(l);
    }
  }
  if (!o.hostAddress) return out;
  for (const ing of ingress) {
    for (const portName of names) {
      const number = portNumber(v, portName);
      if (portName !== ing.port && String(number) !== ing.port) continue;
      const l = listenerFor(v, portName, o.hostAddress, number, true, o.failOpen);
      if (l) out.push(l);
    }
  }
  return out;
}

/** Which of two claims on one socket wins: VIP before ingress, then the service key, then the port name. */
function beats(a: ListenerSpec, b: ListenerSpec): boolean {
  if (a.ingress !== b.ingress) return !a.ingress;
  if (a.service !== b.service) return a.service < b.service;
  return a.portName < b.portName;
}

/**
 * The plan, kept per service: a registry change re-plans only the services it names and says
 * which listener keys may want something else now. When two services claim one socket, the
 * same one wins on every host (`beats`).
 */
export class Plan {
  private readonly byService = new Map<string, ListenerSpec[]>();
  /** Listener key → the services' specs claiming it. */
  private readonly claims = new Map<string, ListenerSpec[]>();
  private readonly ingress = new Map<string, IngressEntry[]>();

  constructor(private readonly o: PlanOptions) {
    for (const ing of o.ingress) {
      const key = `${ing.namespace}/${ing.service}`;
      this.ingress.set(key, [...(this.ingress.get(key) ?? []), ing]);
    }
  }

  /** Re-plans service `key` (`view` undefined: gone); returns the listener keys it claimed before or claims now. */
  update(key: string, view: ServiceView | undefined): string[] {
    const before = this.byService.get(key) ?? [];
    for (const l of before) {
      const rest = this.claims.get(l.key)!.filter((c) => c !== l);
      if (rest.length) this.claims.set(l.key, rest);
      else this.claims.delete(l.key);
    }
    const after = view ? planService(view, this.ingress.get(key) ?? [], this.o) : [];
    if (after.length) this.byService.set(key, after);
    else this.byService.delete(key);
    for (const l of after) this.claims.set(l.key, [...(this.claims.get(l.key) ?? []), l]);
    return [...before, ...after].map((l) => l.key);
  }

  /** What listener `key` should be, if anything. */
  wanted(key: string): ListenerSpec | undefined {
    const claims = this.claims.get(key);
    return claims?.reduce((best, l) => (beats(l, best) ? l : best));
  }

  /** Every listener key wanted. */
  keys(): IterableIterator<string> {
    return this.claims.keys();
  }
}

/** The whole plan at once: every listener this host should have, sorted by key. */
export function planListeners(views: Iterable<ServiceView>, o: PlanOptions): ListenerSpec[] {
  const plan = new Plan(o);
  for (const v of views) plan.update(v.key, v);
  return [...plan.keys()].sort().map((k) => plan.wanted(k)!);
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
