import type { LoadedConfig } from './config/load.js';
import type { OptionKey, Options } from './config/options.js';
import type { Privileges, Runtime } from './config/runtime.js';
import type { FailureLog } from './log-once.js';
import type { Logger } from './log.js';

// The shape every part's setup (src/<part>/setup.ts) shares: it takes the context below and the
// parts it reads, and returns what it offers plus how to start, reload and stop it. src/daemon.ts
// only creates the parts and calls these in order.

export interface Part {
  /** Throws (a ConfigError) when `next` cannot be applied; every part is asked before any reloads. */
  check?(next: Options): void;
  /** Applies the live options (those marked `live` in the option table); `changed` names the ones that differ. */
  reload?(next: Options, changed: ReadonlySet<OptionKey>): void;
  start?(): Promise<void>;
  /** `restart`: the process comes back at once (systemd said so): stay in the cluster, keep the link and resolved's settings. */
  stop?(restart: boolean): Promise<void>;
}

/** What every setup may read. */
export interface Context {
  /** The running options: those at start, with the live ones replaced on reload (a part that reloads keeps the ones it was given). */
  opts: Options;
  /** Where each option came from (an explicit value may turn a problem into a failed start). */
  origin: LoadedConfig['origin'];
  rt: Runtime;
  priv: Privileges;
  env: NodeJS.ProcessEnv;
  log: Logger;
  problems: Problems;
  /** Failures that leave the cluster or DNS wrong: warned once per state change, counted. */
  failures: FailureLog;
}

/** Problems found at start or reload that an operator should see in `status`; each logged once. */
export class Problems {
  private readonly map = new Map<string, string>();

  constructor(private readonly log: Logger) {}

  set(key: string, message: string): void {
    if (this.map.get(key) === message) return;
    this.map.set(key, message);
    this.log.warn(message);
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  get(key: string): string | undefined {
    return this.map.get(key);
  }

  values(): string[] {
    return [...this.map.values()];
  }
}

export const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * `run` one call at a time, and at most one waiting: calls while one runs share the one that
 * waits (a reload: it reads the file when it begins, so any number of signals meanwhile need one).
 */
export function oneAtATime<T>(run: () => Promise<T>): () => Promise<T> {
  let running: Promise<unknown> = Promise.resolve();
  let waiting: Promise<T> | null = null;
  return () => {
    if (waiting) return waiting;
    const next = (waiting = running.then(() => {
      waiting = null;
      return run();
    }));
    running = next.catch(() => undefined);
    return next;
  };
}
