// Rise/fall hysteresis (docs/architecture.md#health): an endpoint turns unhealthy after `fall` consecutive failures
// and healthy again after `rise` consecutive successes. Pure.

export interface Thresholds {
  rise: number;
  fall: number;
}

export interface HealthState {
  healthy: boolean;
  /** Consecutive results that disagree with `healthy`. */
  streak: number;
}

export const INITIAL: HealthState = { healthy: true, streak: 0 };

export function record(state: HealthState, ok: boolean, t: Thresholds): HealthState {
  if (ok === state.healthy) return state.streak === 0 ? state : { healthy: state.healthy, streak: 0 };
  const streak = state.streak + 1;
  if (streak >= (ok ? t.rise : t.fall)) return { healthy: ok, streak: 0 };
  return { healthy: state.healthy, streak };
}
