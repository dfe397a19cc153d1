import { createWriteStream } from 'node:fs';
import { symbols } from 'pino';
import { Counter, type Registry as PromRegistry } from 'prom-client';
import type { Logger } from '../log.js';
import { parseQueryLogMode, type QueryLogMode } from './querylog-mode.js';

export { parseQueryLogMode, type QueryLogMode };

// --query-log: one JSON line per logged query, from both paths. The JS path formats its own
// lines; the native UDP threads put theirs in a bounded ring (native/src/querylog.rs) that a
// timer drains here. Lines go to the daemon's log stream or --query-log-file through a sink that
// never queues more than its stream's buffer: past that, lines are dropped and counted.

/** Where an answer came from: the native threads, the JS path's zone, the forward cache, an upstream. */
export type QueryPath = 'native' | 'js' | 'cache' | 'upstream';

export interface QueryLogEntry {
  client: string;
  name: string;
  type: string;
  rcode: string;
  answers: number;
  path: QueryPath;
  us: number;
}

/** The line; the native path writes the same fields in the same order (querylog.rs `format`). */
export function queryLine(e: QueryLogEntry, now = Date.now()): string {
  return `{"level":30,"time":"${new Date(now).toISOString()}","msg":"query","client":${JSON.stringify(e.client)},"name":${JSON.stringify(e.name)},"type":${JSON.stringify(e.type)},"rcode":"${e.rcode}","answers":${e.answers},"path":"${e.path}","us":${Math.round(e.us)}}\n`;
}

/** The addon's side (src/native/dns.ts provides it when the native path serves). */
export interface NativeQueryLog {
  /** 0 off, 1 errors, 2 one in `every`. */
  set(mode: number, every: number): void;
  /** Up to `max` lines waiting in the ring, and how many. */
  take(max: number): [Buffer, number] | undefined;
  /** [lines put in the ring, lines dropped because it was full], since the start. */
  counts(): number[];
}

/**
 * The native path logs at most DRAIN_MAX lines per DRAIN_MS (~40k lines/s; the ring's 8192
 * entries absorb bursts): every line costs the event loop and the disk, and at that rate the log
 * stays within ~15 % of the daemon's CPU at full load (bench/RESULTS.md). More is dropped, counted.
 */
const DRAIN_MS = 100;
const DRAIN_MAX = 4096;

type DropReason = 'ring_full' | 'sink_busy' | 'sink_failed';

interface Writable {
  write(chunk: string | Buffer): boolean;
  once(event: 'drain', f: () => void): unknown;
}

/**
 * A stream written without ever queueing past its buffer: after a write that fills it (write()
 * returns false) lines are dropped until it drains; after an error, all of them (logged once).
 */
class Sink {
  private busy = false;
  failed: string | null = null;

  constructor(
    private readonly stream: Writable,
    private readonly dropped: (reason: DropReason, n: number) => void,
  ) {}

  write(chunk: string | Buffer, lines: number): void {
    if (this.failed !== null) return this.dropped('sink_failed', lines);
    if (this.busy) return this.dropped('sink_busy', lines);
    if (!this.stream.write(chunk)) {
      this.busy = true;
      this.stream.once('drain', () => (this.busy = false));
    }
  }
}

export class QueryLog {
  private mode: QueryLogMode = { kind: 'off', every: 1 };
  private file = '';
  private sink: Sink | null = null;
  private close_: () => void = () => undefined;
  private native: NativeQueryLog | null = null;
  private timer: NodeJS.Timeout | null = null;
  private count = 0;
  private nativeDropped = 0;
  private readonly lines = { native: 0, js: 0 };
  private readonly drops: Record<DropReason, number> = { ring_full: 0, sink_busy: 0, sink_failed: 0 };

  constructor(
    private readonly log: Logger,
    prom?: PromRegistry,
  ) {
    if (!prom) return;
    const self = this;
    new Counter({
      name: 'podman_swarm_dns_query_log_lines_total',
      help: 'Query log lines produced (--query-log), by the path that answered (native: the UDP threads; js: the JS path)',
      labelNames: ['path'],
      registers: [prom],
      collect() {
        self.drain();
        this.reset();
        for (const [path, n] of Object.entries(self.lines)) this.inc({ path }, n);
      },
    });
    new Counter({
      name: 'podman_swarm_dns_query_log_dropped_total',
      help: 'Query log lines dropped: ring_full (the native ring was not drained in time), sink_busy (the log stream or file did not keep up), sink_failed (the file cannot be written)',
      labelNames: ['reason'],
      registers: [prom],
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(self.drops)) this.inc({ reason }, n);
      },
    });
  }

  /** True when the JS path should call record() for this rcode (cheap: called per query). */
  wants(rcode: string): boolean {
    switch (this.mode.kind) {
      case 'off':
        return false;
      case 'errors':
        return rcode !== 'NOERROR';
      default:
        if (++this.count < this.mode.every) return false;
        this.count = 0;
        return true;
    }
  }

  /** A query the JS path answered (after wants() said yes). */
  record(e: QueryLogEntry): void {
    this.lines.js++;
    this.sink?.write(queryLine(e), 1);
  }

  /** The native path's ring; its entries are drained on a timer while the log is on. */
  attachNative(n: NativeQueryLog): void {
    this.native = n;
    this.apply();
  }

  /** At start and on reload: `mode` as --query-log, `file` as --query-log-file ('' : the log stream). */
  configure(mode: string, file: string): void {
    const next = parseQueryLogMode(mode);
    // A file that failed is tried again on every reload.
    const reopen = file !== this.file || (this.mode.kind === 'off') !== (next.kind === 'off') || this.sink?.failed != null;
    this.mode = next;
    this.count = 0;
    if (reopen) {
      this.drain();
      this.close_();
      this.file = file;
      this.open();
    }
    this.apply();
  }

  close(): void {
    this.mode = { kind: 'off', every: 1 };
    this.apply();
    this.drain();
    this.close_();
    this.sink = null;
  }

  private open(): void {
    this.sink = null;
    this.close_ = () => undefined;
    if (this.mode.kind === 'off') return;
    const dropped = (reason: DropReason, n: number): void => void (this.drops[reason] += n);
    if (!this.file) {
      const stream = (this.log as unknown as Record<symbol, Writable | undefined>)[symbols.streamSym] ?? process.stdout;
      this.sink = new Sink(stream, dropped);
      return;
    }
    const file = this.file;
    const stream = createWriteStream(file, { flags: 'a' });
    const sink = new Sink(stream, dropped);
    stream.on('error', (err) => {
      if (sink.failed !== null) return;
      sink.failed = err.message;
      this.log.warn({ err, file }, `query log file ${file} cannot be written (${err.message}); its lines are dropped (podman_swarm_dns_query_log_dropped_total) until it is fixed and the daemon reloaded`);
    });
    this.sink = sink;
    this.close_ = () => stream.end();
  }

  private apply(): void {
    const on = this.mode.kind !== 'off';
    this.native?.set(this.mode.kind === 'off' ? 0 : this.mode.kind === 'errors' ? 1 : 2, this.mode.every);
    if (on && this.native && !this.timer) {
      this.timer = setInterval(() => this.drain(), DRAIN_MS);
      this.timer.unref();
    } else if (!on && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Moves what the native threads logged to the sink. */
  private drain(): void {
    if (!this.native) return;
    const got = this.native.take(DRAIN_MAX);
    if (got) {
      this.lines.native += got[1];
      if (this.sink) this.sink.write(got[0], got[1]);
    }
    const dropped = this.native.counts()[1] ?? 0;
    this.drops.ring_full += dropped - this.nativeDropped;
    this.nativeDropped = dropped;
  }
}
