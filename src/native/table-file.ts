import { renameSync, writeFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import { TableCompiler, type TableInput } from './table.js';

// The answer table as a file for the next process (src/systemd/early-dns.ts reads it before the
// daemon has loaded): rewritten a while after the zone changed, at most once per interval,
// compiled in slices across event-loop turns (a large registry does not hold the loop), and once
// more, whole, when the daemon stops for a restart. Written to a temp file and renamed: the
// reader sees the previous table or the new one, never a torn one.

/** A table is written at most this often while the zone changes (a crash loses at most this much). */
export const TABLE_FILE_INTERVAL_MS = 10_000;
/** A change waits this long first (a burst of changes is one write). */
const SETTLE_MS = 1_000;

export class TableFile {
  private timer: NodeJS.Timeout | null = null;
  private writing = false;
  private dirty = false;
  private last = 0;
  private failed = false;

  constructor(
    private readonly path: string,
    private readonly input: () => TableInput,
    private readonly log: Logger,
    private readonly intervalMs = TABLE_FILE_INTERVAL_MS,
  ) {}

  /** The zone changed: a write is due. */
  changed(): void {
    this.dirty = true;
    if (this.timer || this.writing) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.write();
    }, Math.max(SETTLE_MS, this.last + this.intervalMs - Date.now()));
    this.timer.unref();
  }

  /** Writes the table now, in one go, when it changed since the last write (stop for a restart). */
  flush(): void {
    this.stop();
    if (!this.dirty) return;
    this.dirty = false;
    const parts = new TableCompiler().parts(this.input());
    const all: Buffer[] = [];
    for (let r = parts.next(); !r.done; r = parts.next()) all.push(...[r.value].flat());
    this.save(all);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private write(): void {
    this.dirty = false;
    this.writing = true;
    const parts = new TableCompiler().parts(this.input());
    const all: Buffer[] = [];
    const step = (): void => {
      try {
        const r = parts.next();
        if (!r.done) {
          all.push(...[r.value].flat());
          return void setImmediate(step);
        }
        this.save(all);
      } catch (e) {
        this.fail(e as Error);
      }
      this.writing = false;
      this.last = Date.now();
      if (this.dirty) this.changed();
    };
    step();
  }

  /** Header (its group count still 0) and groups, as one table. */
  private save([header, ...groups]: Buffer[]): void {
    try {
      const head = Buffer.from(header!);
      head.writeUInt32BE(groups.length, head.length - 4);
      const tmp = `${this.path}.tmp`;
      writeFileSync(tmp, Buffer.concat([head, ...groups]));
      renameSync(tmp, this.path);
      if (this.failed) this.log.info(`answer table for the next process written to ${this.path} again`);
      this.failed = false;
    } catch (e) {
      this.fail(e as Error);
    }
  }

  private fail(e: Error): void {
    if (!this.failed) this.log.warn(`could not write the answer table for the next process to ${this.path} (${e.message}); after a restart, queries wait for the daemon's start`);
    this.failed = true;
  }
}
