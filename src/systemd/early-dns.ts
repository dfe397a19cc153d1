import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { fdBuffer, loadDnsAddon, type Addon } from '../native/index.js';
import type { SocketStore } from '../net/sockets.js';
import { listenFds } from './fd-store.js';

// Answers before the daemon has started. After a restart (systemctl restart, an upgrade, a crash
// with Restart=) systemd hands the new process the DNS sockets it kept, with the queries the
// kernel queued on them meanwhile. Loading and starting the whole daemon takes a second of CPU
// (seconds on a busy host), longer than a client waits. So the entry point, before it loads the
// rest, gives the stored UDP sockets to the native threads with the answer table the previous
// process left in the runtime directory (src/native/table-file.ts): they answer the queued and
// new queries from it at once. The DNS setup takes these listeners over (claimEarly) and
// installs its own table once built; anything the threads hand to JS waits for it. Only with
// stored sockets (a restart within this boot), the runtime directory systemd made
// ($RUNTIME_DIRECTORY) and the addon; otherwise nothing happens here.

/** The answer table's file name in $RUNTIME_DIRECTORY. */
export const TABLE_FILE = 'answers.table';

export interface EarlyListener {
  id: number;
  port: number;
  fds: number[];
  /** Called by the addon when queries wait for JS; the DNS setup points it at its pump. */
  wake: () => void;
}

const early = new Map<string, EarlyListener>();
let native: Addon | null = null;
let served: { listeners: number; tableBytes: number; ms: number } | null = null;

/** The table file under systemd's runtime directory (the first one the unit names), or null without one. */
export function tableFile(env: NodeJS.ProcessEnv): string | null {
  const dir = env.RUNTIME_DIRECTORY?.split(':')[0];
  return dir ? join(dir, TABLE_FILE) : null;
}

/** Serves the stored DNS UDP sockets from the stored table; returns how many addresses. Never throws. */
export function serveStoredDns(env: NodeJS.ProcessEnv, pid = process.pid): number {
  const file = tableFile(env);
  const stored = [...listenFds(env, pid)].filter(([name]) => name.startsWith('dns-udp/'));
  if (!file || stored.length === 0) return 0;
  try {
    const table = readFileSync(file);
    const { addon } = loadDnsAddon(env);
    if (!addon) return 0;
    addon.setTable(table, false);
    native = addon;
    for (const [name, fds] of stored) {
      const [, host, port] = name.split('/');
      const l: EarlyListener = { id: 0, port: 0, fds, wake: () => undefined };
      // rcvbuf 0: the sockets keep the buffer size the previous process gave them.
      [l.id, l.port] = addon.openUdp(host!.replace(/_/g, ':'), Number(port), fds.length, 0, () => l.wake(), fdBuffer(fds));
      early.set(name, l);
    }
    served = { listeners: early.size, tableBytes: table.length, ms: Math.round(performance.now()) };
  } catch {
    // No table (a first start, a stop in between), a table of another version, no addon: the
    // DNS setup serves the sockets as usual.
  }
  return early.size;
}

/** Whether the stored DNS sockets are answered from the previous run's table. */
export const earlyTable = (): boolean => native !== null;

/** The listener serving the stored socket `name`, taken over by the caller (once). */
export function claimEarly(name: string): EarlyListener | undefined {
  const l = early.get(name);
  early.delete(name);
  return l;
}

/**
 * Once every listener took its socket: says what was served early, and closes the early
 * listeners of addresses the configuration no longer has (their sockets leave systemd's store).
 */
export function settleEarly(store: SocketStore, log: Logger): void {
  if (served) log.info(served, `answered from the previous run's table ${served.ms} ms after the process started, on ${served.listeners} stored DNS socket${served.listeners === 1 ? '' : 's'}`);
  served = null;
  for (const [name, l] of early) {
    store.take(name);
    native?.closeUdp(l.id);
    store.forget(name);
    log.info({ name }, `closed the stored socket ${name}: the configuration no longer asks for it`);
  }
  early.clear();
}
