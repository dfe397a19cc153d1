import { join } from 'node:path';
import { validNodeState } from '../registry/remote.js';
import type { NodeState } from '../registry/types.js';
import { readJsonFile, writeFileAtomic, type ReadResult } from './files.js';

// The persisted registry (docs/architecture.md#state-snapshot): the other nodes' states and the gossip
// addresses of the members, so a restarted daemon answers at once from the last known state
// (marked stale until it hears from the cluster) and knows whom to rejoin. Written atomically;
// a corrupt or foreign-format file is moved aside by readJsonFile, never fatal.

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

  save(s: Snapshot): void {
    writeFileAtomic(this.path, JSON.stringify({ format: SNAPSHOT_FORMAT, saved_at: new Date().toISOString(), ...s }));
  }

  /** Saves `read()` after changes settle for debounceMs; errors go to `onError`. */
  schedule(read: () => Snapshot, onError: (e: Error) => void): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      try {
        this.save(read());
      } catch (e) {
        onError(e as Error);
      }
    }, this.debounceMs);
    this.timer.unref();
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
