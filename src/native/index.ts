import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Loads the Rust addon (../native, docs/architecture.md#native-addon). PODMAN_SWARM_DNS_NATIVE=0 forces the JS DNS path;
// PODMAN_SWARM_DNS_NATIVE_ADDON=<file> picks another build. A missing or broken addon is not an
// error: the daemon serves DNS from JS and says so once.

/** What native/src/lib.rs exports. */
export interface Addon {
  /**
   * Binds `threads` SO_REUSEPORT sockets; returns [listener id, bound port]. Throws with .code.
   * `onWaiting`: queries wait for JS (take them with udpTake until it returns undefined).
   * `adopt`: sockets already bound there (int32 descriptors, see fdBuffer) to serve first.
   */
  openUdp(host: string, port: number, threads: number, rcvbuf: number, onWaiting: () => void, adopt?: Buffer): [number, number];
  /** The listener's sockets, as int32 descriptors. */
  udpFds(id: number): Buffer;
  closeUdp(id: number): void;
  /** Response rate limiting in the UDP threads: responses/s per /24 or /56 (0: off), slip. */
  setRrl(rate: number, slip: number): void;
  /** The oldest query waiting for JS at most maxAgeMs old (older ones: dropped, counted). */
  udpTake(id: number, maxAgeMs: number): [packet: Buffer, ip: string, port: number, sock: number] | undefined;
  reply(sock: number, ip: string, port: number, packet: Buffer): boolean;
  /** Swaps in a whole answer table (null: none); `staged`: keeps it aside for patchTable until commitTable. */
  setTable(table: Buffer | null, staged?: boolean): void;
  /** Patches the staged table, else (or with `installed`) the current one, in place; false when there is none. */
  patchTable(patch: Buffer, installed?: boolean): boolean;
  /** Installs the staged table. */
  commitTable(): void;
  /**
   * Parses a copy of a whole answer table on a thread of its own; `done` runs on the JS thread
   * once it is parsed (error: not a table), and takeParsed(id, true) then installs it. Returns
   * the parse's id.
   */
  parseTable?(table: Buffer, done: (error: string | null, id: number) => void): number;
  /** Takes parse `id`'s table: installs it (`install`) or drops it; false when it is not there. */
  takeParsed?(id: number, install: boolean): boolean;
  /** Gives the free pages of malloc's heaps back to the system (glibc's malloc_trim), on a thread of its own. */
  trimMemory?(): void;
  /** Reply bytes, null (dropped) or undefined (the JS path must answer). */
  answer(packet: Buffer, ip: string): Buffer | null | undefined;
  stats(): number[];
  /** Forwarding cache (native/src/cache.rs): installs an upstream reply; `ttls` is n × (u16 offset, u32 TTL). */
  cachePut(key: Buffer, packet: Buffer, ttl: number, ttls: Buffer): boolean;
  /** Its bound in entries (0: off); `clear` empties it. */
  cacheConfigure(size: number, clear: boolean): void;
  /** Answers [type * 6 + rcode], misses, evictions, then entries. */
  cacheStats(): number[];
  /** sd_notify; `fds` (int32 descriptors) are passed along (SCM_RIGHTS). 0 or an errno. */
  notify(path: string, message: string, fds?: Buffer): number;
  cores(): number;
  /** The load balancer's TCP relay (native/src/relay_napi.rs; src/lb/native-tcp-proxy.ts). */
  relayListen(host: string, port: number, backlog: number, policy: number, preferLocal: boolean, idleMs: number, connectMs: number, ejectMs: number, attempts: number): [number, number];
  relayConfigure(id: number, policy: number, preferLocal: boolean, idleMs: number, connectMs: number, ejectMs: number, attempts: number): void;
  relaySetBackends(id: number, spec: string): void;
  relaySetMax(max: number): void;
  /** TCP relay threads (0: one per core); takes effect only before the first relayListen. */
  relaySetThreads(n: number): void;
  /** `restart`: a TCP listener's sockets are closed but not shut down (systemd keeps copies for the next process). */
  relayClose(id: number, force: boolean, restart?: boolean): void;
  relayForget(id: number): void;
  relayStats(id: number): (number | string)[] | undefined;
  /** The load balancer's UDP relay (native/src/relay_udp.rs; src/lb/native-udp-proxy.ts); relaySetBackends, relayClose, relayForget and relayStats serve it too. */
  relayUdpListen(host: string, port: number, policy: number, preferLocal: boolean, idleMs: number, ejectMs: number, maxSessions: number): [number, number];
  relayUdpConfigure(id: number, policy: number, preferLocal: boolean, idleMs: number, ejectMs: number, maxSessions: number): void;
  /** Serve stored sockets (int32 fds, from systemd's descriptor store) bound to host:port; throws, leaving them open, when they do not match. */
  relayAdopt(fds: Buffer, host: string, port: number, policy: number, preferLocal: boolean, idleMs: number, connectMs: number, ejectMs: number, attempts: number, backends: string): [number, number];
  relayUdpAdopt(fds: Buffer, host: string, port: number, policy: number, preferLocal: boolean, idleMs: number, ejectMs: number, maxSessions: number, backends: string): [number, number];
  /** A relay listener's sockets (int32 fds), to keep across restarts. */
  relayFds(id: number): Buffer | undefined;
  /** The native query log (native/src/querylog.rs; src/dns/querylog.ts): 0 off, 1 errors, 2 one in `every`. */
  queryLogSet(mode: number, every: number): void;
  queryLogTake(max: number): [Buffer, number] | undefined;
  queryLogStats(): number[];
}

export type LoadResult = { addon: Addon; file: string } | { addon: null; reason: string; disabled: boolean };

const here = dirname(fileURLToPath(import.meta.url));
/** src/native or dist/native → the repository (or package) root. */
const ROOT = join(here, '..', '..');
export const ADDON_NAME = `podman-swarm-dns.${process.platform}-${process.arch}-gnu.node`;

function candidates(env: NodeJS.ProcessEnv): string[] {
  if (env.PODMAN_SWARM_DNS_NATIVE_ADDON) return [env.PODMAN_SWARM_DNS_NATIVE_ADDON];
  // Checkout (native/), and the packages, which put it next to the bundled JS.
  return [join(ROOT, 'native', ADDON_NAME), join(ROOT, ADDON_NAME), join(here, ADDON_NAME)];
}

let cached: { addon: Addon; file: string } | null | undefined;

/** The addon itself, whatever PODMAN_SWARM_DNS_NATIVE says (sd_notify needs it on either path). */
export function loadAddon(env: NodeJS.ProcessEnv = process.env): LoadResult {
  if (cached) return cached;
  const files = candidates(env);
  const file = files.find((f) => existsSync(f));
  if (!file) return { addon: null, disabled: false, reason: `native addon not found (looked for ${files.join(', ')}; build it with npm run build:native)` };
  try {
    const addon = createRequire(import.meta.url)(file) as Addon;
    if (typeof addon.openUdp !== 'function' || typeof addon.udpTake !== 'function' || typeof addon.setRrl !== 'function' || typeof addon.notify !== 'function') {
      throw new Error('it does not export the expected functions (an older build? run npm run build:native)');
    }
    cached = { addon, file };
    return cached;
  } catch (e) {
    return { addon: null, disabled: false, reason: `native addon ${file} could not be loaded: ${(e as Error).message}` };
  }
}

/** The addon for the DNS fast path, or why the JS path serves instead. */
export function loadDnsAddon(env: NodeJS.ProcessEnv = process.env): LoadResult {
  if (env.PODMAN_SWARM_DNS_NATIVE === '0') return { addon: null, disabled: true, reason: 'PODMAN_SWARM_DNS_NATIVE=0: DNS served by the JS path' };
  return loadAddon(env);
}

/**
 * sd_notify(3): sends `message` (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET, a path or
 * '@' + an abstract name. False when NOTIFY_SOCKET is unset or the message could not be sent.
 */
export function sdNotify(message: string, env: NodeJS.ProcessEnv = process.env, fds: number[] = []): boolean {
  const path = env.NOTIFY_SOCKET;
  if (!path) return false;
  const loaded = loadAddon(env);
  if (!loaded.addon) return false;
  return loaded.addon.notify(path, message, fds.length ? fdBuffer(fds) : undefined) === 0;
}

/** Descriptors as the addon takes and gives them: native-endian int32s. */
export const fdBuffer = (fds: number[]): Buffer => Buffer.from(Int32Array.from(fds).buffer);
export const fdsOf = (b: Buffer): number[] => Array.from(new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)));
