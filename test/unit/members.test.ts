import t from 'tap';
import type { MemberInfo } from '../../src/gossip/codec.js';
import { MemberTable } from '../../src/gossip/members.js';
import type { Member } from '../../src/gossip/membership.js';

// Tree and probe messages name a member by the first 16 hex digits of its id (codec.ts senderOut);
// an id of exactly 16 characters is named by itself, and must not be taken for another's prefix.

const LONG = '0123456789abcdef0011223344556677';
const SHORT = LONG.slice(0, 16);
const member = (id: string): Member => ({ id, name: `h-${id}`, addr: `${id}:7946`, inc: 0, state: 'alive', since: 0 });
const info = (id: string): MemberInfo => ({ id, name: `h-${id}`, addr: `${id}:7946`, inc: 0, state: 'alive' });

t.test('a 16-hex name resolves to the member whose id it begins', async (t) => {
  const tab = new MemberTable();
  tab.set(LONG, member(LONG));
  t.equal(tab.resolve(SHORT), LONG);
  t.equal(tab.resolve(LONG), LONG, 'a whole id names its member');
  t.equal(tab.resolve('fedcba9876543210'), undefined, 'a prefix no member has names none');
  const learned = new MemberTable();
  learned.learn(new Map([[LONG, info(LONG)]]), 0);
  t.equal(learned.resolve(SHORT), LONG, 'the same through a learned list');
  t.equal(tab.named(SHORT)?.id, LONG, 'the member itself, to read');
  t.equal(learned.named(SHORT)?.id, LONG);
  t.equal(learned.named('fedcba9876543210'), undefined);
});

t.test('a member whose id is 16 characters is named by it, even where a longer id begins with it', async (t) => {
  const tab = new MemberTable();
  tab.set(SHORT, member(SHORT));
  tab.set(LONG, member(LONG));
  t.equal(tab.resolve(SHORT), SHORT, 'its own members');
  const learned = new MemberTable();
  learned.learn(new Map([[SHORT, info(SHORT)], [LONG, info(LONG)]]), 0);
  t.equal(learned.resolve(SHORT), SHORT, 'a learned list');
  t.equal(tab.named(SHORT)?.id, SHORT, 'the member itself, to read');
  t.equal(learned.named(SHORT)?.id, SHORT);
  t.equal(learned.named(LONG.slice(0, 15)), undefined, 'a name shorter than an id is no prefix');
});
