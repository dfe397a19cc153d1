import type { Endpoint } from './types.js';

// Content equality of registry data (plain JSON-like objects, arrays and primitives), so that a
// look that finds nothing new changes nothing: no new version, no registry change, no gossip.

/** Structural equality; an object key holding `undefined` counts as absent (as on the wire). */
export function sameData(a: unknown, b: unknown, ignore?: string): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameData(a[i], bb[i])) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    if (k === ignore || x[k] === undefined) continue;
    if (!sameData(x[k], y[k])) return false;
    n++;
  }
  for (const k in y) if (k !== ignore && y[k] !== undefined) n--;
  return n === 0;
}

/**
 * The same endpoint, whenever it was looked at: `lastSeen` is when its content was first seen,
 * so a resync that finds it unchanged keeps the old one.
 */
export const sameEndpoint = (a: Endpoint, b: Endpoint): boolean => sameData(a, b, 'lastSeen');
