import { writeSync } from 'node:fs';
import type { Logger } from '../log.js';

// Sending sd_notify datagrams. Node has no unix datagram sockets, so there are two ways:
// - the native addon's sdNotify (docs/architecture.md#native-addon), when it is loaded;
// - a datagram socket already connected to $NOTIFY_SOCKET that systemd/notify-socket-exec opened
//   in this very process before exec'ing Node: its number is in PODMAN_SWARM_DNS_NOTIFY_FD and a
//   write(2) on it is one datagram, sent by the main PID (NotifyAccess=main holds).
// Evaluated and not used: the npm package `systemd-notify` (1.0.0) spawns the systemd-notify
// binary, so the datagram comes from a short-lived child: NotifyAccess=main makes systemd drop it
// (--pid only sets MAINPID=), and NotifyAccess=all races the child's exit; it has no watchdog or
// reload support either. `sd-notify` wraps libsystemd with node-gyp: a C toolchain and
// libsystemd-dev at install time, for what the project's own addon (docs/architecture.md#native-addon) already does.

/** Sends one notification; false if it could not be sent. */
export type NotifySender = (message: string) => boolean;

export const NOTIFY_FD_ENV = 'PODMAN_SWARM_DNS_NOTIFY_FD';

export interface NativeNotify {
  sdNotify(message: string): boolean;
}

export function fdSender(fd: number): NotifySender {
  return (message) => {
    try {
      writeSync(fd, Buffer.from(message));
      return true;
    } catch {
      // EAGAIN (systemd not reading), ECONNREFUSED (systemd gone): notifications are best effort.
      return false;
    }
  };
}

/**
 * The sender for this process, or null when systemd is not listening (no NOTIFY_SOCKET) or
 * there is no way to reach it (logged). On the fd path it removes the variables so children
 * (ip, ...) do not see them, as sd_notify's unset_environment does.
 */
export function notifySender(env: NodeJS.ProcessEnv, native: NativeNotify | null, log: Logger): NotifySender | null {
  const socket = env.NOTIFY_SOCKET;
  const fdText = env[NOTIFY_FD_ENV];
  delete env[NOTIFY_FD_ENV];
  // The addon reads NOTIFY_SOCKET itself (as sd_notify does), so it stays for that path.
  if (native) return socket ? (message) => native.sdNotify(message) : null;
  delete env.NOTIFY_SOCKET;
  if (fdText !== undefined && /^\d+$/.test(fdText)) return fdSender(Number(fdText));
  if (socket) {
    log.warn(`NOTIFY_SOCKET is set but neither the native addon nor notify-socket-exec is there to reach it: systemd will not see READY=1 (start the daemon through /usr/lib/podman-swarm-dns/notify-socket-exec)`);
  }
  return null;
}
