import type { NodeState } from './types.js';

// Each node is the only writer of its own state, so the cluster-wide registry is a map of
// per-node last-writer-wins registers: the higher version wins. Ties (same version, different
// content) only happen after a bug or a clock reset on the owner; they are broken by content so
// that merge stays commutative, associative and idempotent whatever the delivery order.

const canonical = (s: NodeState): string => JSON.stringify(s);

/** Negative when `a` loses to `b`, positive when it wins, 0 when they are the same state. */
export function compareStates(a: NodeState, b: NodeState): number {
  if (a.version !== b.version) return a.version < b.version ? -1 : 1;
  if (a.incarnation !== b.incarnation) return a.incarnation < b.incarnation ? -1 : 1;
  if (a === b) return 0;
  const ca = canonical(a);
  const cb = canonical(b);
  return ca === cb ? 0 : ca < cb ? -1 : 1;
}

/** The state that survives when `a` and `b` (states of the same node) meet. */
export function mergeState(a: NodeState | undefined, b: NodeState): NodeState {
  if (!a) return b;
  return compareStates(a, b) >= 0 ? a : b;
}
