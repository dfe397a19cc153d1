// sd_notify(3) messages and the environment systemd gives a service, as pure functions. The I/O
// (sending the datagram) is in notify.ts.

/** `KEY=value` lines; values must not contain a newline (systemd would read a second key). */
export function formatNotify(fields: Record<string, string | number>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${String(v).replace(/[\r\n]+/g, ' ')}`)
    .join('\n');
}

export const READY = 'READY=1';
export const STOPPING = 'STOPPING=1';
export const WATCHDOG = 'WATCHDOG=1';

/** RELOADING=1 must carry CLOCK_MONOTONIC in µs (systemd ≥ 253 checks it for Type=notify-reload). */
export function reloadingMessage(monotonicUsec: bigint): string {
  return formatNotify({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec.toString() });
}

export function statusMessage(status: string): string {
  return formatNotify({ STATUS: status });
}

export function extendTimeoutMessage(usec: number): string {
  return formatNotify({ EXTEND_TIMEOUT_USEC: Math.max(0, Math.round(usec)) });
}

/**
 * How often to send WATCHDOG=1, from WATCHDOG_USEC/WATCHDOG_PID (as sd_watchdog_enabled(3)):
 * half the timeout, or null when the watchdog is off or meant for another process.
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usec = env.WATCHDOG_USEC;
  if (!usec || !/^\d+$/.test(usec)) return null;
  const forPid = env.WATCHDOG_PID;
  if (forPid !== undefined && forPid !== '' && Number(forPid) !== pid) return null;
  const us = Number(usec);
  if (us <= 0) return null;
  return Math.max(1, Math.floor(us / 2 / 1000));
}

export interface StatusCounts {
  services: number;
  endpoints: number;
  healthy: number;
  dns: string[];
}

/** The one-line STATUS= that `systemctl status` shows. */
export function statusLine(c: StatusCounts): string {
  const dns = c.dns.length ? `DNS on ${c.dns.join(', ')}` : 'no DNS listener';
  return `${dns}; ${plural(c.services, 'service')}, ${plural(c.endpoints, 'endpoint')} (${c.healthy} healthy)`;
}

/** STATUS= after a SIGHUP: what changed and applied, what waits for a restart. */
export function reloadStatus(r: { applied: string[]; restart: string[] } | { error: string }): string {
  if ('error' in r) return `reload failed, running configuration kept: ${r.error}`;
  const applied = r.applied.length ? `reloaded: applied ${r.applied.join(', ')}` : 'reloaded: nothing changed';
  return r.restart.length ? `${applied}; needs a restart: ${r.restart.join(', ')}` : applied;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
