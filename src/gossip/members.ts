import type { MemberInfo } from './codec.js';
import type { Member } from './membership.js';

/**
 * What the tables that learned one list share: its prefix → id map, and its alive members as
 * frozen Members to read (peek), each made when first read. Built once for all those tables.
 */
interface Learned {
  /** The ids of the list's alive members. */
  alive: readonly string[];
  prefixes: Map<string, string> | null;
  /** Whether an id in the list is 16 characters long (then a 16-hex name may be an id, not a prefix). */
  sixteen: boolean;
  since: number;
  members: Map<string, Readonly<Member>>;
}
const shared = new WeakMap<ReadonlyMap<string, MemberInfo>, Learned>();

/** Names kept by peerName at most (then it starts over). */
const MAX_NAMES = 1 << 16;
const names = new Map<string, string>();

/**
 * One string for each peer name (a member's 16-hex prefix, as tree messages name it), for every
 * membership of the process: the broadcast tree keeps several per update it remembers (who holds
 * it), and each decoded message brings a new copy.
 */
export function peerName(name: string): string {
  const n = names.get(name);
  if (n !== undefined) return n;
  if (names.size >= MAX_NAMES) names.clear();
  names.set(name, name);
  return name;
}

/**
 * A membership's member table: a Map's get, set, has, delete and values, plus members learned
 * from a trusted list that many tables share (the simulator's converged start, where every node
 * knows every other), each made this table's own Member when first looked at to change it (get);
 * reading one (peek, values) costs the table nothing. N tables sharing one list of N members then
 * cost what each table changes, not N² members up front nor one per member it reads of.
 *
 * The members are listed as a Map would list them had every learned member been made the table's
 * own in the order first looked at, and the rest at the first listing: the members made its own
 * before that listing (`head`), then the learned list's, then those added since (`later`).
 */
export class MemberTable {
  private readonly own = new Map<string, Member>();
  /** Tree and probe messages name a member by the first 16 hex digits of its id: prefix → id. */
  private readonly prefixes = new Map<string, string>();
  private learned: ReadonlyMap<string, MemberInfo> | null = null;
  private shared: Learned | null = null;
  /** Learned (or, once listed, head) members removed from this table since: their place in the list is gone. */
  private readonly gone = new Set<string>();
  private since = 0;
  /** Set at the first listing after learning: the members the table had made its own by then, in order. */
  private head: Set<string> | null = null;
  /** Members added after that listing that have no place in head or the learned list. */
  private readonly later = new Set<string>();
  /** Whether an id of 16 characters was ever set here (see Learned.sixteen). */
  private sixteen = false;

  /** Takes the alive members of `list` as known since `since`; the list is shared, never written. Returns their ids (shared too). */
  learn(list: ReadonlyMap<string, MemberInfo>, since: number): readonly string[] {
    this.learned = list;
    this.since = since;
    this.gone.clear();
    this.head = null;
    this.later.clear();
    let s = shared.get(list);
    if (!s || s.since !== since) {
      const alive = s?.alive ?? [...list.values()].filter((x) => x.state === 'alive').map((x) => x.id);
      const sixteen = s?.sixteen ?? [...list.keys()].some((id) => id.length === 16);
      shared.set(list, (s = { alive, prefixes: s?.prefixes ?? null, sixteen, since, members: new Map() }));
    }
    this.shared = s;
    return s.alive;
  }

  /** Member `id`, this table's own from now on (to change it). */
  get(id: string): Member | undefined {
    const m = this.own.get(id);
    return m !== undefined || this.learned === null ? m : this.adopt(id);
  }

  /** Member `id` to read, not to change: a learned one not made this table's own yet is the frozen copy the tables share. */
  peek(id: string): Readonly<Member> | undefined {
    const m = this.own.get(id);
    if (m !== undefined || this.learned === null) return m;
    const x = this.gone.has(id) ? undefined : this.learned.get(id);
    if (x?.state !== 'alive') return undefined;
    const members = this.shared!.members;
    let p = members.get(id);
    if (!p) members.set(id, (p = Object.freeze(this.member(x))));
    return p;
  }

  set(id: string, m: Member): void {
    if (this.head && !this.placed(id)) {
      this.later.delete(id);
      this.later.add(id);
    }
    this.own.set(id, m);
    this.prefixes.set(id.slice(0, 16), id);
    if (id.length === 16) this.sixteen = true;
  }

  /** The id of the member whose id starts with these 16 hex digits. */
  idOf(prefix: string): string | undefined {
    const id = this.prefixes.get(prefix);
    if (id !== undefined || this.learned === null) return id;
    const learned = this.learnedPrefixes().get(prefix);
    return learned !== undefined && this.peek(learned) ? learned : undefined;
  }

  /** The learned list's prefix → id map (made at the first look-up, for every table that learned the list). */
  private learnedPrefixes(): Map<string, string> {
    const s = this.shared!;
    if (!s.prefixes) {
      s.prefixes = new Map();
      for (const x of this.learned!.keys()) s.prefixes.set(x.slice(0, 16), x);
    }
    return s.prefixes;
  }

  /** The id of the member `name` stands for: its id, or the first 16 hex digits of it. */
  resolve(name: string): string | undefined {
    return this.mayBeId(name) && this.peek(name) ? name : this.idOf(name);
  }

  /** Whether `name` may be a member's id: while no id is 16 characters long (derived ids have 32 hex digits), a 16-character name is a prefix. */
  private mayBeId(name: string): boolean {
    return name.length !== 16 || this.sixteen || this.shared?.sixteen === true;
  }

  /** The member `name` stands for (resolve), to read: peek(resolve(name)) without looking it up twice. */
  named(name: string): Readonly<Member> | undefined {
    if (this.mayBeId(name)) {
      const m = this.peek(name);
      if (m !== undefined) return m;
    }
    const id = this.prefixes.get(name);
    if (id !== undefined || this.learned === null) return id === undefined ? undefined : this.peek(id);
    const learned = this.learnedPrefixes().get(name);
    return learned === undefined ? undefined : this.peek(learned);
  }

  has(id: string): boolean {
    return this.peek(id) !== undefined;
  }

  delete(id: string): boolean {
    const had = this.has(id);
    if (this.learned?.has(id) || this.head?.has(id)) this.gone.add(id);
    this.later.delete(id);
    this.own.delete(id);
    if (this.prefixes.get(id.slice(0, 16)) === id) this.prefixes.delete(id.slice(0, 16));
    return had;
  }

  /** How many members. */
  get size(): number {
    if (this.learned === null) return this.own.size;
    let n = 0;
    for (const _ of this.values()) n++;
    return n;
  }

  /** Every member, to read (see the class comment for the order). */
  *values(): IterableIterator<Readonly<Member>> {
    if (this.learned === null) return yield* this.own.values();
    if (!this.head) this.head = new Set(this.own.keys());
    for (const id of this.head) {
      const m = this.gone.has(id) ? undefined : this.own.get(id);
      if (m) yield m;
    }
    for (const id of this.learned.keys()) {
      if (this.head.has(id)) continue;
      const m = this.gone.has(id) ? undefined : this.peek(id);
      if (m) yield m;
    }
    for (const id of this.later) yield this.own.get(id)!;
  }

  /** Whether member `id` has its place in the list at the first listing (head or learned) still. */
  private placed(id: string): boolean {
    return (this.head!.has(id) || this.learned!.has(id)) && !this.gone.has(id);
  }

  private member(x: MemberInfo): Member {
    return { id: x.id, name: x.name, addr: x.addr, inc: x.inc, state: 'alive', since: this.since, proof: x.proof };
  }

  private adopt(id: string): Member | undefined {
    const x = this.gone.has(id) ? undefined : this.learned!.get(id);
    if (x?.state !== 'alive') return undefined;
    const m = this.member(x);
    this.set(id, m);
    return m;
  }
}
