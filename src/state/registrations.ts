import { join } from 'node:path';
import { InputError, parseEndpoint } from '../registry/input.js';
import type { Endpoint } from '../registry/types.js';
import { readJsonFile, writeFileAtomicAsync, type ReadResult } from './files.js';

// Endpoints registered through the API survive a restart, as Consul's agent keeps its services:
// they are this node's own data and nobody else would bring them back.

const FILE = 'api-endpoints.json';
const FORMAT = 1;

interface Stored {
  format: number;
  endpoints: Array<{ namespace: string; service: string; id: string; address: string; hostname: string; ports: Record<string, string>; weight: number; health: string; registered: number }>;
}

export class RegistrationStore {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, FILE);
  }

  /**
   * The saved registrations. One that today's rules refuse (an address or a port count accepted by
   * an older version) is left out and named in `skipped`, not a reason to drop the others.
   */
  load(): ReadResult<{ endpoints: Endpoint[]; skipped: string[] }> {
    return readJsonFile(this.path, (raw) => {
      const data = raw as Stored;
      if (data?.format !== FORMAT || !Array.isArray(data.endpoints)) throw new Error(`not a format ${FORMAT} registration file`);
      const endpoints: Endpoint[] = [];
      const skipped: string[] = [];
      for (const e of data.endpoints) {
        try {
          endpoints.push(
            parseEndpoint(
              { id: e.id, address: e.address, hostname: e.hostname, ports: e.ports, weight: e.weight, health: e.health },
              { namespace: e.namespace, service: e.service, source: 'api', now: e.registered, maxPorts: Infinity },
            ),
          );
        } catch (err) {
          if (!(err instanceof InputError)) throw err;
          skipped.push(`${e.namespace}/${e.service} ${e.id}: ${err.field}: ${err.message}`);
        }
      }
      return { endpoints, skipped };
    });
  }

  save(endpoints: Endpoint[]): Promise<void> {
    const data: Stored = {
      format: FORMAT,
      endpoints: endpoints.map((e) => ({
        namespace: e.namespace,
        service: e.service,
        id: e.id,
        address: e.addresses[0]!,
        hostname: e.hostname,
        ports: Object.fromEntries(Object.entries(e.ports).map(([n, p]) => [n, `${p.port}/${p.protocol}`])),
        weight: e.weight,
        health: e.health,
        registered: e.lastSeen,
      })),
    };
    return writeFileAtomicAsync(this.path, `${JSON.stringify(data, null, 2)}\n`);
  }
}
