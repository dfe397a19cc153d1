import { createHash } from 'node:crypto';
import { constants, readdirSync, unlinkSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, parseEndpoint } from '../registry/input.js';
import { putByKey, removeByKey } from '../registry/steps.js';
import { compareKeys, endpointKey, type Endpoint } from '../registry/types.js';
import { readJsonFile, readText, report, stateError, StateWriteError, writeFileAtomicAsync } from './files.js';

// Endpoints registered through the API survive a restart, as Consul's agent keeps its services:
// they are this node's own data and nobody else would bring them back.
//
// A change costs what it changes, however many registrations there are: it is one line appended
// to a journal (`api-endpoints.journal.<generation>`), on disk (O_DSYNC) before the API answers.
// The whole set is in `api-endpoints.json`, which names the first journal generation it does not
// hold. When the journal has grown past the whole file's size (at least COMPACT_MIN bytes), new
// lines go to the next generation's journal and the whole file is written anew in the
// background (serialised in slices, written and fsync'ed off the event loop); once it is on disk
// the older journals are deleted. At start the whole file is read and the journals from its
// generation on are replayed in order. Each line carries a hash of itself: a last line that is
// cut short or does not match is a write a crash interrupted (never acknowledged) and is
// ignored with a log line.

const FILE = 'api-endpoints.json';
const JOURNAL = /^api-endpoints\.journal\.(\d{1,15})$/;
const FORMAT = 1;
/** The journal may grow to the whole file's size, and to at least this. */
const COMPACT_MIN = 256 * 1024;
const APPEND = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC;
/** Registrations serialised per event-loop turn when the whole file is written. */
const SLICE = 500;

interface Stored {
  namespace: string;
  service: string;
  id: string;
  address: string;
  hostname: string;
  ports: Record<string, string>;
  weight: number;
  health: string;
  registered: number;
}

interface Whole {
  format: number;
  /** The first journal generation this file does not hold (absent: 0). */
  journal?: number;
  endpoints: Stored[];
}

type Line = ({ op: 'put' } & Stored) | { op: 'del'; namespace: string; service: string; id: string };

export interface LoadedRegistrations {
  endpoints: Endpoint[];
  /** Registrations today's rules refuse (an address or port count an older version took). */
  skipped: string[];
  /** Journal lines left out: a torn last line, a damaged one. */
  warnings: string[];
  /** The whole file could not be read (it was moved aside): what to tell the operator. */
  problem: string | null;
}

const toStored = (e: Endpoint): Stored => ({
  namespace: e.namespace,
  service: e.service,
  id: e.id,
  address: e.addresses[0]!,
  hostname: e.hostname,
  ports: Object.fromEntries(Object.entries(e.ports).map(([n, p]) => [n, `${p.port}/${p.protocol}`])),
  weight: e.weight,
  health: e.health,
  registered: e.lastSeen,
});

const digest = (json: string): string => createHash('sha256').update(json).digest('hex').slice(0, 16);

/** One journal line: "<hash of the JSON> <JSON>\n". */
export function encodeLine(line: Line): string {
  const json = JSON.stringify(line);
  return `${digest(json)} ${json}\n`;
}

/** The line's record, or null when it is damaged (cut short, or its hash does not match). */
function decodeLine(text: string): Line | null {
  const json = text.slice(17);
  if (text[16] !== ' ' || digest(json) !== text.slice(0, 16)) return null;
  try {
    const l = JSON.parse(json) as Line;
    return (l?.op === 'put' || l?.op === 'del') && typeof l.namespace === 'string' && typeof l.service === 'string' && typeof l.id === 'string' ? l : null;
  } catch {
    return null;
  }
}

/** Applies a journal's lines to `into`; returns what was left out. */
export function replayJournal(name: string, text: string, into: Map<string, Stored>): string[] {
  const warnings: string[] = [];
  const lines = text.split('\n');
  const last = lines.pop()!; // after the final newline: '' unless the last write was cut short
  lines.forEach((raw, i) => {
    const l = decodeLine(raw);
    if (!l) return void warnings.push(`${name}: line ${i + 1} is damaged (its hash does not match) and was left out`);
    if (l.op === 'put') {
      const { op: _op, ...stored } = l;
      into.set(endpointKey(l), stored);
    } else into.delete(endpointKey(l));
  });
  if (last !== '') warnings.push(`${name}: ignored its last line (${Buffer.byteLength(last)} bytes), a write cut short by a crash before it was acknowledged`);
  return warnings;
}

async function wholeText(list: Endpoint[], generation: number): Promise<string> {
  const parts: string[] = [];
  for (let i = 0; i < list.length; i += SLICE) {
    if (i > 0) await new Promise((r) => setImmediate(r));
    parts.push(list.slice(i, i + SLICE).map((e) => JSON.stringify(toStored(e))).join(',\n'));
  }
  return `{"format": ${FORMAT}, "journal": ${generation}, "endpoints": [\n${parts.join(',\n')}\n]}\n`;
}

export class RegistrationStore {
  readonly path: string;
  /**
   * What is on disk, whole file and journals together: the endpoints themselves, which the local
   * node holds too (not a second copy in the file's form: 7 MB at 50,000 registrations), sorted
   * by key and found by binary search (not a map by key: its table and a key string per
   * endpoint, 3.4 MB at 50,000).
   */
  private current: Endpoint[] = [];
  /** The journal generation lines are appended to. */
  private generation = 0;
  /** Bytes in the journal being appended to (all of them acknowledged; 0: not opened yet). */
  private journalBytes = 0;
  private wholeBytes = 0;
  private tail: Promise<unknown> = Promise.resolve();
  private compaction: Promise<void> | null = null;

  constructor(
    readonly dir: string,
    /** The journal is compacted past max(this, the whole file's size) bytes. */
    private readonly compactMin = COMPACT_MIN,
  ) {
    this.path = join(dir, FILE);
  }

  private journalPath(generation: number): string {
    return join(this.dir, `api-endpoints.journal.${generation}`);
  }

  private journals(): number[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    return names.map((n) => JOURNAL.exec(n)).filter((m) => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b);
  }

  /**
   * The saved registrations: the whole file, then the journals from its generation on. One that
   * today's rules refuse is left out and named in `skipped`, not a reason to drop the others.
   * When journals were replayed, they are compacted into the whole file in the background.
   */
  load(): LoadedRegistrations {
    const r = readJsonFile(this.path, (raw) => {
      const data = raw as Whole;
      if (data?.format !== FORMAT || !Array.isArray(data.endpoints)) throw new Error(`not a format ${FORMAT} registration file`);
      return data;
    });
    let problem: string | null = null;
    let from = 0;
    let whole: Stored[] = [];
    if (r.kind === 'ok') {
      from = Number.isSafeInteger(r.value.journal) ? r.value.journal! : 0;
      whole = r.value.endpoints;
    } else if (r.kind === 'corrupt') {
      // Which journals it held is unknown: all of them are replayed, what was only in it is lost.
      problem = `${this.path} could not be read (${r.reason})${r.movedTo ? `; moved to ${r.movedTo}` : ''}; API registrations start from the journals only`;
    }
    const warnings: string[] = [];
    const gens = this.journals();
    const replayed = gens.filter((g) => g >= from);
    // Without journals to replay, the file's registrations are parsed as they are, not put in a
    // map by key first (50,000 of them: a map and a key each less at start).
    let entries: Iterable<Stored> = whole;
    if (replayed.length > 0) {
      const stored = new Map<string, Stored>();
      for (const e of whole) stored.set(endpointKey(e), e);
      for (const g of replayed) {
        let text: string;
        try {
          text = readText(this.journalPath(g));
        } catch (e) {
          warnings.push(`${this.journalPath(g)} could not be read (${(e as Error).message}); its changes are missing`);
          continue;
        }
        warnings.push(...replayJournal(this.journalPath(g), text, stored));
      }
      entries = stored.values();
    }
    for (const g of gens.filter((g) => g < from)) {
      try {
        unlinkSync(this.journalPath(g)); // held by the whole file already: its removal was cut short
      } catch {
        /* gone already */
      }
    }
    this.generation = Math.max(from, ...gens.map((g) => g + 1));
    // The last registration of a key counts (a key twice in the file: only a hand edit does that).
    const refused = new Map<string, string>();
    // In key order with no key twice (a whole file this version wrote, no journal): a list as it
    // comes; otherwise a map by key, sorted after.
    const list: Endpoint[] = [];
    let last = '';
    let byKey: Map<string, Endpoint> | null = null;
    for (const e of entries) {
      const key = endpointKey(e);
      if (!byKey && compareKeys(last, key) >= 0 && list.length > 0) byKey = new Map(list.map((l) => [endpointKey(l), l]));
      try {
        const endpoint = parseEndpoint(
          { id: e.id, address: e.address, hostname: e.hostname, ports: e.ports, weight: e.weight, health: e.health },
          { namespace: e.namespace, service: e.service, source: 'api', now: e.registered, maxPorts: Infinity },
        );
        if (byKey) byKey.set(key, endpoint);
        else list.push(endpoint);
        last = key;
        refused.delete(key);
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        byKey?.delete(key);
        refused.set(key, `${e.namespace}/${e.service} ${e.id}: ${err.field}: ${err.message}`);
      }
    }
    this.current = byKey ? [...byKey].sort(([a], [b]) => compareKeys(a, b)).map(([, e]) => e) : list;
    const endpoints = this.current.slice();
    const skipped = [...refused.values()];
    if (replayed.length > 0 || problem !== null) this.compact();
    return { endpoints, skipped, warnings, problem };
  }

  /** Saves `e` (new, or replacing the one with its id); rejects with StateWriteError when it could not. */
  put(e: Endpoint): Promise<void> {
    return this.append({ op: 'put', ...toStored(e) }, () => putByKey(this.current, endpointKey(e), () => e));
  }

  /** Saves the removal of `e`; rejects with StateWriteError when it could not. */
  remove(e: Pick<Endpoint, 'namespace' | 'service' | 'id'>): Promise<void> {
    return this.append({ op: 'del', namespace: e.namespace, service: e.service, id: e.id }, () => void removeByKey(this.current, endpointKey(e)));
  }

  /** Appends run one at a time, in call order. */
  private append(line: Line, applied: () => void): Promise<void> {
    const done = this.tail.then(() => this.write(Buffer.from(encodeLine(line)), applied));
    this.tail = done.catch(() => undefined);
    return done;
  }

  // The journal is opened per append, not held open: a held file would keep the state
  // directory's file system from being remounted read-only (EBUSY). O_DSYNC makes each write
  // return once its bytes are on disk (as write + fdatasync would), and the close is not waited
  // for: two trips to the thread pool before the answer, each one a wake-up of a busy machine.
  private async write(buf: Buffer, applied: () => void): Promise<void> {
    let error: StateWriteError | null = null;
    const path = this.journalPath(this.generation);
    let fh: fsp.FileHandle | null = null;
    try {
      fh = await fsp.open(path, APPEND, 0o640);
      if (this.journalBytes === 0) {
        this.journalBytes = (await fh.stat()).size; // a journal a failed append left (see undo)
        await syncDir(this.dir); // the new file's name survives a power loss
      }
      for (let off = 0; off < buf.length; ) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off);
        if (bytesWritten <= 0) throw new StateWriteError(this.path, 'EIO', `no progress appending to ${path}`);
        off += bytesWritten;
      }
      this.journalBytes += buf.length;
    } catch (e) {
      error = stateError(this.path, e);
      if (fh) await this.undo(fh);
    }
    fh?.close().catch(() => undefined);
    report(this.path, error);
    applied();
    if (this.journalBytes > Math.max(this.compactMin, this.wholeBytes)) this.compact();
  }

  /** After a failed append: cuts what it wrote, or else leaves that journal for the next one. */
  private async undo(fh: fsp.FileHandle): Promise<void> {
    try {
      await fh.truncate(this.journalBytes);
    } catch {
      this.generation++; // its torn last line is ignored at start
      this.journalBytes = 0;
    }
  }

  /** Moves appends to the next journal and writes the whole set in the background (one at a time). */
  private compact(): void {
    if (this.compaction) return;
    const list = this.current.slice();
    const generation = ++this.generation;
    this.journalBytes = 0;
    this.compaction = (async () => {
      const text = await wholeText(list, generation);
      await writeFileAtomicAsync(this.path, text);
      this.wholeBytes = Buffer.byteLength(text);
      for (const g of this.journals()) if (g < generation) await fsp.unlink(this.journalPath(g)).catch(() => undefined);
    })()
      // A failed write is shown in the state directory's health (writeFileAtomicAsync reports it);
      // it is tried again once the next journal has grown as much.
      .catch(() => undefined)
      .finally(() => (this.compaction = null));
  }

  /** Waits for the appends and the compaction under way. */
  async close(): Promise<void> {
    await this.tail;
    await this.compaction;
  }
}

async function syncDir(dir: string): Promise<void> {
  const dh = await fsp.open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
