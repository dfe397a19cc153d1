// A set of strings sized to what it holds: one member as the string itself, a few as an exact-size
// array (concat and slice allocate exactly; a spread or filter leaves room to grow, ~150 bytes more
// per set), more as a Set. The registry keeps one per service (the nodes with endpoints in it): at
// 10,000 services on a few nodes each, Sets of their own were ~2 MB.

export type SmallSet = string | readonly string[] | Set<string>;

/** Members kept in an array at most; more go to a Set (constant-time lookups for large ones). */
const ARRAY_MAX = 8;

/** `s` with `x` (a new value, or `s` changed in place when it is a Set). */
export function withMember(s: SmallSet | undefined, x: string): SmallSet {
  if (s === undefined) return x;
  if (typeof s === 'string') return s === x ? s : [s, x];
  if (s instanceof Set) return s.add(x);
  if (s.includes(x)) return s;
  return s.length < ARRAY_MAX ? s.concat(x) : new Set([...s, x]);
}

/** `s` without `x` (undefined: empty). */
export function withoutMember(s: SmallSet | undefined, x: string): SmallSet | undefined {
  if (s === undefined || s === x) return undefined;
  if (typeof s === 'string') return s;
  if (s instanceof Set) {
    s.delete(x);
    return s.size === 0 ? undefined : s;
  }
  const i = s.indexOf(x);
  if (i < 0) return s;
  return s.length === 2 ? s[1 - i]! : s.slice(0, i).concat(s.slice(i + 1));
}

export function membersOf(s: SmallSet | undefined): Iterable<string> {
  return s === undefined ? [] : typeof s === 'string' ? [s] : s;
}
