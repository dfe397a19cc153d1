import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

// Files in the state directory: written atomically (temp file, fsync, rename) so a crash leaves
// either the old or the new content; a file that cannot be read back is moved aside, not fatal.

export function writeFileAtomic(path: string, data: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'w', 0o640);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
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
