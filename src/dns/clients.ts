import { CidrSet, parseCidr, type Cidr } from '../net/cidr.js';

// Who is asking: recursion is offered only to loopback, local Podman bridge subnets and
// `--allow-recursion` (never an open resolver); prefer-local ordering applies to queries from
// this host and its bridges.

const LOOPBACK = new CidrSet(['127.0.0.0/8', '::1/128'].map((c) => parseCidr(c)!));

export class ClientPolicy {
  private allow: CidrSet;
  private bridges = new CidrSet();

  constructor(allowRecursion: Cidr[]) {
    this.allow = new CidrSet(allowRecursion);
  }

  configure(allowRecursion: Cidr[]): void {
    this.allow = new CidrSet(allowRecursion);
  }

  /** Subnets of the local Podman bridges (fed by the Podman watcher). */
  setBridgeSubnets(subnets: Cidr[]): void {
    this.bridges = new CidrSet(subnets);
  }

  get bridgeSubnets(): readonly Cidr[] {
    return this.bridges.list;
  }

  recursionAllowed(ip: string): boolean {
    return this.allow.has(ip) || this.bridges.has(ip);
  }

  isLocal(ip: string): boolean {
    return LOOPBACK.has(ip) || this.bridges.has(ip);
  }
}
