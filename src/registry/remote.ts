import { isIP } from 'node:net';
import { isLabel } from './input.js';
import { NO_PORTS, type Endpoint, type NodeState } from './types.js';

// A node state received from another host is checked field by field before the registry sees
// it: a buggy or hostile peer (with the key) must not be able to crash views or DNS answers.

const isStr = (v: unknown, max = 255): v is string => typeof v === 'string' && v.length <= max;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isPort = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;

export function validEndpoint(e: unknown): e is Endpoint {
  if (typeof e !== 'object' || e === null) return false;
  const x = e as Record<string, unknown>;
  if (!isStr(x.id) || !isLabel(String(x.namespace)) || !isLabel(String(x.service)) || !isLabel(String(x.hostname))) return false;
  if (!Array.isArray(x.addresses) || x.addresses.length > 16 || !x.addresses.every((a) => isStr(a, 64) && isIP(a) !== 0)) return false;
  if (typeof x.explicit !== 'boolean' || typeof x.healthy !== 'boolean') return false;
  if (!Number.isInteger(x.weight) || (x.weight as number) < 1 || (x.weight as number) > 100) return false;
  if (!isStr(x.health) || !isStr(x.source) || !isNum(x.lastSeen)) return false;
  if (x.mode !== undefined && x.mode !== 'dnsrr' && x.mode !== 'vip') return false;
  if (x.ttl !== undefined && !isNum(x.ttl)) return false;
  if (typeof x.ports !== 'object' || x.ports === null || Array.isArray(x.ports)) return false;
  for (const [name, p] of Object.entries(x.ports as Record<string, unknown>)) {
    if (!isLabel(name) || typeof p !== 'object' || p === null) return false;
    const q = p as Record<string, unknown>;
    if (!isPort(q.port) || (q.protocol !== 'tcp' && q.protocol !== 'udp')) return false;
    if (q.hostPort !== undefined && !isPort(q.hostPort)) return false;
  }
  if (x.problems !== undefined && (!Array.isArray(x.problems) || !x.problems.every((p) => isStr(p, 1000)))) return false;
  return true;
}

/**
 * The state, or null when it is not a well-formed NodeState. Its endpoints without ports are
 * given the shared empty `ports` (NO_PORTS) in place of the ones parsed.
 */
export function validNodeState(v: unknown): NodeState | null {
  if (typeof v !== 'object' || v === null) return null;
  const s = v as Record<string, unknown>;
  if (!isStr(s.id, 64) || !isStr(s.name) || !isStr(s.address, 64) || !isNum(s.incarnation) || !isNum(s.version)) return null;
  if (!Array.isArray(s.endpoints) || !s.endpoints.every(validEndpoint)) return null;
  for (const e of s.endpoints as Endpoint[]) {
    if (e.ports !== NO_PORTS && Object.keys(e.ports).length === 0) e.ports = NO_PORTS;
  }
  return v as NodeState;
}
