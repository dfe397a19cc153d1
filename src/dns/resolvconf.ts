import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { HostPort } from '../config/kinds.js';
import { canonicalIp } from '../net/cidr.js';

// Default upstreams: the host's own nameservers (docs/architecture.md#dns), minus the daemon's own addresses so
// that it never forwards to itself.

export function resolvConfNameservers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const addr = m[1]!.replace(/%.*$/, '');
    if (isIP(addr)) out.push(addr);
  }
  return out;
}

export function defaultUpstreams(own: HostPort[], file = '/etc/resolv.conf'): HostPort[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const mine = new Set(own.filter((a) => a.port === 53).map((a) => canonicalIp(a.host)));
  const wildcard = own.some((a) => a.port === 53 && (a.host === '0.0.0.0' || a.host === '::'));
  return resolvConfNameservers(text)
    .filter((ip) => !mine.has(canonicalIp(ip)) && !(wildcard && /^(127\.|::1$)/.test(canonicalIp(ip))))
    .map((host) => ({ host, port: 53 }));
}
