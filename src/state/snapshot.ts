import { join } from 'node:path';
import { validNodeState } from '../registry/remote.js';
import { NO_PORTS, type Endpoint, type NamedPort, type NodeState } from '../registry/types.js';
import { readTextFile, writeFileAtomic, writeFileAtomicAsync, type ReadResult } from './files.js';

// The persisted registry (docs/architecture.md#state-snapshot): the other nodes' states and the gossip
// addresses of the members, so a restarted daemon answers at once from the last known state
// (marked stale until it hears from the cluster) and knows whom to rejoin. Written atomically;
// a corrupt or foreign-format file is moved aside by readJsonFile, never fatal. A save after a
// change serializes only the node states that changed since the last one (each node's JSON is
// kept while its state stays the same) and writes off the event loop.

/**
 * Format 2: a line `{format, saved_at, members}`, then a line per node state, its endpoints as
 * rows (`toRow`). Files of format 1 (one JSON document, endpoint objects) are still read.
 */
export const SNAPSHOT_FORMAT = 2;

export interface SnapshotMember {
  id: string;
  name: string;
  addr: string;
}

export interface Snapshot {
  nodes: NodeState[];
  members: SnapshotMember[];
}

export class SnapshotFile {
  readonly path: string;
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private readonly json = new WeakMap<NodeState, { version: number; text: string }>();

  constructor(stateDir: string, private readonly debounceMs = 500) {
    this.path = join(stateDir, 'state');
  }

  load(): ReadResult<Snapshot> {
    return readTextFile(this.path, (text) => {
      // Format 2: each node state parsed by itself, so that the rows of one are garbage before
      // the next is read (parsed whole, every row outlived young collections: ~60 ms more at 100
      // node states of 500 endpoints on Node 18).
      const [head, ...lines] = text.split('\n');
      if (lines.at(-1) === '') lines.pop(); // the last line's end
      const o = JSON.parse(head!) as { format?: unknown; nodes?: unknown; members?: unknown };
      if (typeof o !== 'object' || o === null || (o.format !== 1 && o.format !== SNAPSHOT_FORMAT)) throw new Error(`not a state file of format 1 or ${SNAPSHOT_FORMAT}`);
      const nodes: NodeState[] = [];
      const add = (n: unknown): void => void nodes.push(validNodeState(n) ?? fail('a node state is not well-formed'));
      if (o.format === 1) {
        if (!Array.isArray(o.nodes)) throw new Error('nodes missing');
        for (const n of o.nodes) add(n);
      }
      if (o.format === SNAPSHOT_FORMAT) for (const line of lines) add(fromRows(JSON.parse(line)));
      if (!Array.isArray(o.members)) throw new Error('members missing');
      const members = (o.members as unknown[]).filter(
        (m): m is SnapshotMember => typeof m === 'object' && m !== null && typeof (m as SnapshotMember).id === 'string' && typeof (m as SnapshotMember).addr === 'string',
      );
      return { nodes, members };
    });
  }

  /** Saves now, synchronously (at stop, and tests). */
  save(s: Snapshot): void {
    writeFileAtomic(this.path, this.serialize(s));
  }

  /** The file's text; the JSON of node states seen before (same object, same version) is reused. */
  private serialize(s: Snapshot): string {
    const nodes = s.nodes.map((n) => {
      let c = this.json.get(n);
      if (!c || c.version !== n.version) this.json.set(n, (c = { version: n.version, text: JSON.stringify({ ...n, endpoints: n.endpoints.map(toRow) }) }));
      return c.text;
    });
    const head = `{"format":${SNAPSHOT_FORMAT},"saved_at":${JSON.stringify(new Date().toISOString())},"members":${JSON.stringify(s.members)}}`;
    return `${[head, ...nodes].join('\n')}\n`;
  }

  /** Saves `read()` after changes settle for debounceMs, off the event loop; errors go to `onError`. */
  schedule(read: () => Snapshot, onError: (e: Error) => void): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      let text: string;
      try {
        text = this.serialize(read());
      } catch (e) {
        return onError(e as Error);
      }
      // One write at a time, in order: a later save never lands under an earlier one.
      this.writing = this.writing.then(() => writeFileAtomicAsync(this.path, text)).catch((e: Error) => onError(e));
    }, this.debounceMs);
    this.timer.unref();
  }

  /** Resolves when the saves started so far are written (tests). */
  written(): Promise<void> {
    return this.writing;
  }

  /** Writes a pending save now (at stop). */
  flush(read: () => Snapshot, onError: (e: Error) => void): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    try {
      this.save(read());
    } catch (e) {
      onError(e as Error);
    }
  }
}

function fail(why: string): never {
  throw new Error(why);
}

/** What an endpoint's row holds after its ten fixed fields and its ports, when it has any of it. */
interface Rest {
  mode?: Endpoint['mode'];
  ttl?: number;
  container?: Endpoint['container'];
  problems?: string[];
}

/**
 * An endpoint as the file stores it (format 2): `[id, namespace, service, hostname, addresses,
 * flags, weight, health, source, lastSeen, ports?, rest?]`, flags 1 explicit + 2 healthy, ports
 * 0 when it has none. At 50,000 endpoints the file is 40 % the size of one of endpoint objects,
 * and reading it at start takes about two thirds of the time (bench/RESULTS.md).
 */
export function toRow(e: Endpoint): unknown[] {
  const row: unknown[] = [e.id, e.namespace, e.service, e.hostname, e.addresses, (e.explicit ? 1 : 0) | (e.healthy ? 2 : 0), e.weight, e.health, e.source, e.lastSeen];
  let rest: Rest | undefined;
  if (e.mode !== undefined) (rest ??= {}).mode = e.mode;
  if (e.ttl !== undefined) (rest ??= {}).ttl = e.ttl;
  if (e.container !== undefined) (rest ??= {}).container = e.container;
  if (e.problems !== undefined) (rest ??= {}).problems = e.problems;
  const ports = Object.keys(e.ports).length > 0;
  if (ports || rest) row.push(ports ? e.ports : 0);
  if (rest) row.push(rest);
  return row;
}

/**
 * A format-2 node state as the registry holds it: its rows made endpoints again, for
 * validNodeState to check. Null when a row is not one (wrong length, flags, rest).
 */
function fromRows(v: unknown): unknown {
  const n = v as { endpoints?: unknown };
  if (typeof n !== 'object' || n === null || !Array.isArray(n.endpoints)) return null;
  const endpoints: Endpoint[] = [];
  for (const r of n.endpoints as unknown[]) {
    const e = fromRow(r);
    if (e === null) return null;
    endpoints.push(e);
  }
  return { ...n, endpoints };
}

function fromRow(r: unknown): Endpoint | null {
  if (!Array.isArray(r) || r.length < 10 || r.length > 12) return null;
  const flags = r[5] as unknown;
  if (typeof flags !== 'number' || (flags & ~3) !== 0) return null;
  const ports = r.length > 10 && r[10] !== 0 ? (r[10] as Record<string, NamedPort>) : NO_PORTS;
  const e: Endpoint = { id: r[0], namespace: r[1], service: r[2], hostname: r[3], addresses: r[4], explicit: (flags & 1) !== 0, ports, weight: r[6], health: r[7], healthy: (flags & 2) !== 0, source: r[8], lastSeen: r[9] };
  if (r.length === 12) {
    const rest = r[11] as Rest;
    if (typeof rest !== 'object' || rest === null) return null;
    if (rest.mode !== undefined) e.mode = rest.mode;
    if (rest.ttl !== undefined) e.ttl = rest.ttl;
    if (rest.container !== undefined) {
      const c = rest.container;
      if (typeof c !== 'object' || c === null || typeof c.id !== 'string' || typeof c.name !== 'string') return null;
      e.container = c;
    }
    if (rest.problems !== undefined) e.problems = rest.problems;
  }
  return e;
}
