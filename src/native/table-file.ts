import { renameSync, writeFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import type { Logger } from '../log.js';
import { BUDGET_MS } from './live-table.js';
import { TableCompiler, type TableInput } from './table.js';

// The answer table as a file for the next process (src/systemd/early-dns.ts reads it before the
// daemon has loaded): rewritten a while after the zone changed, at most once per interval and
// at most 1/BUSY_FACTOR of the time (a whole table of a large registry costs a second of CPU),
// compiled in slices of BUDGET_MS across event-loop turns and written off the event loop; and
// once more, whole, when the daemon stops for a restart. Written to a temp file and renamed: the
// reader sees the previous table or the new one, never a torn one.

/** A table is written at most this often while the zone changes (a crash loses at most this much). */
export const TABLE_FILE_INTERVAL_MS = 10_000;
/** A change waits this long first (a burst of changes is one write). */
const SETTLE_MS = 1_000;
/** The time between two writes is at least this many times what the last one cost. */
const BUSY_FACTOR = 20;

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
    private readonly intervalMs = TABLE_FILE_INTERVAL_MS,
  ) {
    this.gap = intervalMs;
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

  /** Writes the table now, in one go, when it changed since the last write (stop for a restart). */
  flush(): void {
    this.stop();
    // A write under way must not rename its older table over this one.
    this.generation++;
    if (!this.dirty && !this.writing) return;
    this.dirty = false;
    try {
      const tmp = `${this.path}.stop.tmp`;
      writeFileSync(tmp, new TableCompiler().compile(this.input()));
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
        // Header (its group count still 0) and groups, as one table.
        const [header, ...groups] = all;
        const head = Buffer.from(header!);
        head.writeUInt32BE(groups.length, head.length - 4);
        const table = Buffer.concat([head, ...groups]);
        busy += performance.now() - start;
        writeFile(this.tmp, table)
          .then(() => (generation === this.generation ? rename(this.tmp, this.path) : rm(this.tmp, { force: true })))
          .then(() => this.written(), (e: Error) => this.fail(e))
          .finally(done);
      } catch (e) {
        this.fail(e as Error);
        busy += performance.now() - start;
        done();
      }
    };
    step();
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
