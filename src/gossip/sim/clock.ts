import type { Clock, Timer } from '../clock.js';

// Virtual time for the simulator: timers sit in a binary heap and run in (time, insertion)
// order when the simulation advances, so a run depends only on its seed.

interface Entry {
  at: number;
  seq: number;
  fn: (() => void) | null;
}

export class VirtualClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly heap: Entry[] = [];

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): Timer {
    const e: Entry = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.push(e);
    return { cancel: () => void (e.fn = null) };
  }

  /** `after` without a way to cancel (the network's deliveries: one object less per packet). */
  post(ms: number, fn: () => void): void {
    this.push({ at: this.t + Math.max(0, ms), seq: this.seq++, fn });
  }

  /** Runs every timer due up to `until` (absolute virtual ms), then sets the time to it. */
  runUntil(until: number, stop?: () => boolean): boolean {
    while (this.heap.length && this.heap[0]!.at <= until) {
      const e = this.pop();
      this.t = e.at;
      if (e.fn) e.fn();
      if (stop?.()) return true;
    }
    this.t = until;
    return false;
  }

  /** Lets pending promise callbacks (async request handlers) settle between steps. */
  get pending(): number {
    return this.heap.length;
  }

  // A binary heap ordered by (at, seq), sifted by moving a hole rather than swapping.

  private push(e: Entry): void {
    const h = this.heap;
    let i = h.length;
    h.push(e);
    while (i > 0) {
      const p = (i - 1) >> 1;
      const q = h[p]!;
      if (q.at < e.at || (q.at === e.at && q.seq < e.seq)) break;
      h[i] = q;
      i = p;
    }
    h[i] = e;
  }

  private pop(): Entry {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    const n = h.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      let m = 2 * i + 1;
      if (m >= n) break;
      const r = m + 1;
      if (r < n && (h[r]!.at < h[m]!.at || (h[r]!.at === h[m]!.at && h[r]!.seq < h[m]!.seq))) m = r;
      const c = h[m]!;
      if (last.at < c.at || (last.at === c.at && last.seq < c.seq)) break;
      h[i] = c;
      i = m;
    }
    h[i] = last;
    return top;
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
