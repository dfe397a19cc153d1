import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { observeWrites, removeStaleTemps, StateWriteError, writeFileAtomic } from '../../src/state/files.js';
import { ROOT } from '../helpers/daemon.js';

// State files written under a real file-size limit (RLIMIT_FSIZE, as `ulimit -f` sets it): the
// kernel writes part of the buffer, then refuses the rest with EFBIG, the way a filling disk
// writes part and then says ENOSPC. The old file must survive and no temp file may stay.

const tempDir = (t: { teardown(fn: () => unknown): void }): string => {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-files-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
};

/** Runs `code` (an ES module using dist/) in a node limited to 4 KB files (`ulimit -f 8`: 512-byte blocks in sh). */
function underFileSizeLimit(code: string): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync('sh', ['-c', 'ulimit -f 8 && exec "$0" --input-type=module -e "$1"', process.execPath, `process.on('SIGXFSZ', () => {});\n${code}`], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

// (API registrations are a journal now: its short writes are in registrations-journal.test.ts.)
t.test('a short write fails the whole write and keeps the old file (blocking and async, and the snapshot)', async (t) => {
  const dir = tempDir(t);
  const regs = join(dir, 'api-endpoints.json');
  const state = join(dir, 'state');
  writeFileSync(regs, 'old registrations\n');
  writeFileSync(state, 'old snapshot\n');
  const r = underFileSizeLimit(`
    import { writeFileAtomic, writeFileAtomicAsync } from './dist/state/files.js';
    import { SnapshotFile } from './dist/state/snapshot.js';
    const results = [];
    try { writeFileAtomic(${JSON.stringify(regs)}, 'x'.repeat(100_000)); results.push('written'); }
    catch (e) { results.push(e.constructor.name + ' ' + e.code + ' ' + e.full); }
    try { await writeFileAtomicAsync(${JSON.stringify(regs)}, 'y'.repeat(100_000)); results.push('written'); }
    catch (e) { results.push(e.constructor.name + ' ' + e.code); }
    try { new SnapshotFile(${JSON.stringify(dir)}).save({ nodes: [], members: Array.from({ length: 2000 }, (_, i) => ({ id: 'n' + i, name: 'node-' + i, addr: '10.0.0.1:7946' })) }); results.push('written'); }
    catch (e) { results.push(e.constructor.name + ' ' + e.code); }
    writeFileAtomic(${JSON.stringify(join(dir, 'small'))}, 'fits');
    console.log(JSON.stringify(results));
  `);
  t.equal(r.status, 0, r.stderr);
  t.same(JSON.parse(r.stdout), ['StateWriteError EFBIG false', 'StateWriteError EFBIG', 'StateWriteError EFBIG'], 'blocking, async and snapshot writes fail with the kernel’s reason');
  t.equal(readFileSync(regs, 'utf8'), 'old registrations\n', 'the old file is untouched');
  t.equal(readFileSync(state, 'utf8'), 'old snapshot\n', 'the old snapshot is untouched');
  t.equal(readFileSync(join(dir, 'small'), 'utf8'), 'fits', 'a write that fits still works');
  t.same(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temp file is left');
});

t.test('write outcomes are reported, errors carry the errno code', async (t) => {
  const dir = tempDir(t);
  const seen: Array<{ path: string; code: string | null }> = [];
  const stop = observeWrites((o) => seen.push({ path: o.path, code: o.error?.code ?? null }));
  t.teardown(stop);
  writeFileAtomic(join(dir, 'a'), 'one');
  // A directory where the file should be: the rename fails (EISDIR), the temp file is removed.
  const blocked = join(dir, 'b');
  writeFileAtomic(join(blocked, 'inner'), 'x');
  const err = t.throws(() => writeFileAtomic(blocked, 'two')) as unknown as StateWriteError;
  t.ok(err instanceof StateWriteError);
  t.match(err.message, /cannot write .*\/b: /);
  t.same(seen.map((s) => [s.path.slice(dir.length), s.code]), [['/a', null], ['/b/inner', null], ['/b', err.code]]);
  t.same(readdirSync(dir).sort(), ['a', 'b'], 'no temp file is left');
  stop();
  writeFileAtomic(join(dir, 'a'), 'three');
  t.equal(seen.length, 3, 'no report after the observer stopped');
});

t.test('removeStaleTemps removes only the temp files writeFileAtomic makes', async (t) => {
  const dir = tempDir(t);
  for (const f of ['state.0badc0de.tmp', 'api-endpoints.json.12345678.tmp', 'mine.tmp', 'state', 'x.1234567.tmp']) writeFileSync(join(dir, f), '');
  t.same(removeStaleTemps(dir).sort(), ['api-endpoints.json.12345678.tmp', 'state.0badc0de.tmp']);
  t.same(readdirSync(dir).sort(), ['mine.tmp', 'state', 'x.1234567.tmp']);
  t.same(removeStaleTemps(join(dir, 'missing')), [], 'a missing directory is nothing to clean');
});
