import { Counter, Gauge, type Registry as PromRegistry } from 'prom-client';
import type { HealthChecker } from './checker.js';

// Health-check metrics, read from the checker at scrape time: how many local endpoints fail now,
// and how often they change state (a flapping endpoint shows as a steady rate of transitions).

const P = 'podman_swarm_dns_';

export function registerHealthMetrics(prom: PromRegistry, checker: HealthChecker): void {
  const registers = [prom];
  new Counter({
    name: `${P}health_transitions_total`,
    help: "Changes of a local endpoint's health, by the state it changed to (healthy, unhealthy)",
    labelNames: ['to'],
    registers,
    collect() {
      this.reset();
      for (const to of ['healthy', 'unhealthy'] as const) this.inc({ to }, checker.transitions[to]);
    },
  });
  new Gauge({
    name: `${P}health_checked_endpoints`, help: 'Local endpoints with a health check', labelNames: ['state'], registers,
    collect() {
      const s = checker.status();
      this.set({ state: 'unhealthy' }, s.unhealthy.length);
      this.set({ state: 'healthy' }, s.checked - s.unhealthy.length);
    },
  });
}
