// Local health awareness (Lifeguard, as memberlist's awareness.go): a score of how much this node
// itself is failing to keep up. Failed probes it could not blame on anyone, suspicions about
// itself and its own timers firing late raise it; probes answered in time lower it. Probe and
// suspicion timeouts are multiplied by score + 1, so a node whose own event loop is overloaded
// waits longer before suspecting others (its missed acks are most likely its own fault) and
// probes less often, instead of spreading false suspicions.

/** memberlist's AwarenessMaxMultiplier. */
export const AWARENESS_MAX = 8;

/** A timer that fires later than this behind its time means this node's event loop is behind. */
export const LATE_MS = 100;

export class Awareness {
  private value = 0;
  /** Timers of this node's failure detector that fired late (its event loop was behind). */
  late = 0;

  constructor(private readonly max = AWARENESS_MAX) {}

  /** 0 is healthy, max - 1 the worst. */
  get score(): number {
    return this.value;
  }

  apply(delta: number): void {
    this.value = Math.min(this.max - 1, Math.max(0, this.value + delta));
  }

  scale(ms: number): number {
    return ms * (this.value + 1);
  }
}
