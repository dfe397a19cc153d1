import type { Registry } from '../registry/registry.js';
import type { Zone, ZoneSettings } from './records.js';

// The zone as the server answers it: the registry, the settings and the SOA serial (bumped on
// every registry change).

export type ZoneOptions = Omit<ZoneSettings, 'serial'>;

export class ZoneState implements Zone {
  settings: ZoneSettings;
  private readonly unsubscribe: () => void;

  constructor(
    readonly source: Registry,
    opts: ZoneOptions,
    private readonly clock: () => number = Date.now,
  ) {
    this.settings = { ...opts, serial: this.nextSerial(0) };
    this.unsubscribe = source.onChange(() => {
      this.settings = { ...this.settings, serial: this.nextSerial(this.settings.serial) };
    });
  }

  configure(opts: ZoneOptions): void {
    this.settings = { ...opts, serial: this.nextSerial(this.settings.serial) };
  }

  close(): void {
    this.unsubscribe();
  }

  /** Seconds since the epoch, strictly increasing, kept in 32 bits. */
  private nextSerial(prev: number): number {
    return Math.max(prev + 1, Math.floor(this.clock() / 1000)) >>> 0;
  }
}
