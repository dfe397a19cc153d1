import t from 'tap';
import * as packet from 'dns-packet';
import { inspect, ResponseCache, STALE_TTL } from '../../src/dns/cache.js';

const soa = { type: 'SOA' as const, name: 'example', ttl: 900, data: { mname: 'ns', rname: 'h', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 60 } };

const response = (o: { rcode?: number; answers?: packet.Answer[]; authorities?: packet.Answer[]; tc?: boolean; name?: string }) =>
  packet.encode({
    id: 1,
    type: 'response',
    flags: (o.rcode ?? 0) | (o.tc ? packet.TRUNCATED_RESPONSE : 0),
    questions: [{ name: o.name ?? 'www.example', type: 'A', class: 'IN' }],
    answers: o.answers ?? [],
    authorities: o.authorities ?? [],
  });

t.test('positive answers live for their smallest TTL; TTLs count down', async (t) => {
  let now = 0;
  const c = new ResponseCache(10, () => now);
  const r = response({ answers: [{ type: 'A', name: 'www.example', ttl: 30, data: '1.2.3.4' }, { type: 'A', name: 'www.example', ttl: 100, data: '1.2.3.5' }] });
  t.equal(c.set('k', r), 30);
  now = 10_500;
  const hit = packet.decode(c.get('k', 99)!);
  t.equal(hit.id, 99);
  t.same(hit.answers!.map((a) => (a as { ttl: number }).ttl), [20, 90], 'aged by 10 s');
  now = 30_001;
  t.equal(c.get('k', 1), undefined, 'expired');
  t.equal(c.hits, 1);
  t.equal(c.misses, 1);
});

t.test('negative answers are cached for min(SOA TTL, SOA minimum) (RFC 2308)', async (t) => {
  const c = new ResponseCache(10, () => 0);
  t.equal(c.set('nx', response({ rcode: 3, authorities: [soa] })), 60);
  t.equal(c.set('nodata', response({ authorities: [{ ...soa, ttl: 20 }] })), 20);
  t.equal(c.set('nosoa', response({ rcode: 3 })), 0, 'no SOA: not cached');
});

t.test('SERVFAIL, REFUSED, truncated and garbage are not cached', async (t) => {
  t.equal(inspect(response({ rcode: 2 })), null);
  t.equal(inspect(response({ rcode: 5 })), null);
  t.equal(inspect(response({ tc: true, answers: [{ type: 'A', name: 'x', ttl: 5, data: '1.1.1.1' }] })), null);
  t.equal(inspect(Buffer.from('garbage and more garbage')), null);
  const cut = response({ answers: [{ type: 'A', name: 'www.example', ttl: 30, data: '1.2.3.4' }] });
  t.equal(inspect(cut.subarray(0, cut.length - 3)), null, 'record running past the end');
});

t.test('bounded: the least recently used entry goes first', async (t) => {
  const c = new ResponseCache(2, () => 0);
  const r = response({ answers: [{ type: 'A', name: 'www.example', ttl: 30, data: '1.2.3.4' }] });
  c.set('a', r);
  c.set('b', r);
  c.get('a', 1);
  c.set('c', r);
  t.equal(c.size, 2);
  t.equal(c.evictions, 1, 'the eviction is counted');
  t.ok(c.get('a', 1));
  t.equal(c.get('b', 1), undefined);
});

t.test('a hit puts the asker\'s spelling of the question back', async (t) => {
  const c = new ResponseCache(10, () => 0);
  c.set('www.example|A', response({ answers: [{ type: 'A', name: 'www.example', ttl: 30, data: '1.2.3.4' }] }));
  const q = packet.encode({ id: 5, type: 'query', questions: [{ name: 'WWW.Example', type: 'A', class: 'IN' }] });
  const end = q.length;
  const hit = packet.decode(c.get('www.example|A', 5, q.subarray(12, end))!);
  t.equal(hit.questions![0]!.name, 'WWW.Example');
});

t.test('serve-stale: an expired entry inside the window is handed out with TTL 30, never by get()', async (t) => {
  let now = 0;
  const c = new ResponseCache(10, () => now, 3_600_000);
  c.set('k', response({ answers: [{ type: 'A', name: 'www.example', ttl: 60, data: '1.2.3.4' }, { type: 'A', name: 'www.example', ttl: 600, data: '1.2.3.5' }] }));
  t.equal(c.stale('k', 1), undefined, 'a fresh entry is not stale');
  now = 61_000;
  t.equal(c.get('k', 1), undefined, 'expired: get() misses, so the upstream is asked first');
  const stale = packet.decode(c.stale('k', 7)!);
  t.equal(stale.id, 7);
  t.same(stale.answers!.map((a) => [(a as { data: string }).data, (a as { ttl: number }).ttl]), [['1.2.3.4', STALE_TTL], ['1.2.3.5', STALE_TTL]]);
  t.equal(c.staleHits, 1);
  now = 60_000 + 3_600_000;
  t.equal(c.stale('k', 1), undefined, 'past the window: gone');
  t.equal(c.size, 0, 'and removed');
  t.equal(c.staleHits, 1);
});

t.test('serve-stale off (window 0): an expired entry is dropped at once', async (t) => {
  let now = 0;
  const c = new ResponseCache(10, () => now);
  c.set('k', response({ answers: [{ type: 'A', name: 'www.example', ttl: 1, data: '1.2.3.4' }] }));
  now = 1000;
  t.equal(c.get('k', 1), undefined);
  t.equal(c.size, 0);
  t.equal(c.stale('k', 1), undefined);
});

t.test('serve-stale: stale entries count towards the bound', async (t) => {
  let now = 0;
  const c = new ResponseCache(2, () => now, 3_600_000);
  const r = response({ answers: [{ type: 'A', name: 'www.example', ttl: 1, data: '1.2.3.4' }] });
  c.set('a', r);
  c.set('b', r);
  now = 5000;
  c.set('c', r);
  t.equal(c.size, 2);
  t.equal(c.stale('a', 1), undefined, 'the oldest went');
  t.ok(c.stale('b', 1));
});
