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
  // A 4-ary heap ordered by (at, seq): the keys side by side in one typed array (slot i's at in
  // keys[2i], its seq in keys[2i + 1]: sifting reads one cache line per slot, not one object per
  // timer scattered over the heap), the timers beside them. Four children a slot: half the levels
  // of a binary heap for the tens of thousands of timers and packets in flight.
  private n = 0;
  private keys: Float64Array = new Float64Array(2048);
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
    while (this.n > 0 && this.keys[0]! <= until) {
      this.t = this.keys[0]!;
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
    const k = this.keys;
    return k[2 * i]! < at || (k[2 * i] === at && k[2 * i + 1]! < seq);
  }

  private push(at: number, f: Entry | (() => void)): void {
    if (2 * this.n === this.keys.length) {
      const b = new Float64Array(2 * this.keys.length);
      b.set(this.keys);
      this.keys = b;
    }
    const seq = this.seq++;
    let i = this.n++;
    // Sifted up by moving a hole rather than swapping.
    while (i > 0) {
      const p = (i - 1) >> 2;
      if (this.before(p, at, seq)) break;
      this.move(p, i);
      i = p;
    }
    this.put(i, at, seq, f);
  }

  private pop(): Entry | (() => void) {
    const top = this.fns[0]!;
    const n = --this.n;
    const at = this.keys[2 * n]!;
    const seq = this.keys[2 * n + 1]!;
    const last = this.fns[n]!;
    this.fns[n] = undefined!;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      const first = 4 * i + 1;
      if (first >= n) break;
      // The earliest of the (up to four) children.
      let m = first;
      const end = Math.min(first + 4, n);
      for (let c = first + 1; c < end; c++) if (this.before(c, this.keys[2 * m]!, this.keys[2 * m + 1]!)) m = c;
      if (!this.before(m, at, seq)) break;
      this.move(m, i);
      i = m;
    }
    this.put(i, at, seq, last);
    return top;
  }

  private move(from: number, to: number): void {
    this.keys[2 * to] = this.keys[2 * from]!;
    this.keys[2 * to + 1] = this.keys[2 * from + 1]!;
    this.fns[to] = this.fns[from]!;
  }

  private put(i: number, at: number, seq: number, f: Entry | (() => void)): void {
    this.keys[2 * i] = at;
    this.keys[2 * i + 1] = seq;
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
