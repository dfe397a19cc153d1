import { setFlagsFromString } from 'node:v8';

// The daemon's memory at start. Loading 10,000 services × 5 endpoints and building the whole
// native answer table from them makes much short-lived garbage, and V8 lets its old space grow
// to about twice what is live before it collects: the peak was that garbage, not the services.

/**
 * Old space grows by 20 % over what is live before the next full collection (V8's default is a
 * factor between 1.1 and 4 from its GC speed): at 10,000 × 5 the start's peak RSS 209 → 148 MB,
 * for a few more collections while the table is built. (Not in NODE_OPTIONS: Node refuses it there.)
 */
export function limitHeapGrowth(): void {
  setFlagsFromString('--heap-growing-percent=20');
}
