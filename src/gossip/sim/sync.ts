import { Decoder } from '@msgpack/msgpack';
import type { Registry } from '../../registry/registry.js';
import { deltaUpdate, isWholeAnswer, isWholeUpdate, proveDelta, RegistrySync, signState, trust, type DeltaSteps, type Proven, type Signed } from '../../sync/registry-sync.js';
import { decodeBody, sameBytes, type Delta } from '../../sync/delta.js';
import type { NodeState } from '../../registry/types.js';
import type { Delegate } from '../delegate.js';
import type { NodeIdentity } from '../identity.js';
import type { Membership } from '../membership.js';
import type { NodeStates } from './states.js';

// How a simulated host's sync layer plugs in: the membership sees only its gossip Delegate (the
// same interface the daemon uses), the simulator only the three calls below. Pointing the
// simulator at another sync implementation means writing one more SyncFactory.

export interface SimSync {
  /** What the membership is given: the layer's whole gossip side. */
  readonly delegate: Delegate;
  attach(membership: Membership): void;
  /**
   * Converged start: this host's current state is signed as its owner would and taken as proven
   * (trusted, not checked) wherever it is held; the simulation then puts it in every host's table.
   */
  seed(): void;
}

/** What the simulator counts across all hosts (the harness's view of the sync traffic). */
export interface SyncCounters {
  /** Whole node states that reached another host's sync: in an update packet, a fetch answer or a push-pull. */
  wholeStates: number;
  /** Updates a host's sync dropped as malformed, unsigned or out of bounds (none in a sound run). */
  refused: number;
}

export interface SyncContext {
  identity: NodeIdentity;
  states: NodeStates;
  now: () => number;
  counters: SyncCounters;
  /** The simulation's shared work (SharedWork); absent: each host does all of its own. */
  shared?: SharedWork;
}

export type SyncFactory = (ctx: SyncContext) => SimSync;

/**
 * SIMULATOR HOOK (shared work): every host of a simulation decodes the same delta bytes into the
 * same delta, makes of one held state object the same state and the same check of the owner's
 * signature, and encodes the same update to pass it on, so the first host's result serves the
 * others (the hosts share state objects: states.ts). A memo answers only for exactly the same inputs: the bytes and header fields, the
 * held object and the key. Each host still finds the delta's base, merges it and passes it on;
 * the daemon does every step for every delta (DELTA_STEPS). A simulation's CPU figure counts this
 * work once per delta, not once per host.
 */
export class SharedWork implements DeltaSteps {
  private readonly decoded = new Memo<string, ByBody<Delta | null>>();
  /** Keyed by the decoded delta (one object for all the hosts that decoded the same bytes). */
  private readonly proven = new Memo<Delta, { held: NodeState | undefined; body: Uint8Array; sig: Uint8Array; pub: Uint8Array; proven: Proven }>();
  /** Keyed by the proof (one object for all the hosts that proved the same delta). */
  private readonly updates = new Memo<Signed, ByBody<Uint8Array>>();
  private readonly ids = new Memo<string, string>();
  /** Steps done (misses) and served from a memo (hits). */
  readonly stats = { done: 0, shared: 0 };

  readonly decode: DeltaSteps['decode'] = (h, body) => this.byBody(this.decoded, `${h.id}/${h.version}/${h.base}`, body, () => decodeBody(h, body));

  readonly prove: DeltaSteps['prove'] = (held, d, body, sig, pub) => {
    const m = this.proven.get(d);
    if (m && m.held === held && sameBytes(m.sig, sig) && sameBytes(m.body, body) && sameBytes(m.pub, pub)) return this.hit(m.proven);
    this.stats.done++;
    const proven = proveDelta(held, d, body, sig, pub);
    this.proven.set(d, { held, body: new Uint8Array(body), sig: new Uint8Array(sig), pub, proven });
    return proven;
  };

  /** The same update bytes for every host that passes the same proven delta on (the tree keeps them ~10 s per host). */
  readonly update: DeltaSteps['update'] = (s, body) => this.byBody(this.updates, s, body, () => deltaUpdate(s, body));

  /**
   * One string for every copy of an update's name (Delegate.updateId): the broadcast tree of each
   * host that receives the update remembers it under its name for ~10 s. Only the string is shared.
   */
  id(name: string): string {
    const m = this.ids.get(name);
    if (m !== undefined) return m;
    this.ids.set(name, name);
    return name;
  }

  /** What `make` gives for `body` under `key`, made once while the same bytes come under that key. */
  private byBody<K, V>(memo: Memo<K, ByBody<V>>, key: K, body: Uint8Array, make: () => V): V {
    const m = memo.get(key);
    if (m && sameBytes(m.body, body)) return this.hit(m.value);
    this.stats.done++;
    const value = make();
    memo.set(key, { body: new Uint8Array(body), value });
    return value;
  }

  private hit<T>(v: T): T {
    this.stats.shared++;
    return v;
  }
}

/** A memo's entry: what was made of `body`. */
interface ByBody<V> {
  body: Uint8Array;
  value: V;
}

/** A bounded memo: the oldest entries go first (a delta is news for about a second). */
class Memo<K, V> extends Map<K, V> {
  constructor(private readonly max = 8192) {
    super();
  }

  override set(key: K, v: V): this {
    if (this.size >= this.max) this.delete(this.keys().next().value!);
    return super.set(key, v);
  }
}

const decoder = new Decoder();
function statesIn(b: Uint8Array | null, at: number): number {
  if (!b) return 0;
  const v = decoder.decode(b) as unknown[];
  return Array.isArray(v) && Array.isArray(v[at]) ? (v[at] as unknown[]).length : 0;
}

/** The daemon's registry sync (src/sync/registry-sync.ts): signed deltas, whole states in push-pull and repairs. */
export const deltaSync: SyncFactory = ({ identity, states, now, counters, shared }) => {
  // RegistrySync reads and writes only the NodeStates part of a Registry.
  const refused = (): void => void counters.refused++;
  const sync = new RegistrySync(states as unknown as Registry, now, { invalid: refused, rejected: refused }, { identity, steps: shared });
  // The same calls as the daemon's Cluster makes, with the counting around them.
  const delegate: Delegate = {
    notifyUpdate: (data, from) => {
      if (isWholeUpdate(data)) counters.wholeStates++;
      return sync.notifyUpdate(data, from);
    },
    updateId: (data) => {
      const id = sync.updateId(data);
      return id === null || !shared ? id : shared.id(id);
    },
    pushPullRequest: () => sync.pushPullRequest(),
    pushPullAnswer: (remote) => sync.pushPullAnswer(remote),
    pushPullFinish: (answer, join) => {
      const rest = sync.pushPullFinish(answer, join);
      counters.wholeStates += statesIn(rest, 1);
      return rest;
    },
    pushPullLast: (data) => {
      const reply = sync.pushPullLast(data);
      counters.wholeStates += statesIn(reply, 1);
      return reply;
    },
    pushPullDone: (reply) => sync.pushPullDone(reply),
    handleRequest: (data) => {
      const answer = sync.handleRequest(data);
      if (isWholeAnswer(answer)) counters.wholeStates++;
      return answer;
    },
    notifyMember: (m, prev) => sync.notifyMember(m, prev),
  };
  return {
    delegate,
    attach: (m) => sync.attach(m),
    seed: () => {
      const state = states.node(identity.id);
      if (state) trust(state, signState(identity, state));
    },
  };
};
