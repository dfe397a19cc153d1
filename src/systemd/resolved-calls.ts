import { isIPv4, isIPv6 } from 'node:net';

// The systemd-resolved calls that route the zone to this daemon on one link, as data (pure), in
// the exact D-Bus signatures of org.freedesktop.resolve1.Manager (and network1.Manager, which has
// the same methods). Equivalent to `resolvectl dns <link> <addr>; resolvectl domain <link>
// ~<zone>; resolvectl default-route <link> false`.

export interface DnsServerAddress {
  address: string;
  port: number;
}

export interface LinkCall {
  member: string;
  signature: string;
  body: unknown[];
}

const AF_INET = 2;
const AF_INET6 = 10;

export function addressBytes(address: string): { family: number; bytes: Buffer } {
  if (isIPv4(address)) return { family: AF_INET, bytes: Buffer.from(address.split('.').map(Number)) };
  if (!isIPv6(address)) throw new Error(`not an IP address: ${address}`);
  // Expand "::" and embedded IPv4, then pack 8 groups.
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = text.slice(0, -v4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const bytes = Buffer.alloc(16);
  groups.forEach((g, i) => bytes.writeUInt16BE(parseInt(g, 16), i * 2));
  return { family: AF_INET6, bytes };
}

/** SetLinkDNSEx(i ifindex, a(iayqs)): family, address, port (0 = 53), server name (SNI, none). */
export function setLinkDnsEx(ifindex: number, servers: DnsServerAddress[]): LinkCall {
  return {
    member: 'SetLinkDNSEx',
    signature: 'ia(iayqs)',
    body: [ifindex, servers.map((s) => { const a = addressBytes(s.address); return [a.family, a.bytes, s.port === 53 ? 0 : s.port, '']; })],
  };
}

/** SetLinkDNS(i ifindex, a(iay)): for resolved before v246, which has no DNSEx (port 53 only). */
export function setLinkDns(ifindex: number, servers: DnsServerAddress[]): LinkCall {
  return {
    member: 'SetLinkDNS',
    signature: 'ia(iay)',
    body: [ifindex, servers.map((s) => { const a = addressBytes(s.address); return [a.family, a.bytes]; })],
  };
}

/** SetLinkDomains(i ifindex, a(sb)): `true` = routing-only ("~zone"), never a search domain. */
export function setLinkDomains(ifindex: number, zones: string[]): LinkCall {
  return { member: 'SetLinkDomains', signature: 'ia(sb)', body: [ifindex, zones.map((z) => [z.replace(/\.$/, ''), true])] };
}

/** SetLinkDefaultRoute(i, b): false, so names outside the zone never go to this link. */
export function setLinkDefaultRoute(ifindex: number, on: boolean): LinkCall {
  return { member: 'SetLinkDefaultRoute', signature: 'ib', body: [ifindex, on] };
}

export function revertLink(ifindex: number): LinkCall {
  return { member: 'RevertLink', signature: 'i', body: [ifindex] };
}
