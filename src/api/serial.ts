import { HttpError } from './http.js';

// Writes that read the current registrations, save the next ones and then apply them must not
// interleave: they run one at a time, in arrival order. The number waiting is bounded, so a flood
// of writes on a slow disk gets 503s instead of queueing without limit.

export class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  constructor(private readonly limit: number) {}

  run<T>(job: () => Promise<T>): Promise<T> {
    if (this.waiting >= this.limit) {
      return Promise.reject(new HttpError(503, `${this.waiting} writes are waiting for the state directory; try again later`));
    }
    this.waiting++;
    const done = this.tail.then(job).finally(() => this.waiting--);
    this.tail = done.catch(() => undefined);
    return done;
  }
}
