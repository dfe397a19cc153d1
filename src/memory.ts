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
 * go of the pages left empty. At 10,000 × 5: settled RSS −3 MB for one pause of 40–120 ms of the
 * event loop (the native threads answer meanwhile). A collection that compacts every page
 * (`--compact-on-every-full-gc`) saved 8 MB but paused 330 ms and raised the peak by ~25 MB
 * (it copies what is live before it frees the old pages): not used.
 */
export function collectAfterTable(): void {
  try {
    collect();
  } catch {
    // No collection now: V8's own comes later.
  }
}

/** One full collection now: V8's `gc` without --expose-gc on the command line (the flag gives it to new contexts only). */
function collect(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}
