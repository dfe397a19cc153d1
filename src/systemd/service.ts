import type { Logger } from '../log.js';
import { SystemdNotifier } from './lifecycle.js';
import { statusLine, watchdogIntervalMs, type StatusCounts } from './messages.js';
import { notifySender, type NativeNotify } from './notify.js';
import { Watchdog } from './watchdog.js';

// The daemon's life as systemd sees it, wired to the few things it needs from the daemon. Without
// NOTIFY_SOCKET (run by hand, in tests) everything here is inert except the debug hook.

export interface SystemdHost {
  log: Logger;
  counts(): StatusCounts;
  onChange(listener: () => void): void;
  /** One real DNS query to the daemon's own listener. */
  selfQuery(timeoutMs: number): Promise<boolean>;
}

export interface SystemdService {
  notifier: SystemdNotifier;
  ready(): void;
  reloading(): void;
  reloaded(result: { applied: string[]; restart: string[] } | { error: string }): void;
  stopping(): void;
  failed(message: string): void;
}

export function attachSystemd(host: SystemdHost, env: NodeJS.ProcessEnv = process.env, native: NativeNotify | null = null): SystemdService {
  const notifier = new SystemdNotifier(notifySender(env, native, host.log));
  const intervalMs = watchdogIntervalMs(env, process.pid);
  const watchdog = intervalMs && notifier.enabled
    ? new Watchdog({ intervalMs, probe: (t) => host.selfQuery(t), ping: () => notifier.watchdog(), log: host.log })
    : null;
  let statusTimer: NodeJS.Timeout | null = null;
  let live = false;
  if (notifier.enabled) {
    // STATUS= follows the registry, at most once a second (a burst of changes is one update).
    host.onChange(() => {
      if (!live || statusTimer) return;
      statusTimer = setTimeout(() => {
        statusTimer = null;
        if (live) notifier.status(statusLine(host.counts()));
      }, 1000);
      statusTimer.unref();
    });
  }
  if (env.PODMAN_SWARM_DNS_DEBUG_HANG_ON_SIGUSR2 === '1') {
    // Test hook for the watchdog: blocks the event loop for good, as a runaway loop would.
    process.on('SIGUSR2', () => {
      host.log.warn('SIGUSR2 with PODMAN_SWARM_DNS_DEBUG_HANG_ON_SIGUSR2=1: blocking the event loop on purpose');
      for (;;) {
        /* hang */
      }
    });
  }
  return {
    notifier,
    ready() {
      live = true;
      notifier.ready(statusLine(host.counts()));
      if (watchdog) {
        watchdog.start();
        host.log.info(`systemd watchdog: pinging every ${intervalMs} ms while the DNS server answers its self-query`);
      }
    },
    reloading: () => notifier.reloading(),
    reloaded: (r) => notifier.reloaded(r),
    stopping() {
      live = false;
      watchdog?.stop();
      notifier.stopping();
    },
    failed: (message) => notifier.status(`failed: ${message}`),
  };
}
