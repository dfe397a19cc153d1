import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

// Files in the state directory: written atomically (temp file, every byte checked, fsync, rename,
// fsync of the directory) so a crash or a full disk leaves either the old or the new content,
// never a truncated file; a file that cannot be read back is moved aside, not fatal.

/** A write to the state directory that did not complete (the old file is left in place). */
export class StateWriteError extends Error {
  constructor(
    readonly path: string,
    /** errno code (ENOSPC, EDQUOT, EIO, EROFS, EACCES, ...) */
    readonly code: string,
    message: string,
  ) {
    super(`cannot write ${path}: ${message}`);
  }

  /** The disk or the quota is full: the caller is told "insufficient storage". */
  get full(): boolean {
    return this.code === 'ENOSPC' || this.code === 'EDQUOT';
  }
}

/** Outcome of every state write, for whoever watches the state directory's health. */
export interface WriteOutcome {
  path: string;
  error: StateWriteError | null;
}

const observers = new Set<(o: WriteOutcome) => void>();

/** Calls `fn` after every writeFileAtomic; returns the function that stops it. */
export function observeWrites(fn: (o: WriteOutcome) => void): () => void {
  observers.add(fn);
  return () => observers.delete(fn);
}

const TEMP = /\.[0-9a-f]{8}\.tmp$/;

export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o640): void {
  let error: StateWriteError | null = null;
  try {
    writeChecked(path, typeof data === 'string' ? Buffer.from(data) : data, mode);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    error = e instanceof StateWriteError ? e : new StateWriteError(path, err.code ?? 'EIO', err.message);
  }
  for (const fn of observers) fn({ path, error });
  if (error) throw error;
}

function writeChecked(path: string, buf: Buffer, mode: number): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  let fd: number | null = openSync(tmp, 'wx', mode);
  try {
    // write(2) may write less than asked (a disk that fills up mid-way): go on until every byte
    // is written or the kernel says why not (ENOSPC, EDQUOT, EIO, EFBIG).
    for (let off = 0; off < buf.length; ) {
      const n = writeSync(fd, buf, off, buf.length - off);
      if (n <= 0) throw new StateWriteError(path, 'EIO', `no progress writing ${tmp} at byte ${off} of ${buf.length}`);
      off += n;
    }
    fsyncSync(fd);
    const closing = fd;
    fd = null;
    closeSync(closing);
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) {
      try {
        closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      /* never created, or already renamed */
    }
    throw e;
  }
  // The rename is durable only once the directory is on disk. If this fails the new content is
  // visible but may not survive a power loss: reported as a failed write all the same.
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** Removes temp files a killed writer left behind in `dir`; returns their names. */
export function removeStaleTemps(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!TEMP.test(name)) continue;
    try {
      unlinkSync(join(dir, name));
      removed.push(name);
    } catch {
      /* gone already, or not ours to remove */
    }
  }
  return removed;
}

export type ReadResult<T> =
  | { kind: 'ok'; value: T }
  | { kind: 'missing' }
  /** Unreadable or invalid: moved to `movedTo` so the next write starts clean. */
  | { kind: 'corrupt'; reason: string; movedTo: string | null };

export function readJsonFile<T>(path: string, validate: (v: unknown) => T): ReadResult<T> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    return { kind: 'corrupt', reason: (e as Error).message, movedTo: null };
  }
  try {
    return { kind: 'ok', value: validate(JSON.parse(text)) };
  } catch (e) {
    const movedTo = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    try {
      renameSync(path, movedTo);
    } catch {
      return { kind: 'corrupt', reason: (e as Error).message, movedTo: null };
    }
    return { kind: 'corrupt', reason: (e as Error).message, movedTo };
  }
}
