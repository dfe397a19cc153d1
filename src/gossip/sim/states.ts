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
  private readonly states = new Map<string, NodeState>();
  private readonly listeners = new Set<ChangeListener>();
  private index = 0;

  /** `shared`: node id → the latest state any host of the simulation merged. */
  constructor(
    readonly localNode: string,
    private readonly shared = new Map<string, NodeState>(),
  ) {}

  node(id: string): NodeState | undefined {
    return this.states.get(id);
  }

  nodes(): IterableIterator<NodeState> {
    return this.states.values();
  }

  apply(state: NodeState): boolean {
    const old = this.states.get(state.id);
    if (mergeState(old, state) === old) return false;
    const copy = this.shared.get(state.id);
    if (copy?.version === state.version && copy.incarnation === state.incarnation) state = copy;
    else if (!copy || copy.version < state.version) this.shared.set(state.id, state);
    this.states.set(state.id, state);
    this.emit(state.id);
    return true;
  }

  removeNode(id: string): boolean {
    if (!this.states.delete(id)) return false;
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
