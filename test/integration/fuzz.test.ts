import t from 'tap';
import { createSocket } from 'node:dgram';
import { Socket } from 'node:net';
import { startDaemon } from '../helpers/daemon.js';
import { decode, query, udpExchange } from '../helpers/dns.js';

// 100 000 random and mutated packets at the JS path; the daemon must keep answering.

const SEEDS = [
  query('web.default.cluster.local'),
  query('_http._tcp.web.default.svc.cluster.local', 'SRV', { edns: 1232 }),
  query('1.0.0.10.in-addr.arpa', 'PTR'),
  query('example.test', 'AAAA'),
  query('cluster.local', 'SOA', { edns: 4096 }),
];

let state = 0x12345678;
const rand = (n: number): number => {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) % n;
};

function mutate(): Buffer {
  const kind = rand(8);
  if (kind === 0) return Buffer.from(Array.from({ length: rand(600) }, () => rand(256))); // noise
  const b = Buffer.from(SEEDS[rand(SEEDS.length)]!);
  switch (kind) {
    case 1: // flip bytes
      for (let i = rand(6) + 1; i > 0; i--) b[rand(b.length)] = rand(256);
      return b;
    case 2: // truncate anywhere, including inside the header
      return b.subarray(0, rand(b.length));
    case 3: // absurd section counts
      b.writeUInt16BE(rand(65536), 4 + 2 * rand(4));
      return b;
    case 4: // compression pointers into the header / loops
      b[12 + rand(b.length - 12)] = 0xc0 | rand(64);
      if (b.length > 14) b[13] = rand(b.length);
      return b;
    case 5: // bad label lengths
      b[12] = 64 + rand(192);
      return b;
    case 6: // oversized: trailing garbage up to 4 KB
      return Buffer.concat([b, Buffer.alloc(rand(4000), rand(256))]);
    default: // random opcode / flags
      b.writeUInt16BE(rand(65536) & 0x7fff, 2);
      return b;
  }
}

t.test('100 000 malformed packets do not crash the daemon', async (t) => {
  // The JS path; the native parser has its own fuzz test (test/native/fuzz.test.ts).
  const d = await startDaemon(t, {
    config: 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.1\n        ports: { http: 80 }\n',
    env: { PODMAN_SWARM_DNS_NATIVE: '0' },
  });
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
  const TOTAL = 100_000;
  for (let sent = 0; sent < TOTAL; ) {
    // Batches with a pause, so the kernel buffers do not just drop everything.
    for (let i = 0; i < 200 && sent < TOTAL; i++, sent++) sock.send(mutate(), d.dnsPort, '127.0.0.1');
    await new Promise((r) => setImmediate(r));
    if (sent % 5000 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  // Some garbage over TCP too: a connection with junk must not take the daemon down.
  for (let i = 0; i < 50; i++) {
    const c = new Socket();
    await new Promise<void>((res) => {
      c.on('error', () => res());
      c.on('close', () => res());
      c.connect(d.dnsPort, '127.0.0.1', () => {
        c.end(mutate());
        setTimeout(() => c.destroy(), 50);
      });
    });
  }
  await new Promise((r) => setTimeout(r, 500));
  sock.close();
  t.ok(replies > 1000, `${replies} replies to the mutated packets`);
  t.equal(badReplies, 0, 'every reply is a well-formed DNS message');
  const ok = decode((await udpExchange(d.dnsPort, query('web.default.cluster.local')))!);
  t.same(ok.answers!.map((a) => (a as { data: unknown }).data), ['10.0.0.1'], 'a normal query still gets its answer');
  const metrics = await (await fetch(`${d.api}/metrics`)).text();
  t.match(metrics, /podman_swarm_dns_dns_malformed_total\{action="formerr"\} [1-9]/);
  t.match(metrics, /podman_swarm_dns_dns_malformed_total\{action="dropped"\} [1-9]/);
  t.equal(d.proc.exitCode, null, 'still running');
});
