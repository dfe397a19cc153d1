import { showHostPort } from '../config/kinds.js';
import type { DnsSetup } from '../dns/setup.js';
import type { LinkSetup } from '../lb/setup.js';
import type { Context, Part } from '../part.js';
import type { Registry } from '../registry/registry.js';
import type { StatusCounts } from './messages.js';
import { ResolvedClient, type ResolvedLink, type ResolvedMode } from './resolved.js';
import { selfQuery } from './self-query.js';

// systemd (docs/architecture.md#systemd): systemd-resolved sends the zone to the cluster DNS
// address; the STATUS= counts and the watchdog's self-query read from here
// (src/commands/run-daemon.ts attaches sd_notify).

export interface SystemdSetup extends Part {
  /** For systemd's STATUS= line. */
  counts(): StatusCounts;
  /** A real query over UDP to our first DNS listener (the watchdog's liveness proof). */
  selfQuery(timeoutMs: number): Promise<boolean>;
}

export function setupSystemd(c: Context, d: { registry: Registry; dns: DnsSetup; link: LinkSetup }): SystemdSetup {
  const { opts: o, rt } = c;
  const resolved = new ResolvedClient({
    mode: o.resolved as ResolvedMode,
    domain: o.domain,
    log: c.log,
    problem: (message) => (message ? c.problems.set('resolved', message) : c.problems.delete('resolved')),
  });
  let started: Promise<void> = Promise.resolve();
  /** Links resolved should send the zone to: ours, when the cluster DNS address is served on it. */
  const links = (): ResolvedLink[] => {
    const link = d.link.link();
    if (!link) return [];
    const served = d.dns.server.addresses.find((a) => a.host === rt.dnsAddress);
    return served ? [{ name: link.name, servers: [{ address: served.host, port: served.port }] }] : [];
  };
  return {
    counts() {
      const all = [...d.registry.services()].flatMap((v) => v.endpoints);
      return { services: d.registry.serviceCount, endpoints: all.length, healthy: all.filter((e) => e.endpoint.healthy).length, dns: d.dns.server.addresses.map(showHostPort) };
    },
    selfQuery(timeoutMs) {
      const first = d.dns.server.addresses[0];
      return first ? selfQuery(first, o.domain, timeoutMs) : Promise.resolve(false);
    },
    async start() {
      // Not awaited: READY=1 never waits for D-Bus; the client logs its own outcome.
      started = resolved.start(links());
    },
    async stop(restart) {
      await started;
      await resolved.stop(!restart);
    },
  };
}
