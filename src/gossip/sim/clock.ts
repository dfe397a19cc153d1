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

  private less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): Entry {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
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
