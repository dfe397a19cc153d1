import t from 'tap';
import { createSocket } from 'node:dgram';
import * as packet from 'dns-packet';
import { startDaemon } from '../helpers/daemon.js';
import { decode, query, udpExchange } from '../helpers/dns.js';
import { addon, skip, world } from '../helpers/native-world.js';

// Fuzzing the native parser (SPEC §16): 1 000 000 random and mutated packets through the native
// answer function (in process, so the whole million runs in seconds), then a share of them over
// UDP at a daemon serving natively, which must still answer afterwards.

let state = 0x9e3779b9;
const rand = (n: number): number => {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) % n;
};

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

function mutate(): Buffer {
  const kind = rand(9);
  if (kind === 0) return Buffer.from(Array.from({ length: rand(600) }, () => rand(256)));
  const b = Buffer.from(SEEDS[rand(SEEDS.length)]!);
  switch (kind) {
    case 1:
      for (let i = rand(6) + 1; i > 0; i--) b[rand(b.length)] = rand(256);
      return b;
    case 2:
      return b.subarray(0, rand(b.length));
    case 3:
      b.writeUInt16BE(rand(65536), 4 + 2 * rand(4));
      return b;
    case 4:
      b[12 + rand(b.length - 12)] = 0xc0 | rand(64);
      return b;
    case 5:
      b[12 + rand(Math.min(30, b.length - 12))] = rand(256);
      return b;
    case 6:
      return Buffer.concat([b, Buffer.alloc(rand(1500), rand(256))]);
    case 7: // an OPT record with random option framing
      return Buffer.concat([b.subarray(0, 10), Buffer.from([0, 1]), b.subarray(12), Buffer.from([0, 0, 41, rand(256), rand(256), 0, rand(3), rand(256), 0, 0, rand(20)]), Buffer.alloc(rand(20), rand(256))]);
    default:
      b.writeUInt16BE(rand(65536) & 0x7fff, 2);
      return b;
  }
}

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
  const sock = createSocket('udp4');
  let replies = 0;
  let badReplies = 0;
  sock.on('message', (m) => {
    replies++;
    try {
      decode(m);
    } catch {
      badReplies++;
    }
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const TOTAL = 200_000;
  for (let sent = 0; sent < TOTAL; ) {
    for (let i = 0; i < 200 && sent < TOTAL; i++, sent++) sock.send(mutate(), d.dnsPort, '127.0.0.1');
    await new Promise((r) => setImmediate(r));
    if (sent % 5000 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 1500));
  sock.close();
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
