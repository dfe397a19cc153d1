import type { Options } from '../config/options.js';
import type { Context, Part } from '../part.js';
import type { LocalNode } from '../registry/local.js';
import { HealthChecker, type HealthOptions } from './checker.js';

// Local health checks (docs/architecture.md#health): the endpoints this node owns, probed on
// their ports or read from Podman's own healthcheck; results change only this node's state.

export interface HealthSetup extends Part {
  checker: HealthChecker;
}

export function setupHealth(c: Context, d: { local: LocalNode; podmanHealth: (containerId: string) => Promise<string | undefined> }): HealthSetup {
  const checker = new HealthChecker(d.local, healthOptions(c.opts), d.podmanHealth, c.log);
  return {
    checker,
    start: async () => checker.start(),
    reload: (next) => checker.configure(healthOptions(next)),
    stop: async () => checker.stop(),
  };
}

const healthOptions = (o: Options): HealthOptions => ({ intervalMs: o.healthInterval, timeoutMs: o.healthTimeout, rise: o.healthRise, fall: o.healthFall });
