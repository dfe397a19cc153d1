import type { Logger } from '../log.js';
import { plural } from '../part.js';
import type { Registry } from './registry.js';

/** Logs every change of a service (from any node): its endpoint count, or that it is gone. */
export function logServiceChanges(registry: Registry, log: Logger): void {
  registry.onChange((change) => {
    for (const key of change.services) {
      const [ns, svc] = key.split('/') as [string, string];
      const v = registry.service(ns, svc);
      const healthy = v ? v.endpoints.filter((e) => e.endpoint.healthy).length : 0;
      log.info({ service: key, endpoints: v?.endpoints.length ?? 0, healthy }, v ? `service ${key}: ${plural(v.endpoints.length, 'endpoint')} (${healthy} healthy)` : `service ${key} removed`);
    }
  });
}
