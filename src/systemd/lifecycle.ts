import type { NotifySender } from './notify.js';
import { extendTimeoutMessage, READY, reloadingMessage, reloadStatus, statusMessage, STOPPING, WATCHDOG } from './messages.js';

// What the daemon tells systemd over its life (docs/architecture.md#systemd): READY=1 once listeners are bound,
// STATUS= with counts, RELOADING=1/READY=1 around SIGHUP, STOPPING=1, EXTEND_TIMEOUT_USEC for a
// slow start. Without systemd (no sender) every call is a no-op.

export class SystemdNotifier {
  private lastStatus = '';

  constructor(private readonly send: NotifySender | null) {}

  get enabled(): boolean {
    return this.send !== null;
  }

  ready(status?: string): void {
    this.emit(status ? `${READY}\n${statusMessage(status)}` : READY);
    if (status) this.lastStatus = status;
  }

  /** STATUS=, sent only when it changed. */
  status(status: string): void {
    if (status === this.lastStatus) return;
    this.lastStatus = status;
    this.emit(statusMessage(status));
  }

  /** Before applying a reload: systemd holds `systemctl reload` until ready() follows. */
  reloading(): void {
    this.emit(reloadingMessage(process.hrtime.bigint() / 1000n));
  }

  /** After a reload (applied or refused): READY=1 with what happened as STATUS=. */
  reloaded(result: Parameters<typeof reloadStatus>[0]): void {
    this.ready(reloadStatus(result));
  }

  stopping(status = 'stopping'): void {
    this.emit(`${STOPPING}\n${statusMessage(status)}`);
  }

  /** Asks for more start (or stop) time, e.g. while a first sync is slow. */
  extendTimeout(ms: number): void {
    this.emit(extendTimeoutMessage(ms * 1000));
  }

  watchdog(): void {
    this.emit(WATCHDOG);
  }

  private emit(message: string): void {
    this.send?.(message);
  }
}
