import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// The daemon's memory at start. Loading 10,000 services × 5 endpoints and building the whole
// native answer table from them makes much short-lived garbage, and V8 lets its old space grow
// to about twice what is live before it collects: the peak is that garbage, not the services.
// Once the table is in, V8 gives the space back only when its memory reducer runs (seconds or
// minutes later), and malloc keeps what the table's buffers freed.

/**
 * Old space grows by 20 % over what is live before the next full collection (V8's default is a
 * factor between 1.1 and 4 from its GC speed): at 10,000 × 5 the start's peak RSS 209 → 148 MB,
 * for a few more collections while the table is built. (Not in NODE_OPTIONS: Node refuses it there.)
 */
export function limitHeapGrowth(): void {
  setFlagsFromString('--heap-growing-percent=20');
}

let gc: (() => void) | null | undefined;

/** A full garbage collection now (V8's `gc`, without --expose-gc on the command line). */
function collect(): void {
  if (gc === undefined) {
    try {
      // The flag gives new contexts a `gc` function; the daemon's own global stays as it was.
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    } catch {
      gc = null;
    }
  }
  gc?.();
}

/**
 * Gives back what a whole table's build left behind: a full collection, then `trim` (the addon's
 * malloc_trim). At 10,000 × 5, settled RSS 166–178 → 138 MB, for one pause of tens of ms.
 */
export function reclaim(trim: (() => void) | undefined): void {
  collect();
  trim?.();
}
