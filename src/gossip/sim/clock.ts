import type { Clock, Timer } from '../clock.js';

// Virtual time for the simulator: timers sit in a binary heap and run in (time, insertion)
// order when the simulation advances, so a run depends only on its seed.

/** A timer that can be cancelled (after): its function is dropped, the heap slot stays until due. */
interface Entry {
  fn: (() => void) | null;
}

export class VirtualClock implements Clock {
  private t = 0;
  private seq = 0;
  // A binary heap ordered by (at, seq), in parallel arrays: the keys in typed arrays (sifting
  // reads them, not one object per timer scattered over the heap), the timers beside them.
  private n = 0;
  private at: Float64Array = new Float64Array(1024);
  private seqs: Float64Array = new Float64Array(1024);
  private fns: Array<Entry | (() => void)> = [];

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): Timer {
    const e: Entry = { fn };
    this.push(this.t + Math.max(0, ms), e);
    return { cancel: () => void (e.fn = null) };
  }

  /** `after` without a way to cancel (the network's deliveries: one object less per packet). */
  post(ms: number, fn: () => void): void {
    this.push(this.t + Math.max(0, ms), fn);
  }

  /** Runs every timer due up to `until` (absolute virtual ms), then sets the time to it. */
  runUntil(until: number, stop?: () => boolean): boolean {
    while (this.n > 0 && this.at[0]! <= until) {
      this.t = this.at[0]!;
      const f = this.pop();
      if (typeof f === 'function') f();
      else if (f.fn) f.fn();
      if (stop?.()) return true;
    }
    this.t = until;
    return false;
  }

  /** Lets pending promise callbacks (async request handlers) settle between steps. */
  get pending(): number {
    return this.n;
  }

  /** Whether slot i's key is before (at, seq). */
  private before(i: number, at: number, seq: number): boolean {
    return this.at[i]! < at || (this.at[i] === at && this.seqs[i]! < seq);
  }

  private push(at: number, f: Entry | (() => void)): void {
    if (this.n === this.at.length) {
      const grow = (a: Float64Array): Float64Array => {
        const b = new Float64Array(2 * a.length);
        b.set(a);
        return b;
      };
      this.at = grow(this.at);
      this.seqs = grow(this.seqs);
    }
    const seq = this.seq++;
    let i = this.n++;
    // Sifted up by moving a hole rather than swapping.
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.before(p, at, seq)) break;
      this.move(p, i);
      i = p;
    }
    this.put(i, at, seq, f);
  }

  private pop(): Entry | (() => void) {
    const top = this.fns[0]!;
    const n = --this.n;
    const at = this.at[n]!;
    const seq = this.seqs[n]!;
    const last = this.fns[n]!;
    this.fns[n] = undefined!;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      let m = 2 * i + 1;
      if (m >= n) break;
      if (m + 1 < n && this.before(m + 1, this.at[m]!, this.seqs[m]!)) m++;
      if (!this.before(m, at, seq)) break;
      this.move(m, i);
      i = m;
    }
    this.put(i, at, seq, last);
    return top;
  }

  private move(from: number, to: number): void {
    this.at[to] = this.at[from]!;
    this.seqs[to] = this.seqs[from]!;
    this.fns[to] = this.fns[from]!;
  }

  private put(i: number, at: number, seq: number, f: Entry | (() => void)): void {
    this.at[i] = at;
    this.seqs[i] = seq;
    this.fns[i] = f;
  }
}

/** A seeded PRNG (mulberry32): the simulator's only source of randomness. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
