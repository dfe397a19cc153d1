import { Counter } from 'prom-client';
import type { Metrics } from '../api/metrics.js';
import type { ClientPolicy } from '../dns/clients.js';
import type { DnsHandler } from '../dns/handler.js';
import type { NativeQueryLog } from '../dns/querylog.js';
import type { ContainerNames } from '../dns/scoped.js';
import type { UdpBinder } from '../dns/server.js';
import type { ZoneState } from '../dns/zone.js';
import type { Logger } from '../log.js';
import type { Registry } from '../registry/registry.js';
import type { Forwarder } from '../dns/forwarder.js';
import { NativeCache, registerNativeCacheMetrics } from './cache.js';
import { loadDnsAddon } from './index.js';
import { LiveTable, type TableSink } from './live-table.js';
import { earlyTable, tableFile } from '../systemd/early-dns.js';
import { listenFds } from '../systemd/fd-store.js';
import { collectAfterTable } from '../memory.js';
import { TableFile } from './table-file.js';
import { tableSource } from './table-source.js';
import { NativeUdp } from './udp.js';

// Wires the native DNS path into the daemon: the addon's UDP threads replace Node's UDP sockets,
// the live table follows the registry, and the addon's counters flow into the metrics.

export interface NativeDns {
  path: 'native' | 'js';
  /** Why the JS path serves, when it does. */
  reason?: string;
  /**
   * Once the sources loaded at start (config, state files) are in the registry, before the DNS
   * sockets are read: the previous run's table is served when it was compiled from what the
   * registry holds now, else the first whole table is compiled, in slices, while the JS path
   * answers (during the start grace it gives SERVFAIL, not NXDOMAIN, for names it does not know).
   */
  start(): Promise<void>;
  udpBinder?: UdpBinder;
  table?: LiveTable;
  /**
   * What the DNS sockets wait for: at once, unless systemd passed stored DNS sockets with queries
   * queued on them and no table answers them yet (then: once the first whole table is in, or
   * could not be built), so that those queries are answered by the threads, not handed to JS.
   */
  tableReady?: Promise<void>;
  /** Response rate limiting in the native threads: responses/s per network (0: off), slip. */
  setRrl(rate: number, slip: number): void;
  /** The UDP threads' query log ring. */
  queryLog?: NativeQueryLog;
  /** Writes the answer table for the next process now (before a restart; under systemd only). */
  saveTable?(): void;
  close(): void;
}

export interface NativeDnsDeps {
  registry: Registry;
  zone: ZoneState;
  clients: ClientPolicy;
  handler: DnsHandler;
  metrics: Metrics;
  log: Logger;
  env: NodeJS.ProcessEnv;
  /** Podman container names (scoped by network), when the daemon has them. */
  containerNames?: ContainerNames;
  /** Response rate limiting of the replies the JS side sends for the native threads. */
  udpLimit?: (ip: string, reply: Buffer) => Buffer | null;
  /** Its cached answers are copied to the native threads' cache. */
  forwarder?: Forwarder;
  /** The start grace: while active, names of the zone the table does not know get SERVFAIL, not NXDOMAIN. */
  grace?: { readonly active: boolean; onEnd(fn: () => void): void };
  /** The options the registry builds views with (a table compiled under others is not reused). */
  viewOptions?: () => unknown;
}

const METRICS_INTERVAL_MS = 1000;

export function nativeDns(threads: number, receiveBuffer: number, d: NativeDnsDeps): NativeDns {
  const loaded = loadDnsAddon(d.env);
  if (!loaded.addon) {
    if (loaded.disabled) d.log.info(loaded.reason);
    else d.log.warn(`${loaded.reason}; serving DNS from the JS path`);
    return { path: 'js', reason: loaded.reason, start: async () => undefined, setRrl: () => undefined, close: () => undefined };
  }
  const { addon } = loaded;
  const n = threads > 0 ? threads : addon.cores();
  const udp = new NativeUdp(addon, d.handler, n, receiveBuffer, d.udpLimit);
  // The first whole table: with stored DNS sockets that no table answers yet, the DNS setup
  // waits for it before it reads them, so that the queries the kernel queued while the daemon
  // restarted are answered by the threads, not handed to JS (which sheds a burst it cannot
  // answer in time). Otherwise the JS path answers until it is in.
  let firstTable: () => void = () => undefined;
  const first = new Promise<void>((resolve) => (firstTable = resolve));
  const queued = [...listenFds(d.env, process.pid).keys()].some((name) => name.startsWith('dns-udp/'));
  // Under systemd, the table is kept in a file for the next process (src/systemd/early-dns.ts)
  // and for this daemon's next start (LiveTable.adopt).
  const path = tableFile(d.env);
  const source = (): string => tableSource(d.zone.settings, d.registry, d.viewOptions?.());
  const file = path ? new TableFile(path, () => table.input(), d.log, source) : null;
  /**
   * Serves the previous run's table when it was compiled from what the registry holds now:
   * true once it is installed (parsed off the JS thread), false when it is not served.
   */
  const adopt = async (): Promise<boolean> => {
    const t0 = performance.now();
    const refused = (why: string): false => {
      d.log.warn(`the previous run's answer table in ${path} could not be served (${why}); compiling one`);
      return false;
    };
    let previous;
    try {
      previous = await file?.previous(source);
    } catch (e) {
      return refused((e as Error).message);
    }
    if (!previous) return false;
    // (No await from here to table.adopt: what the registry holds now is what the file was checked against.)
    return new Promise((resolve) => {
      try {
        table.adopt(previous, (error) => {
          if (error !== null) return resolve(refused(error));
          d.log.info({ ms: Math.round(performance.now() - t0), bytes: previous.table.length }, `serving the previous run's answer table from ${path}: it was compiled from the services known now`);
          resolve(true);
        });
      } catch (e) {
        resolve(refused((e as Error).message));
      }
    });
  };
  // What marks the file stale: a patch of the installed table and a whole table's commit; not the
  // parts of a whole table on their way to the staged one, nor the changes patched into the
  // installed table meanwhile (that whole table has them too), nor LiveTable.adopt's serial.
  let staging = false;
  // A whole table's header and groups as compiled, for the file: written as they are when the
  // registry did not change while it was compiled (else the file is compiled anew, later).
  let whole: { header: Buffer; groups: Buffer[]; source: string; index: number } | null = null;
  // What a whole table's buffers freed goes back to the system (malloc keeps it otherwise), once
  // a collection has freed them (on the next turn, the compile's frames gone).
  const release = (): void =>
    void setImmediate(() => {
      collectAfterTable();
      addon.trimMemory?.();
    });
  const { parseTable, takeParsed } = addon;
  const sink: TableSink = {
    set: (t: Buffer, staged: boolean) => {
      addon.setTable(t, staged);
      staging = staged;
      whole = file && staged ? { header: t, groups: [], source: source(), index: d.registry.index } : null;
    },
    groups: (groups: Buffer[]) => void whole?.groups.push(...groups),
    patch: (p: Buffer, installed?: boolean) => {
      const ok = addon.patchTable(p, installed);
      if (ok && !installed && !staging) file?.changed();
      return ok;
    },
    commit: () => {
      addon.commitTable();
      staging = false;
      if (whole && whole.index === d.registry.index) file?.whole(whole.header, whole.groups, whole.source);
      else file?.changed();
      whole = null;
      firstTable();
      release();
    },
    // The previous run's table (LiveTable.adopt), parsed on a thread of the addon's.
    install:
      parseTable && takeParsed
        ? (t, done) =>
            void parseTable(t, (error, id) =>
              done(error, (install) => {
                const ok = takeParsed(id, install);
                if (ok && install) {
                  staging = false;
                  whole = null;
                  release();
                }
                return ok;
              }),
            )
        : undefined,
  };
  // During the start grace the table answers the names it knows and SERVFAIL (not NXDOMAIN) for
  // the others, as the JS path does; at the grace's end a whole table with NXDOMAIN replaces it.
  const table = new LiveTable(d.registry, d.zone, d.clients, sink, (e) => {
    // Without a current table the threads hand every query to JS: slower, still correct.
    addon.setTable(null);
    firstTable();
    d.log.error({ err: e }, `native answer table could not be built (${e.message}); the JS path answers until the next change`);
  }, d.containerNames, d.grace);
  // (Registered once the table exists: with --start-grace 0 the grace is over already and this runs now.)
  d.grace?.onEnd(() => table.schedule());
  d.clients.onChange = () => table.schedule();
  // What this host's own addresses see changed (rootless users' names came or went): their client flags too.
  if (d.containerNames) d.containerNames.onChange = (hostView) => (hostView ? table.schedule() : table.containersChanged());
  const flush = (): void => {
    const c = udp.drain();
    for (const [type, rcode, count] of c.answers) d.metrics.nativeAnswers(type, rcode, count);
    if (c.formerr) d.metrics.malformed('formerr', c.formerr);
    if (c.dropped) d.metrics.malformed('dropped', c.dropped);
    if (c.handoffFull) d.metrics.shed('handoff_full', c.handoffFull);
    if (c.handoffLate) d.metrics.shed('handoff_late', c.handoffLate);
    if (c.rrlDrop) d.metrics.shed('rrl_drop', c.rrlDrop);
    if (c.rrlSlip) d.metrics.shed('rrl_slip', c.rrlSlip);
    if (c.latency.count) d.metrics.nativeLatency(c.latency.buckets, c.latency.sum, c.latency.count);
  };
  const cache = new NativeCache(addon);
  d.forwarder?.follow(cache);
  registerNativeCacheMetrics(d.metrics.prom, cache);
  const flushCache = (): void => {
    for (const [type, rcode, count] of cache.drain().answers) d.metrics.nativeAnswers(type, rcode, count, 'cache');
  };
  d.metrics.beforeScrape.push(flush, flushCache);
  new Counter({
    name: 'podman_swarm_dns_native_table_builds_total',
    help: 'Native answer tables and patches compiled and installed (one patch per registry or container-name change; none when nothing changed)',
    registers: [d.metrics.prom],
    collect() {
      this.reset();
      this.inc(table.builds);
    },
  });
  new Counter({
    name: 'podman_swarm_dns_native_table_sliced_turns_total',
    help: 'Event-loop turns a table or patch went on in because compiling it took longer than one turn may (a large service changed at once); the previous table answers meanwhile',
    registers: [d.metrics.prom],
    collect() {
      this.reset();
      this.inc(table.slicedTurns);
    },
  });
  const timer = setInterval(() => {
    flush();
    flushCache();
  }, METRICS_INTERVAL_MS);
  timer.unref();
  d.log.info({ addon: loaded.file, threads: n }, `native DNS path: ${n} UDP thread${n === 1 ? '' : 's'} per address (${loaded.file})`);
  return {
    path: 'native',
    start: async () => {
      const adopted = adopt();
      // Queries queued on stored sockets are read once a table answers them.
      if (queued && !earlyTable()) {
        if (await adopted) return firstTable();
        return table.start(); // (nothing when a whole table is under way already: the adopted one failed)
      }
      firstTable();
      void adopted.then((ok) => ok || table.start());
    },
    udpBinder: (addr, adopt) => udp.listen(addr, adopt),
    setRrl: (rate, slip) => addon.setRrl(rate, slip),
    queryLog: typeof addon.queryLogSet !== 'function' ? undefined : { set: (mode, every) => addon.queryLogSet(mode, every), take: (max) => addon.queryLogTake(max), counts: () => addon.queryLogStats() },
    table,
    tableReady: first,
    saveTable: () => file?.flush(),
    close: () => {
      file?.stop();
      clearInterval(timer);
      flush();
      flushCache();
      addon.cacheConfigure(0, true);
      table.close();
      addon.setTable(null);
    },
  };
}
