import t from 'tap';
import { ZoneState } from '../../src/dns/zone.js';
import { finish, reverseName, TableCompiler, wireName } from '../../src/native/table.js';
import { Registry } from '../../src/registry/registry.js';
import { ep, node } from '../helpers/registry.js';

// The table compiler without the addon: a change to one service of 2,000 is a patch of that
// service's names, its addresses' reverse names and the zone's own names, not the table again.

t.test('one service\'s change is a patch of its own groups, a small part of the table', async (t) => {
  const registry = new Registry({ localNode: 'me', routableContainerIps: false, defaultMode: 'dnsrr' });
  const eps = Array.from({ length: 2000 }, (_, i) => ep(`s${i}`, `10.1.${i >> 8}.${i & 255}`, { id: `e${i}`, hostname: `h${i}` }));
  registry.apply(node('me', 1, eps));
  const zone = new ZoneState(registry, { domain: 'cluster.local', ttl: 5, negativeTtl: 7, nameserver: '10.223.0.10', failOpen: false, preferLocal: true, udpAnswerLimit: 0 });
  t.teardown(() => zone.close());
  const compiler = new TableCompiler();
  const whole = compiler.compile({ zone, services: registry.services(), clients: [] });
  const keys: string[][] = [];
  const addresses: string[][] = [];
  registry.onChange((c) => void (keys.push(c.services), addresses.push(c.addresses ?? [])));
  registry.apply(node('me', 2, eps.map((e) => (e.id === 'e7' ? { ...e, addresses: ['10.9.0.7'] } : e))));
  t.same(keys, [['default/s7']], 'the registry names the one service');
  t.same(addresses[0]!.sort(), ['10.1.0.7', '10.9.0.7'], 'and its addresses, old and new');
  const patch = finish(compiler.patchSteps(zone, keys[0]!, addresses[0]!));
  t.equal(patch.subarray(0, 4).toString(), 'PSDP');
  const groups = groupsOf(patch);
  t.same([...groups.keys()].sort(), ['p:10.1.0.7', 'p:10.9.0.7', 's:default/s7', 'zone'], 'its names, its old and new address, the zone\'s names');
  const ptr = Buffer.concat([wireName(reverseName('10.9.0.7')!), Buffer.from([0, 12])]).toString('latin1');
  t.ok(groups.get('s:default/s7')!.includes(ptr), 'the PTR of the address it alone answers is in its group');
  t.same([groups.get('p:10.1.0.7'), groups.get('p:10.9.0.7')], [[], []], "the addresses' own groups are empty (they remove what those held)");
  t.ok(patch.length * 200 < whole.length, `patch ${patch.length} bytes, table ${whole.length} bytes`);
});

t.test('names as the table keys them: lower-case wire form with the root label', async (t) => {
  const bytes = (...parts: Array<number | string>) => Buffer.concat(parts.map((p) => (typeof p === 'number' ? Buffer.from([p]) : Buffer.from(p, 'latin1'))));
  t.same(wireName(''), bytes(0), 'the root');
  t.same(wireName('Web.Default.cluster.local'), bytes(3, 'web', 7, 'default', 7, 'cluster', 5, 'local', 0));
  t.same(wireName('_http._tcp.a'), bytes(5, '_http', 4, '_tcp', 1, 'a', 0));
  t.same(wireName('1.0.0.10.in-addr.arpa'), bytes(1, '1', 1, '0', 1, '0', 2, '10', 7, 'in-addr', 4, 'arpa', 0));
  t.same(wireName('a..b'), bytes(1, 'a', 0, 1, 'b', 0), 'an empty label is a zero length, as written');
});

/** The groups of a patch ("PSDP", version, the negative SOA item, groups), read as answer.rs reads it: id → keys. */
function groupsOf(b: Buffer): Map<string, string[]> {
  let i = 6;
  const item = (): void => {
    i += 2 + 2 * b[i + 1]!; // kind, patch count, patches
    i += 2 + b.readUInt16BE(i); // record
  };
  const items = (): void => {
    const n = b.readUInt16BE(i);
    i += 2;
    for (let k = 0; k < n; k++) item();
  };
  item();
  const out = new Map<string, string[]>();
  const groups = b.readUInt32BE(i);
  i += 4;
  for (let g = 0; g < groups; g++) {
    const len = b.readUInt16BE(i);
    const keys: string[] = [];
    out.set(b.subarray(i + 2, i + 2 + len).toString(), keys);
    i += 2 + len + 1; // id, rank
    const entries = b.readUInt32BE(i);
    i += 4;
    for (let e = 0; e < entries; e++) {
      keys.push(b.subarray(i + 2, i + 2 + b.readUInt16BE(i)).toString('latin1'));
      i += 2 + b.readUInt16BE(i); // key
      i += 1 + 17 * b[i]!; // scopes
      i += 2; // rcode, flags
      const variants = b[i++]!;
      for (let v = 0; v < variants; v++) {
        const answerGroups = b[i++]!;
        for (let k = 0; k < answerGroups; k++) items();
        items(); // additional
      }
      items(); // authority
    }
  }
  if (i !== b.length) throw new Error(`patch read to ${i} of ${b.length} bytes`);
  return out;
}
