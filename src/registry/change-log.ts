import type { Logger } from '../log.js';
import { plural } from '../part.js';
import type { Registry } from './registry.js';

/** Services named one by one per change; a larger change (a start, a state file, a host coming back) adds one line with the rest's count. */
export const NAMED_PER_CHANGE = 20;

/** Logs every change of a service (from any node): its endpoint count, or that it is gone. */
export function logServiceChanges(registry: Registry, log: Logger): void {
  registry.onChange((change) => {
    const keys = change.services;
    for (const key of keys.length > NAMED_PER_CHANGE ? keys.slice(0, NAMED_PER_CHANGE) : keys) {
      const [ns, svc] = key.split('/') as [string, string];
      const v = registry.service(ns, svc);
      const healthy = v ? v.endpoints.filter((e) => e.endpoint.healthy).length : 0;
      log.info({ service: key, endpoints: v?.endpoints.length ?? 0, healthy }, v ? `service ${key}: ${plural(v.endpoints.length, 'endpoint')} (${healthy} healthy)` : `service ${key} removed`);
    }
    if (keys.length > NAMED_PER_CHANGE) {
      const rest = keys.length - NAMED_PER_CHANGE;
      log.info({ services: keys.length }, `and ${plural(rest, 'more service')} changed (${keys.length} in one change)`);
    }
  });
}
