import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// The daemon's memory after start. Building the whole native answer table from 10,000 services ×
// 5 endpoints (after READY, in slices) makes much short-lived garbage, and V8 lets its old space
// grow to about twice what is live before it collects: the start's peak was that garbage, not
// the services.

/**
 * From now on, old space grows by 20 % over what is live before the next full collection (V8's
 * own factor is between 1.1 and 4, from its GC speed), and one full collection now sets that
 * limit from what the start left live. Called once the daemon is READY: the services' load runs
 * with V8's factor (the limit during the load cost ~30 % more CPU until READY, more collections
 * of a growing heap). At 10,000 × 5 the peak RSS 209–222 → ~147 MB; the collection is one pause
 * of tens of ms. (Not in NODE_OPTIONS: Node refuses the flag there.)
 */
export function limitHeapGrowth(): void {
  setFlagsFromString('--heap-growing-percent=20');
  try {
    collect();
  } catch {
    // No collection now: the limit then applies from V8's next one.
  }
}

/**
 * One full collection, after a whole native table is committed: the compile's garbage (its group
 * buffers among it) is freed before the addon gives malloc's free memory back, and old space lets
 * go of the pages left empty. It runs as V8 runs one when it optimises for size: pages at least a
 * fifth free are compacted (V8 moves at most a few MB of live objects in that mode, so the pause is
 * bounded whatever the heap), where its default compacts only pages mostly free and leaves the
 * rest to its memory reducer, 10–40 s later or not at all; and it sweeps before it returns, so
 * what the sweep frees is in malloc's free lists when the addon trims them (swept concurrently, it
 * came after the trim and stayed in RSS). At 10,000 × 5: old space 33.7 → ~25 MB of pages,
 * settled RSS −5 to −10 MB, for a pause of 40–80 ms where the plain collection's was 26–41 (the
 * native threads answer meanwhile). Compacting every page (`--compact-on-every-full-gc`) paused
 * 330 ms and raised the peak by ~25 MB: not used.
 */
export function collectAfterTable(): void {
  try {
    setFlagsFromString('--optimize-for-size');
    setFlagsFromString('--no-concurrent-sweeping');
    collect();
  } catch {
    // No collection now: V8's own comes later.
  } finally {
    // Back to how the daemon was started (its command line may have set either).
    if (!process.execArgv.includes('--optimize-for-size')) setFlagsFromString('--no-optimize-for-size');
    if (!process.execArgv.includes('--no-concurrent-sweeping')) setFlagsFromString('--concurrent-sweeping');
  }
}

/** One full collection now: V8's `gc` without --expose-gc on the command line (the flag gives it to new contexts only). */
function collect(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}
