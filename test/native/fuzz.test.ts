import t from 'tap';
import * as packet from 'dns-packet';
import { startDaemon } from '../helpers/daemon.js';
import { floodUdp, mutator } from '../helpers/fuzz.js';
import { decode, query, udpExchange } from '../helpers/dns.js';
import { addon, skip, world } from '../helpers/native-world.js';
import { startUpstream } from '../helpers/upstream.js';
import { NativeCache } from '../../src/native/cache.js';
import { expectLog } from '../helpers/until.js';

// Fuzzing the native parser (SPEC §16): 1 000 000 random and mutated packets through the native
// answer function (in process, so the whole million runs in seconds), then a share of them over
// UDP at a daemon serving natively, which must still answer afterwards.

const SEEDS = [
  query('web.default.cluster.local'),
  query('WEB.default.svc.cluster.local', 'AAAA', { edns: 1232 }),
  query('_http._tcp.web.default.svc.cluster.local', 'SRV', { edns: 512 }),
  query('big.default.cluster.local', 'A'),
  query('1.0.0.10.in-addr.arpa', 'PTR'),
  query('cluster.local', 'SOA', { edns: 4096 }),
  query('nothing.cluster.local', 'TXT'),
  query('example.test', 'A'),
];

const mutate = mutator(SEEDS, 0x9e3779b9);

t.test('1 000 000 mutated packets through the native parser', { skip }, async (t) => {
  const w = world();
  t.teardown(() => w.close());
  w.install();
  const counts = { replies: 0, dropped: 0, toJs: 0 };
  const bad: string[] = [];
  for (let i = 0; i < 1_000_000; i++) {
    const q = mutate();
    const r = addon!.answer(q, i % 3 ? '127.0.0.1' : '10.88.0.9');
    if (r === undefined) counts.toJs++;
    else if (r === null) counts.dropped++;
    else {
      counts.replies++;
      // Every reply is a well-formed DNS response carrying the query's ID.
      try {
        const d = packet.decode(r);
        if (d.type !== 'response' || r.readUInt16BE(0) !== q.readUInt16BE(0) || r.length > 1232) throw new Error('bad header or size');
      } catch (e) {
        if (bad.length < 3) bad.push(`${q.toString('hex')} → ${r.toString('hex')}: ${(e as Error).message}`);
      }
    }
  }
  t.same(bad, [], 'no malformed reply');
  t.ok(counts.replies > 100_000 && counts.dropped > 10_000 && counts.toJs > 10_000, JSON.stringify(counts));
  const ok = packet.decode(addon!.answer(query('web.default.cluster.local'), '127.0.0.1')!);
  t.equal(ok.answers!.length, 4, 'a normal query still gets its answer');
});

t.test('a daemon serving natively survives 200 000 mutated packets over UDP', { skip }, async (t) => {
  const d = await startDaemon(t, {
    config: 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.1\n        ports: { http: 80 }\n',
  });
  await expectLog(t, d, /native DNS path/, 'the daemon serves UDP natively');
  const { replies, badReplies } = await floodUdp(d.dnsPort, 200_000, mutate);
  t.ok(replies > 10_000, `${replies} replies`);
  t.equal(badReplies, 0, 'every reply is a well-formed DNS message');
  const ok = decode((await udpExchange(d.dnsPort, query('web.default.cluster.local')))!);
  t.same(ok.answers!.map((a) => (a as { data: unknown }).data), ['10.0.0.1'], 'a normal query still gets its answer');
  const metrics = await (await fetch(`${d.api}/metrics`)).text();
  t.match(metrics, /dns_malformed_total\{action="formerr"\} [1-9]/, 'FORMERR counted');
  t.match(metrics, /dns_malformed_total\{action="dropped"\} [1-9]/, 'drops counted');
  t.match(metrics, /dns_queries_total\{type="A",rcode="NOERROR",source="zone",path="native"\} [1-9]/, 'native answers counted by path');
  t.equal(d.proc.exitCode, null, 'still running');
});

t.test('the forwarding-cache path: garbage installs, then 300 000 mutated queries for cached names', { skip }, async (t) => {
  const up = await startUpstream(t, {
    records: { 'a.example.test': ['192.0.2.1'], 'b.example.test': Array.from({ length: 40 }, (_, i) => `192.0.2.${i + 10}`) },
    extra: { 'c.example.test': [{ type: 'CNAME', name: 'c.example.test', ttl: 300, data: 'a.example.test' }] },
  });
  const w = world({ upstream: { host: '127.0.0.1', port: up.port }, cacheSize: 500 });
  t.teardown(() => {
    w.close();
    addon!.cacheConfigure(0, true);
  });
  const cache = new NativeCache(addon!);
  w.forwarder.follow(cache);
  w.install();
  const seeds = [
    query('a.example.test'), query('B.example.test', 'A', { edns: 1232 }), query('b.example.test', 'A', { edns: 512 }),
    query('c.example.test', 'A'), query('nothing.example.test', 'AAAA', { edns: 4096 }), query('a.example.test', 'TXT', { flags: 0x0110 }),
  ];
  const replies: Buffer[] = [];
  for (const q of seeds) replies.push((await w.handler.handle(q, { address: '127.0.0.1', port: 53, transport: 'udp' }))!);
  t.ok(addon!.answer(seeds[0]!, '127.0.0.1'), 'the seeds are cached natively');

  // Mutated upstream replies through the same path as real ones (the JS cache's checks, then
  // the addon's), and raw installs that skip the JS checks: refused or stored, never a crash.
  const mutateQuery = mutator(seeds, 0x1badcafe);
  const mutateReply = mutator(replies, 0xdeadbeef);
  let stored = 0;
  for (let i = 0; i < 20_000; i++) cache.stored(mutateQuery(), mutateReply());
  for (let i = 0; i < 20_000; i++) {
    const ttls = mutateReply().subarray(0, 6 * (i % 8));
    if (addon!.cachePut(mutateQuery().subarray(12), mutateReply(), i % 3 ? i % 100_000 : 30, ttls)) stored++;
  }
  t.ok(stored > 0, `${stored} raw installs stored`);

  const counts = { replies: 0, dropped: 0, toJs: 0 };
  const bad: string[] = [];
  for (let i = 0; i < 300_000; i++) {
    const q = mutateQuery();
    const r = addon!.answer(q, i % 3 ? '127.0.0.1' : '10.88.0.9');
    if (r === undefined) counts.toJs++;
    else if (r === null) counts.dropped++;
    else {
      counts.replies++;
      // Whatever was installed, a reply carries the query's ID, has QR set and fits UDP.
      if (r.length < 12 || r.readUInt16BE(0) !== q.readUInt16BE(0) || !(r[2]! & 0x80) || r.length > 1232) {
        if (bad.length < 3) bad.push(`${q.toString('hex')} → ${r.toString('hex')}`);
      }
    }
  }
  t.same(bad, [], 'no reply without the query\'s ID, QR, or over 1232 bytes');
  t.ok(counts.replies > 10_000 && counts.toJs > 10_000, JSON.stringify(counts));
  // (The raw installs above may have replaced the seeds' entries: they skip every check.)
  await w.handler.handle(query('fresh.example.test'), { address: '127.0.0.1', port: 53, transport: 'udp' });
  const ok = decode(addon!.answer(query('FRESH.example.test', 'A', { id: 99 }), '127.0.0.1')!);
  t.equal(ok.id, 99);
  t.equal(ok.rcode, 'NXDOMAIN', 'a new name forwarded afterwards is cached and answered natively');
});
