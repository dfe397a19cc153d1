import { BlockList, isIP } from 'node:net';
import { NO_PORTS, type Endpoint, type EndpointSource, type HealthSpec, type NamedPort, type Protocol } from './types.js';

// Validation of endpoint descriptions from the outside world: the config file's `services:`
// (docs/architecture.md#configuration), the API's registration body (docs/architecture.md#http-api) and, field by field, Podman labels (docs/architecture.md#podman).
// One set of rules so an endpoint means the same wherever it was declared.

export class InputError extends Error {
  constructor(
    /** Dotted path of the offending field, e.g. `ports.pg`. */
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** RFC 1123 label, lower case: service, namespace, hostname and port names. */
export const isLabel = (s: string): boolean => LABEL.test(s);

export function label(raw: unknown, field: string): string {
  if (typeof raw !== 'string' || !isLabel(raw.toLowerCase())) {
    throw new InputError(field, `${show(raw)} is not a DNS label (letters, digits and '-', at most 63, no '-' at either end)`);
  }
  return raw.toLowerCase();
}

export const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : v === undefined ? 'nothing' : JSON.stringify(v));

/** `5432/tcp`, `53/udp`, `5432` (tcp) or the number 5432. */
export function parsePort(raw: unknown, field: string): NamedPort {
  const m = /^(\d{1,5})(?:\/(tcp|udp))?$/i.exec(typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw.trim() : '');
  const port = m ? Number(m[1]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new InputError(field, `${show(raw)} is not a port (expected <port>[/tcp|/udp], port 1–65535)`);
  }
  return { port, protocol: (m[2]?.toLowerCase() ?? 'tcp') as Protocol };
}

/** Ports one endpoint may declare when nothing else is configured (each one is health-checked). */
export const DEFAULT_MAX_PORTS = 64;

export function parsePorts(raw: unknown, field = 'ports', maxPorts = DEFAULT_MAX_PORTS): Record<string, NamedPort> {
  if (raw === undefined || raw === null) return NO_PORTS;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InputError(field, `expected a mapping of port names to ports, e.g. {"http": "8080/tcp"}`);
  }
  const entries = Object.entries(raw);
  if (entries.length > maxPorts) {
    throw new InputError(field, `${entries.length} ports, more than the ${maxPorts} an endpoint may have (--max-ports-per-endpoint)`);
  }
  if (entries.length === 0) return NO_PORTS;
  const out: Record<string, NamedPort> = {};
  for (const [name, value] of entries) {
    out[label(name, `${field}.${name}`)] = parsePort(value, `${field}.${name}`);
  }
  return out;
}

export function parseHealth(raw: unknown, field = 'health'): HealthSpec {
  if (raw === 'tcp' || raw === 'none' || raw === 'podman') return raw;
  if (typeof raw === 'string' && /^http:\/\S*$/.test(raw)) return raw as HealthSpec;
  throw new InputError(field, `${show(raw)} is not a health check (expected tcp, http:/<path>, podman or none)`);
}

export function parseWeight(raw: unknown, field = 'weight'): number {
  const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 100) {
    throw new InputError(field, `${show(raw)} is not a weight (expected a whole number 1–100)`);
  }
  return n;
}

const UNSPECIFIED = new BlockList();
UNSPECIFIED.addAddress('::', 'ipv6');
const MULTICAST = new BlockList();
MULTICAST.addSubnet('ff00::', 8, 'ipv6');
const UNSPECIFIED_TEXT = 'is an unspecified address (0.0.0.0/8 or ::), not one a client can reach';
const MULTICAST_TEXT = 'is a multicast or broadcast address, not one endpoint';

/**
 * Why `address` cannot be an endpoint's address, or null. A scoped IPv6 address (`fe80::1%eth0`)
 * names an interface of one host, an unspecified one (`0.0.0.0`, `::`) no host at all, and a
 * multicast or broadcast one a group: none of them is where a client can reach one endpoint.
 */
export function addressProblem(address: string): string | null {
  const family = isIP(address);
  if (family === 0) return 'is not an IPv4 or IPv6 address';
  if (address.includes('%')) return 'is a scoped IPv6 address (with a %zone), which means something on one host only';
  if (family === 4) {
    // isIP accepted a dotted quad: its first number decides (a BlockList check costs ~10 µs, at
    // 50,000 endpoints half a second of start).
    const first = Number(address.slice(0, address.indexOf('.')));
    if (first === 0) return UNSPECIFIED_TEXT;
    if ((first >= 224 && first <= 239) || address === '255.255.255.255') return MULTICAST_TEXT;
    return null;
  }
  if (UNSPECIFIED.check(address, 'ipv6')) return UNSPECIFIED_TEXT;
  if (MULTICAST.check(address, 'ipv6')) return MULTICAST_TEXT;
  return null;
}

/** A dashed address is the hostname of an endpoint that has none, as Kubernetes does for pods. */
export const dashed = (address: string): string => address.toLowerCase().replace(/[.:]/g, '-').replace(/^-+|-+$/g, '');

const ENDPOINT_KEYS = new Set(['id', 'address', 'hostname', 'ports', 'weight', 'health']);

export interface EndpointContext {
  namespace: string;
  service: string;
  source: EndpointSource;
  now: number;
  /** Called when the input has no id (the API generates one). */
  newId?: () => string;
  /** Ports one endpoint may declare (default DEFAULT_MAX_PORTS). */
  maxPorts?: number;
}

/**
 * An explicitly addressed endpoint (config file or API), body as in docs/architecture.md#http-api:
 * `{id?, address, hostname?, ports?, weight?, health?}`.
 */
export function parseEndpoint(raw: unknown, ctx: EndpointContext, prefix = ''): Endpoint {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InputError(prefix || '.', 'expected an object with at least "address"');
  }
  const body = raw as Record<string, unknown>;
  for (const key of Object.keys(body)) {
    if (!ENDPOINT_KEYS.has(key)) {
      throw new InputError(prefix + key, `unknown field (expected ${[...ENDPOINT_KEYS].join(', ')})`);
    }
  }
  const address = body.address;
  if (typeof address !== 'string') throw new InputError(prefix + 'address', `${show(address)} is not an IPv4 or IPv6 address`);
  const bad = addressProblem(address);
  if (bad) throw new InputError(prefix + 'address', `${show(address)} ${bad}`);
  const hostname = body.hostname === undefined ? undefined : label(body.hostname, prefix + 'hostname');
  let id: string;
  if (body.id !== undefined) {
    if (typeof body.id !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(body.id)) {
      throw new InputError(prefix + 'id', `${show(body.id)} is not an id (letters, digits, '_', '.', '-'; at most 128)`);
    }
    id = body.id;
  } else {
    id = ctx.newId?.() ?? hostname ?? dashed(address);
  }
  const ports = parsePorts(body.ports, prefix + 'ports', ctx.maxPorts);
  const health = body.health === undefined ? (Object.keys(ports).length ? 'tcp' : 'none') : parseHealth(body.health, prefix + 'health');
  return {
    id,
    namespace: ctx.namespace,
    service: ctx.service,
    hostname: hostname ?? (isLabel(id.toLowerCase()) ? id.toLowerCase() : dashed(address)),
    addresses: [address],
    explicit: true,
    ports,
    weight: body.weight === undefined ? 10 : parseWeight(body.weight, prefix + 'weight'),
    health,
    healthy: true,
    source: ctx.source,
    lastSeen: ctx.now,
  };
}
