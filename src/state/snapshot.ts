import { join } from 'node:path';
import { validNodeState } from '../registry/remote.js';
import type { NodeState } from '../registry/types.js';
import { readJsonFile, writeFileAtomic, writeFileAtomicAsync, type ReadResult } from './files.js';

// The persisted registry (docs/architecture.md#state-snapshot): the other nodes' states and the gossip
// addresses of the members, so a restarted daemon answers at once from the last known state
// (marked stale until it hears from the cluster) and knows whom to rejoin. Written atomically;
// a corrupt or foreign-format file is moved aside by readJsonFile, never fatal. A save after a
// change serializes only the node states that changed since the last one (each node's JSON is
// kept while its state stays the same) and writes off the event loop.

export const SNAPSHOT_FORMAT = 1;

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
    return readJsonFile(this.path, (v) => {
      const o = v as { format?: unknown; nodes?: unknown; members?: unknown };
      if (typeof o !== 'object' || o === null || o.format !== SNAPSHOT_FORMAT) throw new Error(`not a state file of format ${SNAPSHOT_FORMAT}`);
      if (!Array.isArray(o.nodes) || !Array.isArray(o.members)) throw new Error('nodes or members missing');
      const nodes = o.nodes.map((n) => validNodeState(n) ?? (() => { throw new Error('a node state is not well-formed'); })());
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
      if (!c || c.version !== n.version) this.json.set(n, (c = { version: n.version, text: JSON.stringify(n) }));
      return c.text;
    });
    return `{"format":${SNAPSHOT_FORMAT},"saved_at":${JSON.stringify(new Date().toISOString())},"nodes":[${nodes.join(',')}],"members":${JSON.stringify(s.members)}}`;
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
