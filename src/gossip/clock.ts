// Time as the membership sees it. The daemon uses the real clock; the simulator a virtual one,
// so hours of protocol run in seconds and every run is reproducible.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): number;
  after(ms: number, fn: () => void): Timer;
}

export const realClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
};
