import type { Logger } from '../log.js';

// WATCHDOG=1 at half of WATCHDOG_USEC, but only after a self-query through the DNS server
// succeeded: a blocked event loop sends nothing (the timer does not fire) and a DNS path that no
// longer answers sends nothing either, so systemd kills and restarts a daemon that looks alive
// but is not serving.

export interface WatchdogDeps {
  intervalMs: number;
  /** Resolves true when the DNS server answered; must settle within `intervalMs`. */
  probe: (timeoutMs: number) => Promise<boolean>;
  ping: () => void;
  log: Logger;
}

export class Watchdog {
  private timer: NodeJS.Timeout | null = null;
  private failing = false;
  private running = false;

  constructor(private readonly d: WatchdogDeps) {}

  start(): void {
    if (this.timer) return;
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.d.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async tick(): Promise<void> {
    if (this.running) return; // the previous probe is still out: it counts as a miss
    this.running = true;
    try {
      // Leave room for the ping within the same half-period.
      const ok = await this.d.probe(Math.max(100, Math.floor(this.d.intervalMs * 0.8)));
      if (!this.timer && !ok) return;
      if (ok) {
        this.d.ping();
        if (this.failing) this.d.log.info('watchdog: the DNS server answers its self-query again');
        this.failing = false;
      } else if (!this.failing) {
        this.failing = true;
        this.d.log.error('watchdog: the DNS server does not answer its self-query; not pinging systemd (it will restart the daemon if this lasts)');
      }
    } finally {
      this.running = false;
    }
  }
}
