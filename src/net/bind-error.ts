import { portOwner } from './owner.js';

// A bind failure explained: what, why, and what to do about it (docs/architecture.md#where-it-listens).

export function explainBindError(err: NodeJS.ErrnoException, what: string, address: string, port: number, protocol: 'udp' | 'tcp', flag: string): string {
  switch (err.code) {
    case 'EADDRINUSE': {
      const owner = portOwner(port, protocol);
      return `cannot ${what} on ${address} (${protocol}): the address is already in use${owner ? ` by ${owner}` : ''}; stop that program or choose another address with ${flag}`;
    }
    case 'EACCES':
    case 'EPERM':
      return `cannot ${what} on ${address} (${protocol}): permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE — run as root, or choose another address with ${flag} (e.g. ${flag} 127.0.0.1:${port < 1024 ? 5353 : port})`;
    case 'EADDRNOTAVAIL':
      return `cannot ${what} on ${address} (${protocol}): no interface of this host has that address; add it, or choose another address with ${flag}`;
    default:
      return `cannot ${what} on ${address} (${protocol}): ${err.message}`;
  }
}
