import type { Metrics } from '../api/metrics.js';
import type { DnsCore } from '../dns/setup.js';
import { DEFAULT_SERVER_OPTIONS } from '../dns/server.js';
import type { Context, Part } from '../part.js';
import type { Registry } from '../registry/registry.js';
import { nativeDns, type NativeDns } from './dns.js';

// The native DNS fast path (docs/architecture.md#native-addon): UDP threads answering from a table
// compiled from the same views, or the reason the JS path serves UDP.

export function setupNative(c: Context, core: DnsCore, d: { registry: Registry; metrics: Metrics }): NativeDns & Part {
  const native = nativeDns(c.opts.dnsThreads, DEFAULT_SERVER_OPTIONS.udpReceiveBuffer, {
    registry: d.registry, zone: core.zone, clients: core.clients, handler: core.handler, metrics: d.metrics, log: c.log, env: c.env, containerNames: core.names,
    udpLimit: core.udpLimit, forwarder: core.forwarder, grace: core.grace,
    viewOptions: () => [c.opts.routableContainerIps, c.opts.defaultMode],
  });
  native.setRrl(c.opts.dnsRrl, c.opts.dnsRrlSlip);
  return Object.assign(native, {
    reload: (next: Context['opts']) => native.setRrl(next.dnsRrl, next.dnsRrlSlip),
    stop: async () => native.close(),
  });
}
