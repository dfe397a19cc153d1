import { createHash } from 'node:crypto';
import { validNodeState } from '../registry/remote.js';
import type { Endpoint, NodeState } from '../registry/types.js';
import type { KeyValue, TxnOp, WatchEvent } from './client.js';

// The registry in etcd (docs/etcd.md#keys), pure: the key layout, what one node writes, the smallest
// transaction from one written state to the next, and node states assembled back from keys.
//
//   <prefix>nodes/<node-id>                                  {"name","address","incarnation"}
//   <prefix>endpoints/<node-id>/<namespace>/<service>/<id>    the endpoint, as JSON
//
// All of a node's keys hang on its lease: when the node dies its keys expire together. An id is
// URI-encoded in its key (endpoint ids may hold any character but "/" would split the path).
// A node state's version is the highest mod revision among its keys, so it only grows, and the
// registry's merge rule (a higher version wins) holds as with gossip.

export interface NodeMeta {
  name: string;
  address: string;
  incarnation: number;
}

export const nodeKey = (prefix: string, id: string): string => `${prefix}nodes/${encodeURIComponent(id)}`;
export const endpointKeyOf = (prefix: string, node: string, e: Pick<Endpoint, 'namespace' | 'service' | 'id'>): string =>
  `${prefix}endpoints/${encodeURIComponent(node)}/${e.namespace}/${e.service}/${encodeURIComponent(e.id)}`;

/** Every key one node state is written as, with its value. */
export function keysOf(prefix: string, s: NodeState): Map<string, string> {
  const m = new Map<string, string>();
  m.set(nodeKey(prefix, s.id), JSON.stringify({ name: s.name, address: s.address, incarnation: s.incarnation } satisfies NodeMeta));
  for (const e of s.endpoints) m.set(endpointKeyOf(prefix, s.id, e), JSON.stringify(e));
  return m;
}

/** The operations that turn `written` into `next`: changed and new keys put (on `lease`), vanished ones deleted. */
export function diffKeys(written: ReadonlyMap<string, string>, next: ReadonlyMap<string, string>, lease: string): TxnOp[] {
  const ops: TxnOp[] = [];
  for (const [k, v] of next) if (written.get(k) !== v) ops.push({ put: k, value: v, lease });
  for (const k of written.keys()) if (!next.has(k)) ops.push({ del: k });
  return ops;
}

/** Where a zone's SkyDNS records live: the prefix, then the zone's labels reversed (`cluster.local` → `/skydns/local/cluster/`). */
export const skydnsBase = (skydnsPrefix: string, zone: string): string =>
  `${skydnsPrefix.replace(/\/+$/, '')}/${zone.split('.').filter(Boolean).reverse().join('/')}/`;

const TAG = 12;
const nodeTag = (node: string): string => createHash('sha256').update(node).digest('hex').slice(0, TAG);

/**
 * The last label of an endpoint's SkyDNS key: CoreDNS makes it the SRV target's first label, so
 * it is a DNS label (at most 63 letters, digits and '-'): the endpoint's hostname, cut to 38, then
 * a tag of the node and one of the endpoint id (12 hex each), unique per endpoint and naming its node.
 */
export function skydnsLeaf(node: string, e: Pick<Endpoint, 'hostname' | 'id'>): string {
  const host = e.hostname.toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 38).replace(/^-+/, '') || 'e';
  return `${host}-${nodeTag(node)}${createHash('sha256').update(e.id).digest('hex').slice(0, TAG)}`;
}

/** Whether a key under the SkyDNS prefix was written by `node` (its leaf carries the node's tag). */
export const isSkydnsKeyOf = (node: string, key: string): boolean => /-[0-9a-f]{24}$/.test(key) && key.slice(-2 * TAG, -TAG) === nodeTag(node);

/**
 * SkyDNS records (the layout CoreDNS's etcd plugin reads) for a node's healthy endpoints:
 * `<skydns>/<reversed zone>/<ns>/<svc>/<leaf>` → {"host", "port", "weight", "ttl"}: a query for
 * `<svc>.<ns>.<zone>` gets every record under its path. One port per record (the first).
 */
export function skydnsKeysOf(skydnsPrefix: string, zone: string, s: NodeState): Map<string, string> {
  const base = skydnsBase(skydnsPrefix, zone);
  const m = new Map<string, string>();
  for (const e of s.endpoints) {
    // An isolated endpoint (rootless, nothing published) is reachable from its own host only.
    if (!e.healthy || !e.addresses[0] || e.container?.isolated) continue;
    const port = Object.values(e.ports)[0];
    // Other hosts reach a container through the node's published port when it has one.
    const viaNode = !e.explicit && port?.hostPort !== undefined;
    const host = viaNode ? s.address : e.addresses[0];
    const value = { host, ...(port ? { port: viaNode ? port.hostPort : port.port } : {}), weight: e.weight, ...(e.ttl !== undefined ? { ttl: e.ttl } : {}) };
    m.set(`${base}${e.namespace}/${e.service}/${skydnsLeaf(s.id, e)}`, JSON.stringify(value));
  }
  return m;
}

interface Assembled {
  meta: NodeMeta | null;
  endpoints: Map<string, Endpoint>;
  revision: number;
}

/**
 * Node states rebuilt from the keys under the prefix, fed with a listing and then watch events.
 * A node is published once its node key exists; its keys that do not parse are skipped and
 * counted. `apply` returns the nodes each batch touched.
 */
export class NodeAssembler {
  private readonly nodes = new Map<string, Assembled>();
  /** Keys under the prefix that are not a well-formed node or endpoint record. */
  skipped = 0;

  constructor(private readonly prefix: string) {}

  reset(): void {
    this.nodes.clear();
  }

  /** Every node held is at least at `revision` (a listing's): its next state replaces any older one. */
  settle(revision: number): void {
    for (const n of this.nodes.values()) n.revision = Math.max(n.revision, revision);
  }

  ids(): string[] {
    return [...this.nodes.keys()];
  }

  apply(events: ReadonlyArray<WatchEvent>): Set<string> {
    const touched = new Set<string>();
    for (const ev of events) {
      const key = ev.type === 'put' ? ev.kv.key : ev.key;
      const where = this.parse(key);
      if (!where) {
        this.skipped++;
        continue;
      }
      const n = this.nodes.get(where.node) ?? { meta: null, endpoints: new Map(), revision: 0 };
      this.nodes.set(where.node, n);
      n.revision = Math.max(n.revision, ev.type === 'put' ? ev.kv.modRevision : ev.modRevision);
      touched.add(where.node);
      if (ev.type === 'delete') {
        if (where.endpoint === null) n.meta = null;
        else n.endpoints.delete(where.endpoint);
        if (!n.meta && n.endpoints.size === 0) this.nodes.delete(where.node);
        continue;
      }
      if (!this.put(n, where, ev.kv)) this.skipped++;
    }
    return touched;
  }

  /** The node's state, or null when it has no node record (gone, or not written yet). */
  state(id: string): NodeState | null {
    const n = this.nodes.get(id);
    if (!n?.meta) return null;
    return { id, ...n.meta, version: n.revision, endpoints: [...n.endpoints.values()] };
  }

  private put(n: Assembled, where: { node: string; endpoint: string | null }, kv: KeyValue): boolean {
    let v: unknown;
    try {
      v = JSON.parse(kv.value);
    } catch {
      return false;
    }
    if (where.endpoint === null) {
      const m = v as Partial<NodeMeta>;
      const state = validNodeState({ id: where.node, name: m?.name, address: m?.address, incarnation: m?.incarnation, version: 0, endpoints: [] });
      if (!state) return false;
      n.meta = { name: state.name, address: state.address, incarnation: state.incarnation };
      return true;
    }
    // The key names the endpoint: a value claiming another place is refused.
    const state = validNodeState({ id: where.node, name: 'x', address: '0.0.0.0', incarnation: 0, version: 0, endpoints: [v] });
    const e = state?.endpoints[0];
    if (!e || endpointKeyOf(this.prefix, where.node, e) !== kv.key) return false;
    n.endpoints.set(where.endpoint, e);
    return true;
  }

  private parse(key: string): { node: string; endpoint: string | null } | null {
    if (!key.startsWith(this.prefix)) return null;
    const parts = key.slice(this.prefix.length).split('/');
    try {
      if (parts[0] === 'nodes' && parts.length === 2 && parts[1]) return { node: decodeURIComponent(parts[1]), endpoint: null };
      if (parts[0] === 'endpoints' && parts.length === 5 && parts.every(Boolean)) return { node: decodeURIComponent(parts[1]!), endpoint: parts.slice(2).join('/') };
    } catch {
      /* a malformed %-escape */
    }
    return null;
  }
}
