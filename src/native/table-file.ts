import { renameSync, writeFileSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { Logger } from '../log.js';
import { BUDGET_MS } from './live-table.js';
import { TableCompiler, type TableInput } from './table.js';

// The answer table as a file for the next process (src/systemd/early-dns.ts reads it before the
// daemon has loaded): rewritten a while after the zone changed, at most once per interval and
// at most 1/BUSY_FACTOR of the time (a whole table of a large registry costs a second of CPU),
// compiled in slices of BUDGET_MS across event-loop turns and written off the event loop; and
// once more, whole, when the daemon stops for a restart. Written to a temp file and renamed: the
// reader sees the previous table or the new one, never a torn one.
//
// A table written from one registry state ends with an empty group whose id says what it was
// compiled from (table-source.ts) and how long its header is; a start whose registry gives the
// same digest serves the file's groups under a header of its own (previous()) instead of
// compiling them. A table the registry changed under while it was compiled in slices has no such
// group: it is for early-dns.ts only.

/** A table is written at most this often while the zone changes (a crash loses at most this much). */
export const TABLE_FILE_INTERVAL_MS = 10_000;
/** A change waits this long first (a burst of changes is one write). */
const SETTLE_MS = 1_000;
/** The time between two writes is at least this many times what the last one cost. */
const BUSY_FACTOR = 20;

/** The source group's id: `f:`, the digest (40 hex digits), `:`, the header's length (10 digits). */
const SOURCE_ID = 53;
/** The source group: u16 id length, the id, u8 rank, u32 0 entries. */
const SOURCE_GROUP = 2 + SOURCE_ID + 1 + 4;

/** A whole table (`header` + `groups`, as TableCompiler makes them) with its source group. */
export function withSource(header: Buffer, groups: Buffer[], source: string | null): Buffer {
  const head = Buffer.from(header);
  const all = source ? [...groups, sourceGroup(source, head.length)] : groups;
  head.writeUInt32BE(all.length, head.length - 4);
  return Buffer.concat([head, ...all]);
}

function sourceGroup(source: string, headerLength: number): Buffer {
  const id = `f:${source}:${String(headerLength).padStart(10, '0')}`;
  if (id.length !== SOURCE_ID) throw new Error('a table source is a sha1 digest in hex');
  const g = Buffer.alloc(SOURCE_GROUP);
  g.writeUInt16BE(SOURCE_ID, 0);
  g.write(id, 2, 'latin1');
  return g;
}

/** A table from the file: its header's length, and how many groups follow it. */
export interface PreviousTable {
  table: Buffer;
  headerLength: number;
  count: number;
}

/** `table` when it was compiled from `source`, or null. */
export function groupsOf(table: Buffer, source: string): PreviousTable | null {
  if (table.length < SOURCE_GROUP + 4) return null;
  const g = table.subarray(table.length - SOURCE_GROUP);
  if (g.readUInt16BE(0) !== SOURCE_ID || g[2 + SOURCE_ID] !== 0 || g.readUInt32BE(3 + SOURCE_ID) !== 0) return null;
  const id = g.toString('latin1', 2, 2 + SOURCE_ID);
  if (id.slice(0, 2) !== 'f:' || id.slice(2, 42) !== source || id[42] !== ':') return null;
  const headerLength = Number(id.slice(43));
  if (!Number.isInteger(headerLength) || headerLength < 4 || headerLength > table.length - SOURCE_GROUP) return null;
  return { table, headerLength, count: table.readUInt32BE(headerLength - 4) };
}

export class TableFile {
  private timer: NodeJS.Timeout | null = null;
  private writing = false;
  private dirty = false;
  private last = 0;
  /** The time between writes: the interval, or more when a write costs much. */
  private gap: number;
  private failed = false;
  /** Bumped by flush(): a write begun before it is dropped. */
  private generation = 0;

  constructor(
    private readonly path: string,
    private readonly input: () => TableInput,
    private readonly log: Logger,
    /** What the table is compiled from now (table-source.ts). */
    private readonly source: () => string,
    private readonly intervalMs = TABLE_FILE_INTERVAL_MS,
  ) {
    this.gap = intervalMs;
  }

  /**
   * The groups of the table in the file when it was compiled from `source()` (what the registry
   * holds once the file is read), else null (no file, another registry, a table without its source).
   */
  async previous(source: () => string): Promise<PreviousTable | null> {
    let table: Buffer;
    try {
      // Read off the event loop (10,000 services: 11 MB).
      table = await readFile(this.path);
    } catch {
      return null;
    }
    // What the registry holds once it is read: the caller adopts it in this same turn.
    return groupsOf(table, source());
  }

  /** The zone changed: a write is due. */
  changed(): void {
    this.dirty = true;
    if (this.timer || this.writing) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.write();
    }, Math.max(SETTLE_MS, this.last + this.gap - Date.now()));
    this.timer.unref();
  }

  /**
   * A whole table the daemon compiled from `source` (its header and groups): written as it is,
   * off the event loop, instead of compiling it again for the file.
   */
  whole(header: Buffer, groups: Buffer[], source: string): void {
    if (this.writing) return this.changed();
    this.stop();
    this.dirty = false;
    this.writing = true;
    this.store(withSource(header, groups, source), this.generation).finally(() => {
      this.writing = false;
      this.last = Date.now();
      if (this.dirty) this.changed();
    });
  }

  /** Writes the table now, in one go, when it changed since the last write (stop for a restart). */
  flush(): void {
    this.stop();
    // A write under way must not rename its older table over this one.
    this.generation++;
    if (!this.dirty && !this.writing) return;
    this.dirty = false;
    try {
      const tmp = `${this.path}.stop.tmp`;
      const source = this.source();
      const { header, groups } = new TableCompiler().whole(this.input());
      writeFileSync(tmp, withSource(header, groups, source));
      renameSync(tmp, this.path);
      this.written();
    } catch (e) {
      this.fail(e as Error);
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private get tmp(): string {
    return `${this.path}.tmp`;
  }

  private write(): void {
    this.dirty = false;
    this.writing = true;
    const parts = new TableCompiler().parts(this.input());
    const source = this.source();
    const all: Buffer[] = [];
    const generation = this.generation;
    let busy = 0;
    const done = (): void => {
      this.writing = false;
      this.last = Date.now();
      this.gap = Math.max(this.intervalMs, busy * BUSY_FACTOR);
      if (this.dirty) this.changed();
    };
    const step = (): void => {
      const start = performance.now();
      try {
        for (let r = parts.next(); !r.done; r = parts.next()) {
          if (r.value) all.push(...[r.value].flat());
          if (performance.now() - start >= BUDGET_MS) {
            busy += performance.now() - start;
            return void setImmediate(step);
          }
        }
        // Header (its group count still 0) and groups, as one table; compiled from `source` only
        // when the registry did not change meanwhile (then a write is due again anyway).
        const [header, ...groups] = all;
        const table = withSource(header!, groups, this.dirty ? null : source);
        busy += performance.now() - start;
        this.store(table, generation).finally(done);
      } catch (e) {
        this.fail(e as Error);
        busy += performance.now() - start;
        done();
      }
    };
    step();
  }

  /** Writes `table` off the event loop, in place of the file unless a stop wrote one meanwhile (`generation`). */
  private store(table: Buffer, generation: number): Promise<void> {
    return writeFile(this.tmp, table)
      .then(() => (generation === this.generation ? rename(this.tmp, this.path) : rm(this.tmp, { force: true })))
      .then(() => this.written(), (e: Error) => this.fail(e));
  }

  private written(): void {
    if (this.failed) this.log.info(`answer table for the next process written to ${this.path} again`);
    this.failed = false;
  }

  private fail(e: Error): void {
    if (!this.failed) this.log.warn(`could not write the answer table for the next process to ${this.path} (${e.message}); after a restart, queries wait for the daemon's start`);
    this.failed = true;
  }
}
