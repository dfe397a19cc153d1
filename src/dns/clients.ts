import { CidrSet, parseCidr, type Cidr } from '../net/cidr.js';

// Who is asking: recursion is offered only to loopback, this host's own addresses, local Podman
// bridge subnets and `--allow-recursion` (never an open resolver); prefer-local ordering applies
// to queries from this host and its bridges. This host's own addresses (its links, the cluster DNS
// address, the gateways) also see the container names of every network: a program on the host
// with `nameserver 10.223.0.10` asks from 10.223.0.10. The kernel drops packets from outside that
// claim a local source address, so these cannot be spoofed from elsewhere.

const LOOPBACK = new CidrSet(['127.0.0.0/8', '::1/128'].map((c) => parseCidr(c)!));

/** Client classes; the native answer table has the same (src/native/table.ts CLIENT_*). */
export const RECURSION = 1;
export const LOCAL = 2;
export const HOST = 4;
/** Distinct client addresses remembered; beyond that the memo starts over. */
const MEMO_SIZE = 4096;

export class ClientPolicy {
  private allow: CidrSet;
  /** The `--allow-recursion` ranges (the native answer table classifies clients itself). */
  recursionCidrs: readonly Cidr[];
  /** Called after the ranges change (the native table then rebuilds). */
  onChange: () => void = () => undefined;
  private bridges = new CidrSet();
  private host = new CidrSet();
  private hostIps = new Set<string>();
  /** Host addresses seen missing once by a pruning call (the next one drops them). */
  private missing = new Set<string>();
  /** Address → flags: the same few clients ask again and again, CIDR matching is not free. */
  private memo = new Map<string, number>();

  constructor(allowRecursion: Cidr[]) {
    this.recursionCidrs = allowRecursion;
    this.allow = new CidrSet(allowRecursion);
  }

  configure(allowRecursion: Cidr[]): void {
    if (sameCidrs(allowRecursion, this.recursionCidrs)) return;
    this.recursionCidrs = allowRecursion;
    this.allow = new CidrSet(allowRecursion);
    this.memo.clear();
    this.onChange();
  }

  /** Subnets of the local Podman bridges (fed by the Podman watcher). */
  setBridgeSubnets(subnets: Cidr[]): void {
    if (sameCidrs(subnets, this.bridges.list)) return;
    this.bridges = new CidrSet(subnets);
    this.memo.clear();
    this.onChange();
  }

  get bridgeSubnets(): readonly Cidr[] {
    return this.bridges.list;
  }

  /**
   * This host's own addresses. New ones count at once; one that is gone counts until it has been
   * missing from two calls with `prune` (the periodic re-read), so a bridge that Podman takes
   * down with its last container does not cost a second table update right after that
   * container's own. A call that changes nothing changes nothing (no table rebuild).
   */
  setHostAddresses(ips: Iterable<string>, prune = false): void {
    const seen = new Set(ips);
    const next = new Set(seen);
    const missing = new Set<string>();
    for (const ip of this.hostIps) {
      if (seen.has(ip)) continue;
      // Gone from this read: kept, unless a pruning read had already missed it.
      const missedBefore = this.missing.has(ip);
      if (prune && missedBefore) continue;
      next.add(ip);
      if (prune || missedBefore) missing.add(ip);
    }
    this.missing = missing;
    if (next.size === this.hostIps.size && [...next].every((ip) => this.hostIps.has(ip))) return;
    this.hostIps = next;
    this.host = new CidrSet([...next].map((ip) => parseCidr(ip.includes(':') ? `${ip}/128` : `${ip}/32`)).filter((c) => c !== null));
    this.memo.clear();
    this.onChange();
  }

  get hostAddresses(): readonly Cidr[] {
    return this.host.list;
  }

  /** The query comes from one of this host's own addresses. */
  isHost(ip: string): boolean {
    return (this.flags(ip) & HOST) !== 0;
  }

  recursionAllowed(ip: string): boolean {
    return (this.flags(ip) & RECURSION) !== 0;
  }

  isLocal(ip: string): boolean {
    return (this.flags(ip) & LOCAL) !== 0;
  }

  private flags(ip: string): number {
    let f = this.memo.get(ip);
    if (f === undefined) {
      const bridge = this.bridges.has(ip);
      const host = this.host.has(ip);
      f = (this.allow.has(ip) || bridge || host ? RECURSION : 0) | (LOOPBACK.has(ip) || bridge || host ? LOCAL : 0) | (host ? HOST : 0);
      if (this.memo.size >= MEMO_SIZE) this.memo.clear();
      this.memo.set(ip, f);
    }
    return f;
  }
}

const sameCidrs = (a: readonly Cidr[], b: readonly Cidr[]): boolean => a.length === b.length && a.every((c, i) => c.text === b[i]!.text);
