import { formatIp } from '../net/cidr.js';

// Where a query name points inside the zone (docs/architecture.md#names). Pure: a name and a few lookups in,
// a target out. Labels are lower case; the zone suffix has already been removed.

export interface NameLookups {
  hasService(namespace: string, service: string): boolean;
  hasHost(namespace: string, service: string, host: string): boolean;
  /** True when the service has a named port of that protocol (for `_tcp.<svc>.<ns>` nodes). */
  hasProtocol(namespace: string, service: string, protocol: string): boolean;
  hasPort(namespace: string, service: string, port: string, protocol: string): boolean;
  hasNamespace(namespace: string): boolean;
  hasServices(): boolean;
}

export type Target =
  | { kind: 'apex' }
  | { kind: 'version' }
  | { kind: 'nameserver' }
  | { kind: 'service'; namespace: string; service: string }
  | { kind: 'host'; namespace: string; service: string; host: string }
  | { kind: 'srv'; namespace: string; service: string; port: string; protocol: string }
  /** An empty non-terminal: the name exists because names below it do (NODATA, not NXDOMAIN). */
  | { kind: 'empty' }
  | { kind: 'none' };

const NONE: Target = { kind: 'none' };
const EMPTY: Target = { kind: 'empty' };

/** `labels`: the query name's labels left of the zone, e.g. ['web', 'default', 'svc']. */
export function locate(labels: readonly string[], z: NameLookups): Target {
  const n = labels.length;
  if (n === 0) return { kind: 'apex' };
  // With `svc.` the service part is one label longer; try that reading first, then the short one.
  const long = labels[n - 1] === 'svc' ? locateService(labels.slice(0, n - 1), z) : NONE;
  if (long.kind !== 'none') return long;
  const short = locateService(labels, z);
  if (short.kind !== 'none') return short;

  if (n === 1) {
    if (labels[0] === 'dns-version') return { kind: 'version' };
    if (labels[0] === 'dns') return EMPTY;
    if (labels[0] === 'svc') return z.hasServices() ? EMPTY : NONE;
    return z.hasNamespace(labels[0]!) ? EMPTY : NONE;
  }
  if (n === 2) {
    if (labels[0] === 'ns' && labels[1] === 'dns') return { kind: 'nameserver' };
    if (labels[1] === 'svc' && z.hasNamespace(labels[0]!)) return EMPTY;
  }
  return NONE;
}

/** `labels` without a trailing `svc`: svc.ns, host.svc.ns, _proto.svc.ns or _port._proto.svc.ns. */
function locateService(labels: readonly string[], z: NameLookups): Target {
  const n = labels.length;
  if (n < 2 || n > 4) return NONE;
  const namespace = labels[n - 1]!;
  const service = labels[n - 2]!;
  if (!z.hasService(namespace, service)) return NONE;
  if (n === 2) return { kind: 'service', namespace, service };
  const first = labels[0]!;
  if (n === 3) {
    if (first.startsWith('_')) return z.hasProtocol(namespace, service, first.slice(1)) ? EMPTY : NONE;
    return z.hasHost(namespace, service, first) ? { kind: 'host', namespace, service, host: first } : NONE;
  }
  const proto = labels[1]!;
  if (!first.startsWith('_') || !proto.startsWith('_')) return NONE;
  const port = first.slice(1);
  const protocol = proto.slice(1);
  return z.hasPort(namespace, service, port, protocol) ? { kind: 'srv', namespace, service, port, protocol } : NONE;
}

/** The IP of a reverse name (`4.3.2.1.in-addr.arpa`, nibbles of `ip6.arpa`), or null. */
export function reverseAddress(name: string): string | null {
  const lower = name.toLowerCase().replace(/\.$/, '');
  if (lower.endsWith('.in-addr.arpa')) {
    const parts = lower.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) < 256)) return null;
    return parts.reverse().join('.');
  }
  if (lower.endsWith('.ip6.arpa')) {
    const nibbles = lower.slice(0, -'.ip6.arpa'.length).split('.');
    if (nibbles.length !== 32 || !nibbles.every((x) => /^[0-9a-f]$/.test(x))) return null;
    const hex = nibbles.reverse().join('');
    const bytes = new Uint8Array(16);
    for (let i = 0; i < 16; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
    return formatIp(bytes);
  }
  return null;
}

/** `name` relative to `zone` as labels, or null when it is outside. Both lower case. */
export function zoneLabels(name: string, zone: string): string[] | null {
  if (name === zone) return [];
  if (!name.endsWith(zone) || name[name.length - zone.length - 1] !== '.') return null;
  return name.slice(0, name.length - zone.length - 1).split('.');
}
