// How a proxy picks an endpoint for a new connection (docs/architecture.md#load-balancer). Pure: a policy sees candidates
// with their weights, locality and active connection counts, and keeps only its own cursor.

export type PolicyName = 'round-robin' | 'least-connections' | 'power-of-two';

export interface Candidate {
  readonly id: string;
  /** 1–100 (endpoint weight). */
  readonly weight: number;
  readonly local: boolean;
  /** Connections open through this proxy right now. */
  readonly active: number;
}

export interface Policy {
  /** One of `cands` (never empty), chosen by the policy. */
  pick<C extends Candidate>(cands: readonly C[]): C;
}

/** Local candidates when there are any and locality is preferred; else all of them. */
export function preferLocal<C extends Candidate>(cands: readonly C[], prefer: boolean): readonly C[] {
  if (!prefer) return cands;
  let locals = 0;
  for (const c of cands) if (c.local) locals++;
  if (locals === 0 || locals === cands.length) return cands;
  return cands.filter((c) => c.local);
}

/**
 * Smooth weighted round-robin (as nginx does it): with equal weights an exact rotation; with
 * weights w_i each candidate gets w_i picks out of every sum(w) and they are spread out, not
 * bunched. Its state is per candidate id, so a changed set keeps the rotation going.
 */
export class RoundRobin implements Policy {
  private current = new Map<string, number>();

  pick<C extends Candidate>(cands: readonly C[]): C {
    if (cands.length === 1) return cands[0]!;
    let total = 0;
    let best: C = cands[0]!;
    let bestValue = -Infinity;
    for (const c of cands) {
      const w = c.weight > 0 ? c.weight : 1;
      total += w;
      const v = (this.current.get(c.id) ?? 0) + w;
      this.current.set(c.id, v);
      if (v > bestValue) {
        bestValue = v;
        best = c;
      }
    }
    this.current.set(best.id, bestValue - total);
    if (this.current.size > cands.length * 2) this.prune(cands);
    return best;
  }

  private prune(cands: readonly Candidate[]): void {
    const keep = new Set(cands.map((c) => c.id));
    for (const id of this.current.keys()) if (!keep.has(id)) this.current.delete(id);
  }
}

/** Fewest active connections per unit of weight; ties go round the list. */
export class LeastConnections implements Policy {
  private next = 0;

  pick<C extends Candidate>(cands: readonly C[]): C {
    const n = cands.length;
    const start = this.next++ % n;
    let best = cands[start]!;
    for (let i = 1; i < n; i++) {
      const c = cands[(start + i) % n]!;
      if (load(c) < load(best)) best = c;
    }
    return best;
  }
}

/**
 * Power of two choices: two candidates drawn at random (in proportion to weight), the less loaded
 * one wins. Nearly as even as least-connections without scanning, and it does not herd every new
 * connection onto the one endpoint that just looked idle.
 */
export class PowerOfTwo implements Policy {
  constructor(private readonly random: () => number = Math.random) {}

  pick<C extends Candidate>(cands: readonly C[]): C {
    if (cands.length === 1) return cands[0]!;
    const a = this.draw(cands);
    let b = this.draw(cands);
    for (let i = 0; b === a && i < 4; i++) b = this.draw(cands);
    return load(b) < load(a) ? b : a;
  }

  private draw<C extends Candidate>(cands: readonly C[]): C {
    let total = 0;
    for (const c of cands) total += c.weight > 0 ? c.weight : 1;
    let r = this.random() * total;
    for (const c of cands) {
      r -= c.weight > 0 ? c.weight : 1;
      if (r < 0) return c;
    }
    return cands[cands.length - 1]!;
  }
}

const load = (c: Candidate): number => (c.active + 1) / (c.weight > 0 ? c.weight : 1);

export function createPolicy(name: PolicyName, random?: () => number): Policy {
  if (name === 'least-connections') return new LeastConnections();
  if (name === 'power-of-two') return new PowerOfTwo(random);
  return new RoundRobin();
}
