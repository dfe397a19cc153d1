import { canonicalIp } from '../net/cidr.js';
import { mergeState } from './merge.js';
import { buildService, isDirect, type ServiceView, type ViewEndpoint, type ViewOptions } from './view.js';
import { sameEndpoint } from './equal.js';
import { membersOf, withMember, withoutMember, type SmallSet } from './small-set.js';
import { compareEndpoints, hasRun, inKeyOrder, serviceRun, stepBetween } from './steps.js';
import { endpointKey, serviceKey, type Endpoint, type NodeState } from './types.js';

// The pure core: the merged per-node states and the views derived from them. No sockets, no
// timers, no files. Sources (local node, gossip) push states in; DNS, API and LB read views and
// subscribe to changes. A change rebuilds only the services whose endpoints it touched.

export interface ReverseEntry {
  service: string;
  /** Endpoint hostname, or undefined for a service VIP. */
  hostname?: string;
}

export interface Change {
  index: number;
  /** Keys (`ns/svc`) of services whose view changed, including removed ones. */
  services: string[];
  /** Node ids whose state changed or went away. */
  nodes: string[];
  /**
   * Addresses (as the endpoints and VIPs spell them) whose reverse entries (PTR) were dropped or
   * added: every address, old and new, of the services rebuilt and of the VIPs moved.
   */
  addresses?: string[];
}

export type ChangeListener = (change: Change) => void;

/**
 * Gives services their VIPs (docs/architecture.md#load-balancer, the load balancer supplies it): which services get one, and
 * the allocation as a pure function of the set of their keys, so every host agrees.
 */
export interface VipAssigner {
  wants(view: ServiceView): boolean;
  allocate(keys: string[]): Map<string, string>;
}

/** What answers for an address: an endpoint of a view (its hostname) or a view (its VIP). */
type ReverseTarget = ViewEndpoint | ServiceView;

export class Registry {
  private readonly states = new Map<string, NodeState>();
  /**
   * The endpoints of the states that are not in key order (a peer's, not made by this version),
   * sorted. A node's endpoints of one service are then one run of its sorted list, found by
   * binary search (no list per node and service: at 50,000 endpoints over 100 hosts those were
   * ~5 MB).
   */
  private readonly sorted = new Map<string, Endpoint[]>();
  /** service key → ids of nodes that have endpoints in it. */
  private readonly serviceNodes = new Map<string, SmallSet>();
  private readonly views = new Map<string, ServiceView>();
  /**
   * Address → what answers for it: the view endpoints and views themselves, not entries made for
   * it; most addresses have one, kept without a list.
   */
  private readonly reverse = new Map<string, ReverseTarget | ReverseTarget[]>();
  /**
   * Whose reverse entries moved since the last change was emitted: a view (its direct endpoints'
   * addresses) or a VIP. Spelled out only when a listener reads the change's addresses (the state
   * file's 50,000 addresses at start are read by none).
   */
  private moved: Array<ServiceView | string> = [];
  private readonly namespaceCount = new Map<string, number>();
  private readonly listeners = new Set<ChangeListener>();
  private _index = 0;
  private _endpointCount = 0;
  private vipAssigner: VipAssigner | null = null;
  private vipKeys = new Set<string>();
  private vips = new Map<string, string>();

  constructor(private opts: ViewOptions) {}

  /** Bumped on every change that alters a state; blocking API queries wait on it. */
  get index(): number {
    return this._index;
  }

  get localNode(): string {
    return this.opts.localNode;
  }

  get endpointCount(): number {
    return this._endpointCount;
  }

  get serviceCount(): number {
    return this.views.size;
  }

  nodes(): IterableIterator<NodeState> {
    return this.states.values();
  }

  node(id: string): NodeState | undefined {
    return this.states.get(id);
  }

  services(): IterableIterator<ServiceView> {
    return this.views.values();
  }

  service(namespace: string, name: string): ServiceView | undefined {
    return this.views.get(serviceKey(namespace, name));
  }

  hasNamespace(namespace: string): boolean {
    return this.namespaceCount.has(namespace);
  }

  /** Services and endpoint hostnames whose answered address is `ip` (PTR). */
  lookupAddress(ip: string): readonly ReverseEntry[] {
    const had = this.reverse.get(canonicalIp(ip));
    if (had === undefined) return [];
    const entry = (t: ReverseTarget): ReverseEntry =>
      'endpoint' in t ? { service: serviceKey(t.endpoint.namespace, t.endpoint.service), hostname: t.endpoint.hostname } : { service: t.key };
    return Array.isArray(had) ? had.map(entry) : [entry(had)];
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Merges a node's state; returns true when it replaced what was known. */
  apply(state: NodeState): boolean {
    return this.applyAll([state]).length > 0;
  }

  /**
   * Merges many node states as one change (the state file at start): each service they touch is
   * rebuilt once, not once per node that has endpoints in it. Returns the ids of the states that
   * replaced what was known.
   */
  applyAll(states: Iterable<NodeState>): string[] {
    const touched = new Set<string>();
    const ids: string[] = [];
    for (const state of states) {
      const old = this.states.get(state.id);
      const winner = mergeState(old, state);
      if (winner === old) continue;
      this.states.set(state.id, winner);
      for (const key of this.indexNode(state.id, old, winner)) touched.add(key);
      ids.push(state.id);
    }
    if (ids.length) this.rebuildAll(touched, ids);
    return ids;
  }

  /** Drops a node (dead or left): its endpoints leave every view at once. */
  removeNode(id: string): boolean {
    const old = this.states.get(id);
    if (!old) return false;
    this.states.delete(id);
    this.rebuildAll(this.indexNode(id, old, undefined), [id]);
    return true;
  }

  private rebuildAll(touched: Set<string>, nodes: string[]): void {
    for (const key of touched) this.rebuild(key);
    this.emit(this.refreshVips([...touched]), nodes);
  }

  /** Installs (or replaces) the VIP allocation; every view is re-evaluated. */
  setVipAssigner(assigner: VipAssigner | null): void {
    this.vipAssigner = assigner;
    this.vipKeys = new Set();
    this.emit(this.refreshVips([...this.views.keys()], true), []);
  }

  /** Changes how views are computed (reload); rebuilds every view. */
  setOptions(opts: ViewOptions): void {
    this.opts = opts;
    const keys = [...this.serviceNodes.keys()];
    for (const key of keys) this.rebuild(key);
    this.emit(this.refreshVips(keys), []);
  }

  /** A node's endpoints in key order. */
  private endpointsOf(nodeId: string): readonly Endpoint[] {
    return this.sorted.get(nodeId) ?? this.states.get(nodeId)?.endpoints ?? [];
  }

  /** Indexes a node's new state (`next`, or none); returns the keys of the services whose views it changes. */
  private indexNode(nodeId: string, old: NodeState | undefined, next: NodeState | undefined): Set<string> {
    // A node's name or address feeds every one of its endpoints' views; a node that had none (the
    // local node's first fill at start) touches all of its services.
    const whole = !old || !next || old.endpoints.length === 0 || old.name !== next.name || old.address !== next.address;
    // When the state was made from the old one by a recorded step (a local write, a delta), the
    // step names the services it touched, each found in the sorted list by binary search.
    const step = whole || this.sorted.has(nodeId) ? undefined : stepBetween(old, next);
    const touched = whole ? servicesOf(old?.endpoints ?? []) : step ? new Set(step.services) : changedServices(old.endpoints, next.endpoints);
    const nextEndpoints = next?.endpoints ?? [];
    if (whole) for (const key of servicesOf(nextEndpoints)) touched.add(key);
    this._endpointCount += nextEndpoints.length - (old?.endpoints.length ?? 0);

    // A step keeps the order; anything else is checked.
    this.sorted.delete(nodeId);
    if (!step && !inKeyOrder(nextEndpoints)) this.sorted.set(nodeId, nextEndpoints.slice().sort(compareEndpoints));
    const after = this.endpointsOf(nodeId);
    for (const key of touched) {
      const slash = key.indexOf('/');
      // (A node new to the registry has every service it touches: they are its own.)
      const has = next !== undefined && (old === undefined || hasRun(after, key.slice(0, slash), key.slice(slash + 1)));
      const nodes = this.serviceNodes.get(key);
      const now = has ? withMember(nodes, nodeId) : withoutMember(nodes, nodeId);
      if (now === nodes) continue;
      if (now === undefined) this.serviceNodes.delete(key);
      else this.serviceNodes.set(key, now);
    }
    return touched;
  }

  private rebuild(key: string): void {
    const old = this.views.get(key);
    if (old) {
      this.dropReverse(old);
      this.countNamespace(old.namespace, -1);
      this.views.delete(key);
    }
    const nodes = this.serviceNodes.get(key);
    if (nodes === undefined) return;
    const slash = key.indexOf('/');
    const [ns, svc] = [key.slice(0, slash), key.slice(slash + 1)];
    const members: Array<{ endpoint: Endpoint; owner: NodeState }> = [];
    for (const nodeId of membersOf(nodes)) {
      const owner = this.states.get(nodeId)!;
      for (const endpoint of serviceRun(this.endpointsOf(nodeId), ns, svc)) members.push({ endpoint, owner });
    }
    const first = members[0]?.endpoint;
    if (!first) return;
    const view = buildService(key, first.namespace, first.service, members, this.opts);
    const vip = this.vips.get(key);
    if (vip !== undefined && this.vipAssigner?.wants(view)) view.vip = vip;
    this.views.set(key, view);
    this.countNamespace(view.namespace, 1);
    this.addReverse(view);
  }

  /**
   * After `touched` views were rebuilt: when the set of services wanting a VIP changed, allocate
   * again and update every view whose VIP moved. Returns `touched` plus those views' keys.
   */
  private refreshVips(touched: string[], force = false): string[] {
    const a = this.vipAssigner;
    let changed = force;
    for (const key of touched) {
      const v = this.views.get(key);
      const wants = v !== undefined && a !== null && a.wants(v);
      if (wants !== this.vipKeys.has(key)) {
        changed = true;
        if (wants) this.vipKeys.add(key);
        else this.vipKeys.delete(key);
      }
    }
    if (!changed) return touched;
    if (force && a) for (const v of this.views.values()) if (a.wants(v)) this.vipKeys.add(v.key);
    this.vips = a ? a.allocate([...this.vipKeys]) : new Map();
    const out = new Set(touched);
    for (const v of this.views.values()) {
      const vip = this.vipKeys.has(v.key) ? this.vips.get(v.key) : undefined;
      if (v.vip === vip) continue;
      this.dropReverse(v);
      if (vip === undefined) delete v.vip;
      else v.vip = vip;
      this.addReverse(v);
      out.add(v.key);
    }
    return [...out];
  }

  private addReverse(view: ServiceView): void {
    this.movedReverse(view);
    forReverse(view, (address, target) => {
      const ip = canonicalIp(address);
      const had = this.reverse.get(ip);
      if (had === undefined) this.reverse.set(ip, target);
      else if (Array.isArray(had)) had.push(target);
      else this.reverse.set(ip, [had, target]);
    });
  }

  /** Undoes addReverse(view) (a view is not changed once indexed, but for its VIP, dropped first). */
  private dropReverse(view: ServiceView): void {
    const other = (t: ReverseTarget): boolean => ('endpoint' in t ? t.endpoint.namespace !== view.namespace || t.endpoint.service !== view.name : t !== view);
    this.movedReverse(view);
    forReverse(view, (address) => {
      const ip = canonicalIp(address);
      const had = this.reverse.get(ip);
      if (had === undefined) return;
      const rest = Array.isArray(had) ? had.filter(other) : other(had) ? [had] : [];
      if (rest.length > 1) this.reverse.set(ip, rest);
      else if (rest.length === 1) this.reverse.set(ip, rest[0]!);
      else this.reverse.delete(ip);
    });
  }

  /** Records that `view`'s reverse entries, and its VIP's as it is now, move. */
  private movedReverse(view: ServiceView): void {
    this.moved.push(view);
    if (view.vip) this.moved.push(view.vip);
  }

  private countNamespace(ns: string, delta: number): void {
    const n = (this.namespaceCount.get(ns) ?? 0) + delta;
    if (n > 0) this.namespaceCount.set(ns, n);
    else this.namespaceCount.delete(ns);
  }

  private emit(services: string[], nodes: string[]): void {
    this._index++;
    const moved = this.moved;
    this.moved = [];
    let addresses: string[] | undefined;
    const change: Change = {
      index: this._index,
      services,
      nodes,
      get addresses(): string[] {
        return (addresses ??= movedAddresses(moved));
      },
    };
    for (const l of this.listeners) l(change);
  }
}

/** The addresses a view answers PTR for, each with what answers: its direct endpoints' and its VIP. */
function forReverse(view: ServiceView, fn: (address: string, target: ReverseTarget) => void): void {
  forDirect(view, fn);
  if (view.vip) fn(view.vip, view);
}

/** The addresses of a view's direct endpoints (those answered with their own addresses). */
function forDirect(view: ServiceView, fn: (address: string, target: ViewEndpoint) => void): void {
  for (const e of view.endpoints) {
    if (!isDirect(e)) continue;
    for (const ip of e.reach.addresses) fn(ip, e);
  }
}

/** The addresses `moved` stands for, each once, in order. */
function movedAddresses(moved: Array<ServiceView | string>): string[] {
  const out = new Set<string>();
  for (const m of moved) {
    if (typeof m === 'string') out.add(m);
    else forDirect(m, (ip) => out.add(ip));
  }
  return [...out];
}

/** Keys of the services a list has endpoints in (one key per run when it is sorted). */
function servicesOf(endpoints: readonly Endpoint[]): Set<string> {
  const out = new Set<string>();
  let last: Endpoint | undefined;
  for (const e of endpoints) {
    if (last === undefined || last.namespace !== e.namespace || last.service !== e.service) out.add(serviceKey(e.namespace, e.service));
    last = e;
  }
  return out;
}

/**
 * Keys of the services whose endpoints differ between two states of one node. Endpoints kept as
 * the same objects (the local node keeps unchanged ones) cost a pointer comparison or a set
 * lookup; only the others are compared by content (lastSeen aside).
 */
function changedServices(allBefore: Endpoint[], allAfter: Endpoint[]): Set<string> {
  // The same objects at the same places at both ends (the local node keeps its order): skipped
  // with a pointer comparison each; the sets below hold only the part in between.
  let start = 0;
  let endB = allBefore.length;
  let endA = allAfter.length;
  while (start < endB && start < endA && allBefore[start] === allAfter[start]) start++;
  while (endB > start && endA > start && allBefore[endB - 1] === allAfter[endA - 1]) {
    endB--;
    endA--;
  }
  const before = allBefore.slice(start, endB);
  const after = allAfter.slice(start, endA);
  const touched = new Set<string>();
  const kept = new Set(before);
  const now = new Set(after);
  const gone = new Map<string, Endpoint>();
  for (const ep of before) if (!now.has(ep)) gone.set(endpointKey(ep), ep);
  for (const ep of after) {
    if (kept.has(ep)) continue;
    const key = endpointKey(ep);
    const prev = gone.get(key);
    gone.delete(key);
    if (!prev || !sameEndpoint(prev, ep)) touched.add(serviceKey(ep.namespace, ep.service));
  }
  for (const ep of gone.values()) touched.add(serviceKey(ep.namespace, ep.service));
  return touched;
}
