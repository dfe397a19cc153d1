import { readFileSync } from 'node:fs';
import { homedir, hostname, networkInterfaces } from 'node:os';
import { join, resolve } from 'node:path';
import { addressAt } from '../net/cidr.js';
import type { ApiListen } from './kinds.js';
import type { Options } from './options.js';

// Defaults that depend on who runs the daemon and where: as root (or with the capabilities the
// systemd unit grants) it uses the documented defaults (docs/architecture.md#configuration); as a normal user it picks what it can use.

export interface Privileges {
  /** CAP_NET_BIND_SERVICE: ports below 1024. */
  bindLowPorts: boolean;
  /** CAP_NET_ADMIN: create the daemon's link and add addresses. */
  netAdmin: boolean;
}

const CAP_NET_BIND_SERVICE = 10n;
const CAP_NET_ADMIN = 12n;

export function privileges(): Privileges {
  let eff = 0n;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) eff = BigInt(`0x${m[1]}`);
  } catch {
    if (process.getuid?.() === 0) eff = (1n << CAP_NET_BIND_SERVICE) | (1n << CAP_NET_ADMIN);
  }
  return { bindLowPorts: ((eff >> CAP_NET_BIND_SERVICE) & 1n) === 1n, netAdmin: ((eff >> CAP_NET_ADMIN) & 1n) === 1n };
}

const SYSTEM_SOCKET = '/run/podman-swarm-dns/api.sock';

const isSystem = (): boolean => process.getuid?.() === 0;

function userRuntimeDir(env: NodeJS.ProcessEnv): string {
  return env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'podman-swarm-dns') : `/tmp/podman-swarm-dns-${process.getuid?.() ?? 'user'}`;
}

/**
 * The API socket of a daemon with this state dir: the well-known path for the default state dir,
 * `<state dir>/api.sock` for any other. A second daemon (say, one per network namespace) needs its
 * own state dir anyway (node id, registrations), and so gets its own socket: the file system is
 * shared across network namespaces, a socket path is not per namespace.
 */
export function defaultApiSocket(env: NodeJS.ProcessEnv, stateDir = ''): string {
  if (stateDir && resolve(stateDir) !== resolve(defaultStateDir(env))) return join(resolve(stateDir), 'api.sock');
  return isSystem() ? SYSTEM_SOCKET : join(userRuntimeDir(env), 'api.sock');
}

/**
 * Where a client looks for the daemon: with a state dir (flag or PODMAN_SWARM_DNS_STATE_DIR), that
 * daemon's socket only; else its own default first, then the system daemon's.
 */
export function apiSocketCandidates(env: NodeJS.ProcessEnv, stateDir = env.PODMAN_SWARM_DNS_STATE_DIR ?? ''): string[] {
  if (stateDir) return [defaultApiSocket(env, stateDir)];
  return [...new Set([defaultApiSocket(env), SYSTEM_SOCKET])];
}

export function defaultApiListen(env: NodeJS.ProcessEnv, stateDir: string): ApiListen[] {
  return [{ kind: 'tcp', host: '127.0.0.1', port: 8080 }, { kind: 'unix', path: defaultApiSocket(env, stateDir) }];
}

export function defaultStateDir(env: NodeJS.ProcessEnv): string {
  if (isSystem()) return '/var/lib/podman-swarm-dns';
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'podman-swarm-dns');
}

export const defaultNodeName = (): string => hostname();

/** The first non-loopback, non-link-local address, IPv4 preferred, skipping `skipLinks`. */
export function defaultAdvertiseAddress(skipLinks: string[] = []): string {
  const candidates: Array<{ address: string; family: string }> = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (skipLinks.includes(name)) continue;
    for (const a of addrs ?? []) {
      if (a.internal || a.address.startsWith('fe80:') || a.address.startsWith('169.254.')) continue;
      candidates.push({ address: a.address, family: a.family });
    }
  }
  return (candidates.find((c) => c.family === 'IPv4') ?? candidates[0])?.address ?? '127.0.0.1';
}

/** Everything computed from the options at start: the defaults that depend on the host. */
export interface Runtime {
  nodeName: string;
  stateDir: string;
  advertise: string;
  /** The cluster DNS address (the 10th of --service-cidr). */
  dnsAddress: string;
  apiListen: ApiListen[];
  apiListenExplicit: boolean;
}

export function runtimeOf(o: Options, env: NodeJS.ProcessEnv): Runtime {
  const apiListenExplicit = o.apiListen.length > 0;
  const stateDir = o.stateDir || defaultStateDir(env);
  return {
    nodeName: o.nodeName || defaultNodeName(),
    stateDir,
    advertise: o.advertiseAddress || defaultAdvertiseAddress(o.link === 'none' ? [] : [o.link]),
    dnsAddress: addressAt(o.serviceCidr, 10),
    apiListen: apiListenExplicit ? o.apiListen : defaultApiListen(env, stateDir),
    apiListenExplicit,
  };
}
