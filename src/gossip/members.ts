import type { MemberInfo } from './codec.js';
import type { Member } from './membership.js';

/** Each shared learned list's prefix → id map, built once for all the tables that learned it. */
const learnedPrefixes = new WeakMap<ReadonlyMap<string, MemberInfo>, Map<string, string>>();

/**
 * A membership's member table: a Map's get, set, has, delete and values, plus members learned
 * from a trusted list that many tables share (the simulator's converged start, where every node
 * knows every other), each made this table's own Member when first looked at. N tables sharing
 * one list of N members then cost what each table looks at, not N² members up front.
 */
export class MemberTable {
  private readonly own = new Map<string, Member>();
  /** Tree and probe messages name a member by the first 16 hex digits of its id: prefix → id. */
  private readonly prefixes = new Map<string, string>();
  private learned: ReadonlyMap<string, MemberInfo> | null = null;
  /** Learned members removed from this table since. */
  private readonly gone = new Set<string>();
  private since = 0;

  /** Takes the alive members of `list` as known since `since`; the list is shared, never written. */
  learn(list: ReadonlyMap<string, MemberInfo>, since: number): void {
    this.learned = list;
    this.since = since;
    this.gone.clear();
  }

  get(id: string): Member | undefined {
    const m = this.own.get(id);
    return m !== undefined || this.learned === null ? m : this.adopt(id);
  }

  set(id: string, m: Member): void {
    this.own.set(id, m);
    this.prefixes.set(id.slice(0, 16), id);
  }

  /** The id of the member whose id starts with these 16 hex digits. */
  idOf(prefix: string): string | undefined {
    const id = this.prefixes.get(prefix);
    if (id !== undefined || this.learned === null) return id;
    let shared = learnedPrefixes.get(this.learned);
    if (!shared) {
      shared = new Map();
      for (const x of this.learned.keys()) shared.set(x.slice(0, 16), x);
      learnedPrefixes.set(this.learned, shared);
    }
    const learned = shared.get(prefix);
    return learned !== undefined && this.get(learned) ? learned : undefined;
  }

  has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  delete(id: string): boolean {
    const had = this.has(id);
    if (this.learned?.has(id)) this.gone.add(id);
    this.own.delete(id);
    if (this.prefixes.get(id.slice(0, 16)) === id) this.prefixes.delete(id.slice(0, 16));
    return had;
  }

  /** How many members (the learned ones made this table's own first). */
  get size(): number {
    this.values();
    return this.own.size;
  }

  /** Every member, the learned ones made this table's own first. */
  values(): IterableIterator<Member> {
    if (this.learned) {
      for (const id of this.learned.keys()) this.get(id);
      this.learned = null;
      this.gone.clear();
    }
    return this.own.values();
  }

  private adopt(id: string): Member | undefined {
    const x = this.gone.has(id) ? undefined : this.learned!.get(id);
    if (x?.state !== 'alive') return undefined;
    const m: Member = { id: x.id, name: x.name, addr: x.addr, inc: x.inc, state: 'alive', since: this.since, proof: x.proof };
    this.set(id, m);
    return m;
  }
}
