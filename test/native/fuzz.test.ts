import t from 'tap';
import * as packet from 'dns-packet';
import { startDaemon } from '../helpers/daemon.js';
import { floodUdp, mutator } from '../helpers/fuzz.js';
import { decode, query, udpExchange } from '../helpers/dns.js';
import { addon, skip, world } from '../helpers/native-world.js';

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
  t.match(d.logs(), /native DNS path/, 'the daemon serves UDP natively');
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
