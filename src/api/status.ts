import { apiListen as apiListenKind, showHostPort } from '../config/kinds.js';
import type { Runtime } from '../config/runtime.js';
import type { DnsSetup } from '../dns/setup.js';
import type { EtcdSetup } from '../etcd/setup.js';
import type { GossipSetup } from '../gossip/setup.js';
import type { HealthSetup } from '../health/setup.js';
import type { LbSetup, LinkSetup } from '../lb/setup.js';
import type { Problems } from '../part.js';
import type { PodmanSetup } from '../podman/setup.js';
import type { Registry } from '../registry/registry.js';
import type { StateDirHealth } from '../state/health.js';
import { VERSION } from '../version.js';
import type { ApiServer } from './server.js';

// The JSON of GET /api/v1/status (`podman-swarm-dns status`): one read of every part.

export interface StatusSources {
  registry: Registry;
  rt: Runtime;
  domain: string;
  startedAt: number;
  ready: boolean;
  problems: Problems;
  api: ApiServer;
  state: StateDirHealth;
  dns: DnsSetup;
  link: LinkSetup;
  gossip: GossipSetup;
  /** The etcd registry, when it replaces gossip (--registry etcd). */
  etcd: EtcdSetup | null;
  podman: PodmanSetup;
  health: HealthSetup;
  lb: LbSetup;
}

export function statusJson(s: StatusSources): Record<string, unknown> {
  const views = [...s.registry.services()];
  const all = views.flatMap((v) => v.endpoints);
  const link = s.link.link();
  const cluster = s.gossip.cluster();
  const podman = s.podman.source();
  const lb = s.lb.manager();
  return {
    node: { id: s.registry.localNode, name: s.rt.nodeName, address: s.rt.advertise },
    version: VERSION,
    uptime_seconds: Math.round((Date.now() - s.startedAt) / 1000),
    ready: s.ready,
    dns: {
      domain: s.domain,
      listen: s.dns.server.addresses.map(showHostPort),
      cluster_address: s.rt.dnsAddress,
      link: link ? { name: link.name, type: link.type } : null,
      upstreams: s.dns.forwarder.upstreams.map(showHostPort),
      path: s.dns.native.path,
      serve_stale: { window_seconds: s.dns.forwarder.serveStaleMs / 1000, answers: s.dns.forwarder.cache.staleHits },
    },
    api: { listen: s.api.listening.map((l) => apiListenKind.show(l)) },
    state: s.state.status(),
    cluster: cluster ? { gossip: cluster.transport.address, members: cluster.membership.size, stale: cluster.stale } : null,
    ...(s.etcd ? { etcd: s.etcd.status() } : {}),
    podman: podman ? { ...podman.status(), dns_gateways: s.dns.gateways.addresses } : null,
    health: s.health.checker.status(),
    lb: lb
      ? {
          listeners: [...lb.listeners()].map((l) => ({ service: l.spec.service, listen: l.spec.key, endpoints: l.backends.size })),
          active_connections: lb.limit.active,
        }
      : null,
    registry: {
      services: views.length,
      endpoints: all.length,
      healthy_endpoints: all.filter((e) => e.endpoint.healthy).length,
      nodes: [...s.registry.nodes()].length,
      index: s.registry.index,
    },
    problems: [
      ...s.problems.values(), ...[s.etcd?.stale()].filter((p): p is string => !!p), ...s.state.problems(), ...(podman?.problems() ?? []), ...s.dns.gateways.problems(),
      ...views.flatMap((v) => v.problems.map((p) => `${v.key}: ${p}`)),
      ...[...(lb?.failures.entries() ?? [])].map(([k, why]) => `load balancer ${k}: ${why}`),
    ],
  };
}
