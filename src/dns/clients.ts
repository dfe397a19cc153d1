import { CidrSet, parseCidr, type Cidr } from '../net/cidr.js';

// Who is asking: recursion is offered only to loopback, local Podman bridge subnets and
// `--allow-recursion` (never an open resolver); prefer-local ordering applies to queries from
// this host and its bridges.

const LOOPBACK = new CidrSet(['127.0.0.0/8', '::1/128'].map((c) => parseCidr(c)!));

const RECURSION = 1;
const LOCAL = 2;
/** Distinct client addresses remembered; beyond that the memo starts over. */
const MEMO_SIZE = 4096;

export class ClientPolicy {
  private allow: CidrSet;
  /** The `--allow-recursion` ranges (the native answer table classifies clients itself). */
  recursionCidrs: readonly Cidr[];
  /** Called after the ranges change (the native table then rebuilds). */
  onChange: () => void = () => undefined;
  private bridges = new CidrSet();
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
      f = (this.allow.has(ip) || bridge ? RECURSION : 0) | (LOOPBACK.has(ip) || bridge ? LOCAL : 0);
      if (this.memo.size >= MEMO_SIZE) this.memo.clear();
      this.memo.set(ip, f);
    }
    return f;
  }
}

const sameCidrs = (a: readonly Cidr[], b: readonly Cidr[]): boolean => a.length === b.length && a.every((c, i) => c.text === b[i]!.text);
