import t from 'tap';
import * as packet from 'dns-packet';
import { nativeCacheKey } from '../../src/native/cache.js';

// The key JS installs a forwarded answer under in the native cache must be the one the UDP
// threads look a query up by (native/src/cache.rs query_key), and there must be none for queries
// they never look up (their answer stays in the JS cache only).

const q = (name: string, o: { type?: string; klass?: string; edns?: boolean; dnssec?: boolean; cd?: boolean; id?: number } = {}): Buffer =>
  packet.encode({
    id: o.id ?? 1,
    type: 'query',
    flags: packet.RECURSION_DESIRED | (o.cd ? packet.CHECKING_DISABLED : 0),
    questions: [{ name, type: (o.type ?? 'A') as 'A', class: (o.klass ?? 'IN') as 'IN' }],
    additionals: o.edns || o.dnssec ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: o.dnssec ? packet.DNSSEC_OK : 0 } as unknown as packet.Answer] : [],
  });

t.test('the key: lower-case wire name, qtype, EDNS/DO/CD flags', async (t) => {
  const k = nativeCacheKey(q('Registry.Example.COM', { id: 7 }))!;
  t.same([...k], [8, ...Buffer.from('registry'), 7, ...Buffer.from('example'), 3, ...Buffer.from('com'), 0, 0, 1, 0]);
  t.ok(k.equals(nativeCacheKey(q('registry.example.com', { id: 9 }))!), 'case and ID do not matter');
  const flags = (o: Parameters<typeof q>[1]): number => nativeCacheKey(q('a.example', o))!.at(-1)!;
  t.same([flags({}), flags({ edns: true }), flags({ dnssec: true }), flags({ cd: true }), flags({ cd: true, dnssec: true })], [0, 1, 3, 4, 7]);
  t.equal(nativeCacheKey(q('a.example', { type: 'AAAA' }))!.readUInt16BE(11), 28, 'the qtype');
});

t.test('no key for queries the native path never looks up', async (t) => {
  t.equal(nativeCacheKey(q('a.example', { klass: 'CH' })), null, 'not class IN');
  t.equal(nativeCacheKey(q('we\\.b.example')), null, 'a name with bytes the native path does not answer');
  const two = packet.encode({ id: 1, type: 'query', questions: [{ name: 'a.example', type: 'A' }, { name: 'b.example', type: 'A' }] });
  t.equal(nativeCacheKey(two), null, 'two questions');
  const extra = packet.encode({ id: 1, type: 'query', questions: [{ name: 'a.example', type: 'A' }], additionals: [{ type: 'A', name: 'x.example', data: '192.0.2.1' }] });
  t.equal(nativeCacheKey(extra), null, 'an additional record that is not OPT');
  t.equal(nativeCacheKey(q('a.example').subarray(0, 20)), null, 'cut short');
});
