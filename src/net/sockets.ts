import { closeSync, fstatSync } from 'node:fs';
import type { Server } from 'node:net';
import type { Socket as UdpSocket } from 'node:dgram';

// Listening sockets that may come from an earlier process and may outlive this one (systemd's
// descriptor store, src/systemd/fd-store.ts). The servers ask for a socket by name before they
// bind a new one, and hand every socket they bind over to be kept.

export interface SocketStore {
  /** Descriptors kept under `name` by an earlier process (removed from the store's pool). */
  take(name: string): number[];
  /** Keeps `fds` under `name` for the next process. */
  keep(name: string, fds: number[]): void;
  /** The socket under `name` is closed for good (not for a restart): the store lets it go too. */
  forget(name: string): void;
}

export const NO_SOCKET_STORE: SocketStore = { take: () => [], keep: () => undefined, forget: () => undefined };

export type SocketKind = 'dns-udp' | 'dns-tcp' | 'api' | 'lb-tcp' | 'lb-udp';

/** A descriptor name: no ':' (systemd's separator in LISTEN_FDNAMES), at most 255 characters. */
export const socketName = (kind: SocketKind, host: string, port: number): string => `${kind}/${host.replace(/:/g, '_')}/${port}`;

/** The descriptor of a listening TCP server, if Node has one (it does on Linux). */
export function serverFd(server: Server): number | undefined {
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * The descriptor of a bound UDP socket. Node keeps the handle under a symbol (its `_handle`
 * getter is deprecated and warns); undefined when it is not found.
 */
export function udpFd(sock: UdpSocket): number | undefined {
  const sym = Object.getOwnPropertySymbols(sock).find((s) => s.description === 'state symbol');
  const fd = sym ? (sock as unknown as Record<symbol, { handle?: { fd?: number } }>)[sym]?.handle?.fd : undefined;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Closes descriptors this process holds (stored ones nobody serves); one already closed is skipped. */
export function closeFds(fds: number[]): void {
  for (const fd of fds) {
    try {
      fstatSync(fd);
      closeSync(fd);
    } catch {
      /* not open: nothing to close */
    }
  }
}

/**
 * Why a socket Node serves is not the one asked for (its address and port as Node reads them),
 * or null when it is. Port 0 accepts any port.
 */
export function addressMismatch(got: { address: string; port: number } | string | null, host: string, port: number): string | null {
  if (!got || typeof got === 'string') return 'not an IP socket';
  return got.address === host && (port === 0 || got.port === port) ? null : `bound to ${got.address}:${got.port}`;
}
