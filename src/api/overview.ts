import type { LbManager } from '../lb/manager.js';
import type { Registry } from '../registry/registry.js';
import type { ServiceView } from '../registry/view.js';
import type { RecentChange } from './blocking.js';
import { endpointJson, nodeJson, serviceSummary, type EndpointJson, type ServiceSummaryJson } from './format.js';

// Everything the status page (/ui/) shows, in one read: members, services with their endpoints,
// load-balancer counters, DNS totals, recent registry changes and problems. Bounded: at most
// MAX_SERVICES services and MAX_ENDPOINTS endpoints each, the rest counted, so a large registry
// costs the same per read as a medium one.

export const MAX_SERVICES = 500;
export const MAX_ENDPOINTS = 200;

export interface OverviewSources {
  registry: Registry;
  status: Record<string, unknown>;
  members: unknown[] | undefined;
  lb: LbManager | null;
  dns: Array<{ rcode: string; path: string; count: number }>;
  changes: RecentChange[];
}

export interface OverviewService extends ServiceSummaryJson {
  problems: string[];
  endpoints_shown: Array<EndpointJson & { reason: string | null }>;
}

export interface LbListenerJson {
  service: string;
  listener: string;
  backends: Array<{ backend: string; id: string; active: number; connections: number; bytes_to_backend: number; bytes_from_backend: number; connect_failures: number; ejections: number; ejected: boolean; current: boolean }>;
}

/** `query`: only services whose `namespace/name` contains it (the page's search box). */
export function overview(src: OverviewSources, query: string, now = Date.now()): Record<string, unknown> {
  const reasons = new Map<string, string | null>();
  const health = src.status.health as { unhealthy: Array<{ endpoint: string; reason: string | null }> } | undefined;
  for (const u of health?.unhealthy ?? []) reasons.set(u.endpoint, u.reason);
  const q = query.trim().toLowerCase();
  const matching: ServiceView[] = [];
  let total = 0;
  for (const v of src.registry.services()) {
    if (q && !v.key.includes(q)) continue;
    total++;
    if (matching.length < MAX_SERVICES) matching.push(v);
  }
  matching.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const services: OverviewService[] = matching.map((v) => ({
    ...serviceSummary(v),
    problems: v.problems,
    endpoints_shown: v.endpoints.slice(0, MAX_ENDPOINTS).map((e) => ({
      ...endpointJson(v, e),
      reason: e.endpoint.healthy ? null : (reasons.get(`${v.key}/${e.endpoint.id}`) ?? (e.local ? null : 'reported unhealthy by its node')),
    })),
  }));
  return {
    time: now,
    status: src.status,
    members: src.members ?? [...src.registry.nodes()].map((n) => nodeJson(n, src.registry.localNode)),
    services,
    services_total: total,
    lb: src.lb ? lbJson(src.lb, now) : null,
    lb_refused: src.lb?.limit.refused ?? 0,
    dns: src.dns,
    changes: src.changes,
  };
}

function lbJson(lb: LbManager, now: number): LbListenerJson[] {
  const out: LbListenerJson[] = [];
  for (const l of lb.listeners()) {
    out.push({
      service: l.spec.service,
      listener: l.spec.key,
      backends: l.backends.reportable().map((b) => ({
        backend: `${b.host}:${b.port}`,
        id: b.id,
        active: b.active,
        connections: b.connections,
        bytes_to_backend: b.bytesOut,
        bytes_from_backend: b.bytesIn,
        connect_failures: b.connectFailures,
        ejections: b.ejections,
        ejected: b.ejectedUntil > now,
        current: b.current,
      })),
    });
  }
  return out;
}
