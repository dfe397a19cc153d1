import { InputError, isLabel, label, parseHealth, parsePort, parseWeight, show } from '../registry/input.js';
import type { HealthSpec, NamedPort, ServiceMode } from '../registry/types.js';

// Container labels → what the container asks for (docs/architecture.md#podman). Pure. A bad value never rejects the
// container: the field is left out and the problem is returned, to be logged once and shown in
// `status` and the API.

export const PREFIX = 'podman-swarm.';
export const ENABLE = `${PREFIX}enable`;
const COMPOSE_SERVICE = ['com.docker.compose.service', 'io.podman.compose.service'];
const COMPOSE_PROJECT = ['com.docker.compose.project', 'io.podman.compose.project'];
const KNOWN = new Set(['service', 'namespace', 'mode', 'health', 'weight', 'ttl', 'enable']);

export interface LabelSpec {
  /** `podman-swarm.service` (valid), if present. */
  service?: string;
  /** Compose service label made a DNS label, if present. */
  composeService?: string;
  namespace?: string;
  /** Named ports from `podman-swarm.port.<name>`; empty when none are (validly) given. */
  ports: Record<string, NamedPort>;
  mode?: ServiceMode;
  health?: HealthSpec;
  weight?: number;
  ttl?: number;
  /** `podman-swarm.enable`: false opts out of network auto-registration. */
  enable?: boolean;
  /** The container carries `podman-swarm.service` at all (even an invalid one). */
  labelled: boolean;
  problems: string[];
}

/** Turns a free-form name (container name, compose project) into a DNS label, or undefined. */
export function toLabel(raw: string): string | undefined {
  const s = raw.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63).replace(/-+$/, '');
  return isLabel(s) ? s : undefined;
}

export function parseLabels(labels: Record<string, string> | null | undefined): LabelSpec {
  const l = labels ?? {};
  const spec: LabelSpec = { ports: {}, labelled: `${PREFIX}service` in l, problems: [] };
  const attempt = (key: string, fn: () => void): void => {
    try {
      fn();
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      spec.problems.push(`label ${key}=${show(l[key])}: ${e.message}; ignored`);
    }
  };
  for (const [key, value] of Object.entries(l)) {
    if (!key.startsWith(PREFIX)) continue;
    const field = key.slice(PREFIX.length);
    if (field.startsWith('port.')) {
      const name = field.slice('port.'.length);
      attempt(key, () => {
        spec.ports[label(name, key)] = parsePort(value, key);
      });
      continue;
    }
    switch (field) {
      case 'service':
        attempt(key, () => (spec.service = label(value, key)));
        break;
      case 'namespace':
        attempt(key, () => (spec.namespace = label(value, key)));
        break;
      case 'mode':
        attempt(key, () => {
          if (value !== 'dnsrr' && value !== 'vip') throw new InputError(key, 'expected dnsrr or vip');
          spec.mode = value;
        });
        break;
      case 'health':
        attempt(key, () => (spec.health = parseHealth(value, key)));
        break;
      case 'weight':
        attempt(key, () => (spec.weight = parseWeight(value, key)));
        break;
      case 'ttl':
        attempt(key, () => (spec.ttl = parseTtl(value, key)));
        break;
      case 'enable':
        attempt(key, () => {
          if (value !== 'true' && value !== 'false') throw new InputError(key, 'expected true or false');
          spec.enable = value === 'true';
        });
        break;
      default:
        if (!KNOWN.has(field)) spec.problems.push(`label ${key}: unknown podman-swarm label; ignored`);
    }
  }
  const compose = COMPOSE_SERVICE.map((k) => l[k]).find((v) => v !== undefined);
  if (compose !== undefined) spec.composeService = toLabel(compose);
  if (spec.namespace === undefined) {
    const project = COMPOSE_PROJECT.map((k) => l[k]).find((v) => v !== undefined);
    if (project !== undefined) spec.namespace = toLabel(project);
  }
  return spec;
}

/** Seconds: `30`, `30s`, `5m`, `1h`, 0–86400. */
function parseTtl(raw: string, field: string): number {
  const m = /^(\d{1,6})(s|m|h)?$/.exec(raw.trim());
  const n = m ? Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1) : NaN;
  if (!(n >= 0 && n <= 86400)) throw new InputError(field, 'expected a TTL in seconds (e.g. 30 or 30s, at most 1 day)');
  return n;
}
