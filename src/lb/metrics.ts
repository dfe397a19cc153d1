import { Counter, Gauge, type Registry as PromRegistry } from 'prom-client';
import type { LbManager } from './manager.js';

// Load-balancer metrics, read from the proxies' plain counters at scrape time: counting through
// prom-client's labelled inc() on every relayed chunk would cost more than the relay itself.

const P = 'podman_swarm_dns_';

export function registerLbMetrics(prom: PromRegistry, lb: () => LbManager | null): void {
  const registers = [prom];
  type Row = { labels: Record<string, string>; b: import('./backends.js').Backend };
  const rows = (): Row[] => {
    const m = lb();
    if (!m) return [];
    const out: Row[] = [];
    for (const l of m.listeners()) {
      for (const b of l.backends.reportable()) {
        out.push({ labels: { service: l.spec.service, listener: l.spec.key, backend: `${b.host}:${b.port}` }, b });
      }
    }
    return out;
  };
  const labelNames = ['service', 'listener', 'backend'] as const;
  const counter = (name: string, help: string, read: (b: Row['b']) => number): void => {
    new Counter({
      name: `${P}${name}`, help, labelNames, registers,
      collect() {
        this.reset();
        for (const r of rows()) this.inc(r.labels, read(r.b));
      },
    });
  };
  counter('lb_connections_total', 'Connections (TCP) or sessions (UDP) the load balancer opened to each endpoint', (b) => b.connections);
  counter('lb_bytes_to_backend_total', 'Bytes relayed from clients to each endpoint', (b) => b.bytesOut);
  counter('lb_bytes_from_backend_total', 'Bytes relayed from each endpoint to clients', (b) => b.bytesIn);
  counter('lb_connect_failures_total', 'Failed connects to each endpoint (each one retried on the next endpoint)', (b) => b.connectFailures);
  counter('lb_ejections_total', 'Times each endpoint was taken out of rotation after a failed connect', (b) => b.ejections);
  new Gauge({
    name: `${P}lb_active_connections`, help: 'Open connections (TCP) or sessions (UDP) per endpoint', labelNames, registers,
    collect() {
      this.reset();
      for (const r of rows()) this.set(r.labels, r.b.active);
    },
  });
  new Counter({
    name: `${P}lb_refused_total`, help: 'Client connections closed at once because --lb-max-connections was reached', registers,
    collect() {
      this.reset();
      this.inc(lb()?.limit.refused ?? 0);
    },
  });
  new Counter({
    name: `${P}lb_udp_sessions_evicted_total`, help: 'UDP sessions ended early to make room for a new client because --lb-udp-max-sessions was reached', registers,
    collect() {
      this.reset();
      let n = 0;
      for (const l of lb()?.listeners() ?? []) n += l.udp?.evicted ?? 0;
      this.inc(n);
    },
  });
}
