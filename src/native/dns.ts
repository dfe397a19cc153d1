import { Counter } from 'prom-client';
import type { Metrics } from '../api/metrics.js';
import type { ClientPolicy } from '../dns/clients.js';
import type { DnsHandler } from '../dns/handler.js';
import type { ContainerNames } from '../dns/scoped.js';
import type { UdpBinder } from '../dns/server.js';
import type { ZoneState } from '../dns/zone.js';
import type { Logger } from '../log.js';
import type { Registry } from '../registry/registry.js';
import { loadDnsAddon } from './index.js';
import { LiveTable } from './live-table.js';
import { NativeUdp } from './udp.js';

// Wires the native DNS path into the daemon: the addon's UDP threads replace Node's UDP sockets,
// the live table follows the registry, and the addon's counters flow into the metrics.

export interface NativeDns {
  path: 'native' | 'js';
  /** Why the JS path serves, when it does. */
  reason?: string;
  udpBinder?: UdpBinder;
  table?: LiveTable;
  /** Response rate limiting in the native threads: responses/s per network (0: off), slip. */
  setRrl(rate: number, slip: number): void;
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
  /** The start grace: while active no table is installed, so the JS path answers (SERVFAIL, not NXDOMAIN). */
  grace?: { readonly active: boolean; onEnd(fn: () => void): void };
}

const METRICS_INTERVAL_MS = 1000;
/** Tables above this are parsed off the event loop; small ones go in at once (no lag at all). */
const BACKGROUND_PARSE_BYTES = 1 << 20;

export function nativeDns(threads: number, receiveBuffer: number, d: NativeDnsDeps): NativeDns {
  const loaded = loadDnsAddon(d.env);
  if (!loaded.addon) {
    if (loaded.disabled) d.log.info(loaded.reason);
    else d.log.warn(`${loaded.reason}; serving DNS from the JS path`);
    return { path: 'js', reason: loaded.reason, setRrl: () => undefined, close: () => undefined };
  }
  const { addon } = loaded;
  const n = threads > 0 ? threads : addon.cores();
  const udp = new NativeUdp(addon, d.handler, n, receiveBuffer, d.udpLimit);
  let held: Buffer | null = null;
  const install = (t: Buffer): void => {
    if (d.grace?.active) held = t;
    else addon.setTable(t, t.length > BACKGROUND_PARSE_BYTES);
  };
  d.grace?.onEnd(() => {
    if (held) install(held);
    held = null;
  });
  const table = new LiveTable(d.registry, d.zone, d.clients, install, (e) => {
    held = null;
    // Without a current table the threads hand every query to JS: slower, still correct.
    addon.setTable(null);
    d.log.error({ err: e }, `native answer table could not be built (${e.message}); the JS path answers until the next change`);
  }, d.containerNames);
  d.clients.onChange = () => table.schedule();
  if (d.containerNames) d.containerNames.onChange = () => table.schedule();
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
  d.metrics.beforeScrape.push(flush);
  new Counter({
    name: 'podman_swarm_dns_native_table_builds_total',
    help: 'Native answer tables compiled and installed (one per registry or container-name change; none when nothing changed)',
    registers: [d.metrics.prom],
    collect() {
      this.reset();
      this.inc(table.builds);
    },
  });
  const timer = setInterval(flush, METRICS_INTERVAL_MS);
  timer.unref();
  d.log.info({ addon: loaded.file, threads: n }, `native DNS path: ${n} UDP thread${n === 1 ? '' : 's'} per address (${loaded.file})`);
  return {
    path: 'native',
    udpBinder: (addr, adopt) => udp.listen(addr, adopt),
    setRrl: (rate, slip) => addon.setRrl(rate, slip),
    table,
    close: () => {
      clearInterval(timer);
      flush();
      table.close();
      addon.setTable(null);
    },
  };
}
