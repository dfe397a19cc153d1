import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// Building a whole answer table (at start: 10,000 services × 5 endpoints) grows V8's old space
// with the compile's garbage and leaves malloc's heap holding what the table's buffers freed.
// V8 gives its part back only when its memory reducer runs, seconds or minutes later, and malloc
// keeps its part. Once the table is in, a full collection and a trim give both back at once
// (~30–70 MB of RSS at that size), for one pause of tens of ms.

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

/** Gives the memory a whole table's build left behind back to the system. */
export function reclaim(trim: (() => void) | undefined): void {
  collect();
  trim?.();
}
