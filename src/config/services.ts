import { endpointKey, type Endpoint, type ServiceMode } from '../registry/types.js';
import { InputError, label, parseEndpoint, show } from '../registry/input.js';

// The `services:` block of config.yaml (docs/architecture.md#configuration): endpoints this node owns, like API
// registrations but declared in the file and re-read on reload.

export const SERVICES_KEY = 'services';

export interface StaticService {
  namespace: string;
  name: string;
  mode?: ServiceMode;
  ttl?: number;
  endpoints: Endpoint[];
}

type Fail = (path: Array<string | number>, message: string) => never;

const SERVICE_KEYS = ['namespace', 'name', 'mode', 'ttl', 'endpoints'];

export interface ServiceLimits {
  maxPorts: number;
  maxEndpoints: number;
}

/** Services checked per slice (see loadConfigSliced): ~10 ms on Node 18 with 5 endpoints each. */
const SLICE = 500;

/** The `services:` block as endpoints; yields between slices of SLICE services. */
export function* parseServices(raw: unknown, now: number, fail: Fail, limits: ServiceLimits): Generator<void, StaticService[], void> {
  if (raw === null || raw === undefined) return [];
  if (!Array.isArray(raw)) fail([], 'expected a list of services (- name: ... endpoints: [...])');
  const seen = new Set<string>();
  const perService = new Map<string, number>();
  const out: StaticService[] = [];
  for (const [i, entry] of (raw as unknown[]).entries()) {
    if (i > 0 && i % SLICE === 0) yield;
    out.push(parseService(entry, i));
  }
  return out;

  function parseService(entry: unknown, i: number): StaticService {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      fail([i], 'expected a mapping with name and endpoints');
    }
    const s = entry as Record<string, unknown>;
    for (const key of Object.keys(s)) {
      if (!SERVICE_KEYS.includes(key)) fail([i, key], `unknown key (expected ${SERVICE_KEYS.join(', ')})`);
    }
    const field = <T>(key: string, parse: () => T): T => {
      try {
        return parse();
      } catch (e) {
        if (e instanceof InputError) fail([i, key], e.message);
        throw e;
      }
    };
    const name = keep(field('name', () => label(s.name, 'name')));
    const namespace = s.namespace === undefined ? 'default' : keep(field('namespace', () => label(s.namespace, 'namespace')));
    let mode: ServiceMode | undefined;
    if (s.mode !== undefined) {
      if (s.mode !== 'dnsrr' && s.mode !== 'vip') fail([i, 'mode'], `${show(s.mode)} is not a mode (expected dnsrr or vip)`);
      mode = s.mode;
    }
    let ttl: number | undefined;
    if (s.ttl !== undefined) {
      if (typeof s.ttl !== 'number' || !Number.isInteger(s.ttl) || s.ttl < 0 || s.ttl > 86400) {
        fail([i, 'ttl'], `${show(s.ttl)} is not a TTL (expected whole seconds 0–86400)`);
      }
      ttl = s.ttl;
    }
    if (!Array.isArray(s.endpoints)) fail([i, 'endpoints'], 'expected a list of endpoints (- address: ...)');
    const count = (perService.get(`${namespace}/${name}`) ?? 0) + (s.endpoints as unknown[]).length;
    if (count > limits.maxEndpoints) {
      fail([i, 'endpoints'], `${count} endpoints for ${namespace}/${name}, more than --max-endpoints-per-service ${limits.maxEndpoints}`);
    }
    perService.set(`${namespace}/${name}`, count);
    const endpoints = (s.endpoints as unknown[]).map((raw, j) => {
      let ep: Endpoint;
      try {
        ep = parseEndpoint(raw, { namespace, service: name, source: 'config', now, maxPorts: limits.maxPorts });
      } catch (e) {
        if (!(e instanceof InputError)) throw e;
        const path = e.field === '.' ? [] : e.field.split('.');
        return fail([i, 'endpoints', j, ...path], e.message);
      }
      const key = endpointKey(ep);
      if (seen.has(key)) {
        fail([i, 'endpoints', j], `endpoint id "${ep.id}" appears twice in ${namespace}/${name}; give each an id or a hostname`);
      }
      seen.add(key);
      ep.id = keep(ep.id);
      ep.hostname = keep(ep.hostname);
      ep.addresses = ep.addresses.map(keep);
      if (mode) ep.mode = mode;
      if (ttl !== undefined) ep.ttl = ttl;
      return ep;
    });
    const svc: StaticService = { namespace, name, endpoints };
    if (mode) svc.mode = mode;
    if (ttl !== undefined) svc.ttl = ttl;
    return svc;
  }
}

/**
 * A string kept from the file, in memory of its own: one the YAML reader cut from the file's text
 * (13 characters or more) is a slice of it, and one slice keeps the whole text alive (2.6 MB for
 * 10,000 services).
 */
const keep = (s: string): string => (s.length < 13 ? s : Buffer.from(s, 'utf8').toString('utf8'));
