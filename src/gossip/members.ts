import type { MemberInfo } from './codec.js';
import type { Member } from './membership.js';

/**
 * A membership's member table: a Map, plus members learned from a trusted list that many tables
 * share (the simulator's converged start, where every node knows every other), each made this
 * table's own Member when first looked at. N tables sharing one list of N members then cost what
 * each table looks at, not N² members up front. Without a learned list it is a plain Map. (The
 * membership uses get, set, has, delete and values; the other Map methods see only own members.)
 */
export class MemberTable extends Map<string, Member> {
  private learned: ReadonlyMap<string, MemberInfo> = new Map();
  /** Learned members removed from this table since. */
  private readonly gone = new Set<string>();
  private since = 0;

  /** Takes the alive members of `list` as known since `since`; the list is shared, never written. */
  learn(list: ReadonlyMap<string, MemberInfo>, since: number): void {
    this.learned = list;
    this.since = since;
    this.gone.clear();
  }

  override get(id: string): Member | undefined {
    const m = super.get(id);
    if (m !== undefined || this.learned.size === 0 || this.gone.has(id)) return m;
    const x = this.learned.get(id);
    if (x?.state !== 'alive') return undefined;
    const own: Member = { id: x.id, name: x.name, addr: x.addr, inc: x.inc, state: 'alive', since: this.since, proof: x.proof };
    super.set(id, own);
    return own;
  }

  override has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  override delete(id: string): boolean {
    const had = this.has(id);
    if (this.learned.has(id)) this.gone.add(id);
    return super.delete(id) || had;
  }

  /** Every member, the learned ones made this table's own first. */
  override values(): MapIterator<Member> {
    if (this.learned.size) {
      for (const id of this.learned.keys()) this.get(id);
      this.learned = new Map();
      this.gone.clear();
    }
    return super.values();
  }
}
