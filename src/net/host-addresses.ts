import { networkInterfaces } from 'node:os';

// This host's own addresses, as the kernel has them now: every link's (the daemon's own link with
// the cluster DNS address, the Podman bridges with their gateways, the uplinks, loopback).

export function hostAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}

/** Calls `set` now and every `intervalMs` (links and addresses come and go); returns the stop. */
export function followHostAddresses(set: (ips: string[], prune: boolean) => void, intervalMs: number): () => void {
  set(hostAddresses(), true);
  const timer = setInterval(() => set(hostAddresses(), true), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
