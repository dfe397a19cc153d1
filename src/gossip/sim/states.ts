import { mergeState } from '../../registry/merge.js';
import type { Change, ChangeListener } from '../../registry/registry.js';
import type { NodeState } from '../../registry/types.js';

// What a node's sync layer needs of its registry: the per-node states, merged by the registry's
// own rule (merge.ts), and change events naming the nodes. The full Registry provides it; so does
// StateTable, which keeps only the states, without the DNS views built from them, so that a
// simulation of thousands of hosts with 50 endpoints each fits in memory. States are immutable,
// and the hosts of one simulation share them: each host's sync still decodes and checks what it
// receives, but the table keeps the first copy any host merged of a node's version (the owner
// signed those bytes, so every copy is the same), not one copy per host.

export interface NodeStates {
  readonly localNode: string;
  node(id: string): NodeState | undefined;
  nodes(): IterableIterator<NodeState>;
  apply(state: NodeState): boolean;
  removeNode(id: string): boolean;
  onChange(listener: ChangeListener): () => void;
}

export class StateTable implements NodeStates {
  /** The states this host merged itself; they hide the base's. */
  private readonly own = new Map<string, NodeState>();
  /** The converged start's states, shared by every host (never written); `gone`: removed here since. */
  private base: ReadonlyMap<string, NodeState> = new Map();
  private readonly gone = new Set<string>();
  private readonly listeners = new Set<ChangeListener>();
  private index = 0;

  /** `shared`: node id → the latest state any host of the simulation merged. */
  constructor(
    readonly localNode: string,
    private readonly shared = new Map<string, NodeState>(),
  ) {}

  /**
   * Converged start: this host holds `states` too (one map for all hosts, so the start costs each
   * host nothing per node). No change events: nothing listens before the start.
   */
  adopt(states: ReadonlyMap<string, NodeState>): void {
    this.base = states;
    this.gone.clear();
  }

  node(id: string): NodeState | undefined {
    return this.own.get(id) ?? (this.gone.has(id) ? undefined : this.base.get(id));
  }

  *nodes(): IterableIterator<NodeState> {
    yield* this.own.values();
    for (const [id, s] of this.base) if (!this.own.has(id) && !this.gone.has(id)) yield s;
  }

  apply(state: NodeState): boolean {
    const old = this.node(state.id);
    if (mergeState(old, state) === old) return false;
    const copy = this.shared.get(state.id);
    if (copy?.version === state.version && copy.incarnation === state.incarnation) state = copy;
    else if (!copy || copy.version < state.version) this.shared.set(state.id, state);
    this.own.set(state.id, state);
    this.emit(state.id);
    return true;
  }

  removeNode(id: string): boolean {
    if (!this.node(id)) return false;
    this.own.delete(id);
    if (this.base.has(id)) this.gone.add(id);
    this.emit(id);
    return true;
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(id: string): void {
    const change: Change = { index: ++this.index, services: [], nodes: [id] };
    for (const l of this.listeners) l(change);
  }
}
