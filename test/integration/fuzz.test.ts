import t from 'tap';
import { Socket } from 'node:net';
import { startDaemon } from '../helpers/daemon.js';
import { floodUdp, mutator } from '../helpers/fuzz.js';
import { decode, query, udpExchange } from '../helpers/dns.js';

// 100 000 random and mutated packets at the JS path; the daemon must keep answering.

const SEEDS = [
  query('web.default.cluster.local'),
  query('_http._tcp.web.default.svc.cluster.local', 'SRV', { edns: 1232 }),
  query('1.0.0.10.in-addr.arpa', 'PTR'),
  query('example.test', 'AAAA'),
  query('cluster.local', 'SOA', { edns: 4096 }),
];

const mutate = mutator(SEEDS, 0x12345678);

t.test('100 000 malformed packets do not crash the daemon', async (t) => {
  // The JS path; the native parser has its own fuzz test (test/native/fuzz.test.ts).
  const d = await startDaemon(t, {
    config: 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.1\n        ports: { http: 80 }\n',
    env: { PODMAN_SWARM_DNS_NATIVE: '0' },
  });
  const { replies, badReplies } = await floodUdp(d.dnsPort, 100_000, mutate);
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
  t.ok(replies > 1000, `${replies} replies to the mutated packets`);
  t.equal(badReplies, 0, 'every reply is a well-formed DNS message');
  // The flood may still be queued in the socket buffer: ask until answered (at most 10 tries).
  let reply: Buffer | null = null;
  for (let i = 0; i < 10 && !reply; i++) reply = await udpExchange(d.dnsPort, query('web.default.cluster.local', 'A', { id: i }));
  const ok = decode(reply!);
  t.same(ok.answers!.map((a) => (a as { data: unknown }).data), ['10.0.0.1'], 'a normal query still gets its answer');
  const metrics = await (await fetch(`${d.api}/metrics`)).text();
  t.match(metrics, /podman_swarm_dns_dns_malformed_total\{action="formerr"\} [1-9]/);
  t.match(metrics, /podman_swarm_dns_dns_malformed_total\{action="dropped"\} [1-9]/);
  t.equal(d.proc.exitCode, null, 'still running');
});
