import t from 'tap';
import { membersOf, withMember, withoutMember, type SmallSet } from '../../src/registry/small-set.js';

t.test('a small set holds what a Set would, whatever its size, added and removed in any order', async (t) => {
  let seed = 11;
  const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
  let s: SmallSet | undefined;
  const ref = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const x = `n${rand(24)}`;
    if (rand(3) === 0) {
      s = withoutMember(s, x);
      ref.delete(x);
    } else {
      s = withMember(s, x);
      ref.add(x);
    }
    if ([...membersOf(s)].sort().join() !== [...ref].sort().join()) return t.fail(`step ${i}: ${[...membersOf(s)]} vs ${[...ref]}`);
    if (ref.size === 0 && s !== undefined) return t.fail(`step ${i}: empty but ${String(s)}`);
  }
  t.pass('2,000 random steps over 24 members');
  t.equal(withMember(undefined, 'a'), 'a', 'one member: the string itself');
  t.same(withMember('a', 'b'), ['a', 'b']);
  t.equal(withoutMember(['a', 'b'], 'b'), 'a');
});
