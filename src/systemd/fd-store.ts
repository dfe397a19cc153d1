import type { Logger } from '../log.js';
import { loadAddon, sdNotify } from '../native/index.js';
import { closeFds, type SocketStore } from '../net/sockets.js';

// Sockets that outlive the process: every listening socket the daemon binds is handed to
// systemd's file descriptor store (sd_notify FDSTORE=1 + FDNAME=<name>, the descriptors riding
// along as SCM_RIGHTS; the unit allows it with FileDescriptorStoreMax=). When the daemon restarts
// — `systemctl restart`, an upgrade, a crash with Restart= — systemd keeps them open, the kernel
// keeps queueing queries and connections on them, and passes them to the next process
// (LISTEN_FDS, LISTEN_FDNAMES), which serves them instead of binding new ones. A stored socket
// the configuration no longer asks for is closed, logged, and removed from the store
// (FDSTOREREMOVE=1). Without systemd, the addon or the store, the daemon binds fresh sockets as
// it always did, saying why once.

/** The first descriptor systemd passes (SD_LISTEN_FDS_START). */
const LISTEN_FDS_START = 3;
/** More than any configuration here needs; bounds what a bogus LISTEN_FDS makes us touch. */
const MAX_LISTEN_FDS = 4096;

/** The descriptors systemd passed to this process, by name (pure: reads only `env`). */
export function listenFds(env: NodeJS.ProcessEnv, pid: number): Map<string, number[]> {
  const out = new Map<string, number[]>();
  if (env.LISTEN_PID !== String(pid)) return out;
  const n = Number(env.LISTEN_FDS);
  if (!Number.isInteger(n) || n <= 0 || n > MAX_LISTEN_FDS) return out;
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  for (let i = 0; i < n; i++) {
    const name = names[i] || 'unknown';
    out.set(name, [...(out.get(name) ?? []), LISTEN_FDS_START + i]);
  }
  return out;
}

/** Sends one notification with descriptors; false when it could not be sent. */
export type FdSender = (message: string, fds: number[]) => boolean;

export class FdStore implements SocketStore {
  private readonly pool: Map<string, number[]>;
  /** Why sockets are not kept, or null when they are. */
  private readonly off: string | null;
  private failed = false;

  constructor(env: NodeJS.ProcessEnv, private readonly send: FdSender | null, private readonly log: Logger, pid = process.pid) {
    this.pool = listenFds(env, pid);
    // As sd_listen_fds(unset_environment=1) does: children (ip, ...) must not see them.
    delete env.LISTEN_FDS;
    delete env.LISTEN_PID;
    delete env.LISTEN_FDNAMES;
    this.off = !env.NOTIFY_SOCKET ? 'not run by systemd'
      : !send ? 'the native addon is not loaded (only it can pass descriptors to systemd)'
      : env.FDSTORE === '0' ? 'the unit has FileDescriptorStoreMax=0'
      : null;
    const adopted = [...this.pool.values()].reduce((n, fds) => n + fds.length, 0);
    if (adopted) log.info({ names: [...this.pool.keys()] }, `systemd passed ${adopted} stored socket${adopted === 1 ? '' : 's'} from the previous run`);
    else if (this.off && env.NOTIFY_SOCKET) log.info(`sockets are not kept across restarts: ${this.off}; queries sent during a restart wait for their retry`);
  }

  take(name: string): number[] {
    const fds = this.pool.get(name) ?? [];
    this.pool.delete(name);
    return fds;
  }

  keep(name: string, fds: number[]): void {
    if (this.off || !this.send || this.failed || fds.length === 0) return;
    if (!this.send(`FDSTORE=1\nFDNAME=${name}`, fds)) {
      // Said once: the rest would fail the same way.
      this.failed = true;
      this.log.warn(`systemd did not take socket ${name} into its descriptor store; sockets are not kept across restarts`);
    }
  }

  forget(name: string): void {
    if (!this.off) this.send?.(`FDSTOREREMOVE=1\nFDNAME=${name}`, []);
  }

  /**
   * After start: every stored socket nobody took belongs to an address the configuration no
   * longer has. Each is closed here and dropped from systemd's store, never served.
   */
  release(): void {
    for (const [name, fds] of this.pool) {
      closeFds(fds);
      this.log.info({ name, fds }, `closed the stored socket ${name}: the configuration no longer asks for it`);
      this.forget(name);
    }
    this.pool.clear();
  }
}

/** The store for this process: descriptors go to systemd through the native addon's sd_notify. */
export function systemdSockets(env: NodeJS.ProcessEnv, log: Logger): FdStore {
  const addon = loadAddon(env).addon;
  return new FdStore(env, addon ? (message, fds) => sdNotify(message, env, fds) : null, log);
}
