import t from 'tap';
import { Resolver } from 'node:dns/promises';
import { Socket } from 'node:net';
import * as packet from 'dns-packet';
import { startDaemon } from '../helpers/daemon.js';
import { decode, dig, digShort, digStatus, query, tcpExchange, udpExchange } from '../helpers/dns.js';
import { startUpstream } from '../helpers/upstream.js';
import { expectLog } from '../helpers/until.js';

const CONFIG = `
services:
  - name: web
    endpoints:
      - address: 10.0.0.1
        hostname: web-1
        ports: { http: 8080/tcp }
      - address: 10.0.0.2
        hostname: web-2
        ports: { http: 8080/tcp, admin: 9000/tcp }
  - name: db
    namespace: prod
    endpoints:
      - address: fd00::5
        hostname: db-1
        ports: { pg: 5432 }
  - name: big
    endpoints:
${Array.from({ length: 80 }, (_, i) => `      - address: 10.1.${i >> 8}.${i & 255}`).join('\n')}
`;

t.test('DNS end to end with real clients', async (t) => {
  const up = await startUpstream(t, { records: { 'example.test': ['192.0.2.80'] } });
  const d = await startDaemon(t, { config: CONFIG, upstreams: [up.address] });
  const r = new Resolver({ timeout: 2000, tries: 1 });
  r.setServers([`127.0.0.1:${d.dnsPort}`]);

  await t.test("Node's resolver: A, AAAA, SRV, PTR, NXDOMAIN", async (t) => {
    t.same((await r.resolve4('web.default.cluster.local')).sort(), ['10.0.0.1', '10.0.0.2']);
    t.same(await r.resolve6('db.prod.svc.cluster.local'), ['fd00::5']);
    const srv = await r.resolveSrv('_http._tcp.web.default.svc.cluster.local');
    t.same(srv.map((s) => `${s.name}:${s.port}:${s.weight}:${s.priority}`).sort(), [
      'web-1.web.default.svc.cluster.local:8080:10:0',
      'web-2.web.default.svc.cluster.local:8080:10:0',
    ]);
    t.same(await r.reverse('10.0.0.2'), ['web-2.web.default.svc.cluster.local']);
    await t.rejects(r.resolve4('nope.default.cluster.local'), { code: 'ENOTFOUND' });
    await t.rejects(r.resolveTxt('web.default.cluster.local'), { code: 'ENODATA' }, 'NODATA');
  });

  await t.test('dig: SRV with additional records, over UDP and TCP', async (t) => {
    for (const transport of ['+notcp', '+tcp']) {
      const out = await dig(['@127.0.0.1', '-p', String(d.dnsPort), transport, 'SRV', '_admin._tcp.web.default.cluster.local']);
      t.equal(digStatus(out), 'NOERROR');
      t.match(out, /flags: qr aa rd ra;/, 'authoritative');
      t.match(out, /_admin\._tcp\.web\.default\.cluster\.local\.\s+5\s+IN\s+SRV\s+0 10 9000 web-2\.web\.default\.svc\.cluster\.local\./);
      t.match(out, /;; ADDITIONAL SECTION:\nweb-2\.web\.default\.svc\.cluster\.local\.\s+5\s+IN\s+A\s+10\.0\.0\.2/);
    }
    t.same(await digShort(d.dnsPort, '+tcp', 'web-1.web.default.svc.cluster.local'), ['10.0.0.1']);
  });

  await t.test('NXDOMAIN and NODATA carry the SOA; case is echoed', async (t) => {
    const nx = await dig(['@127.0.0.1', '-p', String(d.dnsPort), 'nope.prod.cluster.local']);
    t.equal(digStatus(nx), 'NXDOMAIN');
    t.match(nx, /cluster\.local\.\s+5\s+IN\s+SOA\s+ns\.dns\.cluster\.local\. hostmaster\.cluster\.local\./);
    const nodata = await dig(['@127.0.0.1', '-p', String(d.dnsPort), 'web.default.cluster.local', 'MX']);
    t.equal(digStatus(nodata), 'NOERROR');
    t.match(nodata, /ANSWER: 0, AUTHORITY: 1/);
    const upper = await dig(['@127.0.0.1', '-p', String(d.dnsPort), 'WEB.Default.CLUSTER.local']);
    t.match(upper, /^WEB\.Default\.CLUSTER\.local\.\s+5\s+IN\s+A\s+10\.0\.0\.\d$/m);
  });

  await t.test('answers rotate: queries with different IDs get different first records', async (t) => {
    const firsts = new Set<string>();
    for (let id = 0; id < 4; id++) {
      const reply = decode((await udpExchange(d.dnsPort, query('web.default.cluster.local', 'A', { id })))!);
      firsts.add(String((reply.answers![0] as { data: unknown }).data));
    }
    t.same([...firsts].sort(), ['10.0.0.1', '10.0.0.2']);
  });

  await t.test('an answer larger than the EDNS size is truncated over UDP, complete over TCP', async (t) => {
    const udp = decode((await udpExchange(d.dnsPort, query('big.default.cluster.local', 'A', { edns: 1232 })))!);
    t.ok(udp.flag_tc, 'TC set');
    t.equal(udp.answers!.length, 73, 'with the 73 records that fit in 1232 bytes, for clients that never retry over TCP');
    const plain = decode((await udpExchange(d.dnsPort, query('big.default.cluster.local')))!);
    t.ok(plain.flag_tc, 'no EDNS: 512 bytes');
    t.equal(plain.answers!.length, 29, 'and 29 records in those');
    const other = decode((await udpExchange(d.dnsPort, query('big.default.cluster.local', 'A', { id: 4243 })))!);
    const first = (r: typeof plain) => (r.answers![0] as { data: string }).data;
    t.not(first(other), first(plain), 'another query ID gets another subset');
    const [tcp] = await tcpExchange(d.dnsPort, [query('big.default.cluster.local')]);
    t.equal(decode(tcp!).answers!.length, 80);
    const viaDig = await digShort(d.dnsPort, 'big.default.cluster.local');
    t.equal(viaDig.length, 80, 'dig retries over TCP by itself');
  });

  await t.test('several queries on one TCP connection', async (t) => {
    const replies = await tcpExchange(d.dnsPort, [query('web.default.cluster.local', 'A', { id: 1 }), query('db.prod.cluster.local', 'AAAA', { id: 2 }), query('nope.cluster.local', 'A', { id: 3 })]);
    const byId = new Map(replies.map((b) => [decode(b).id, decode(b)]));
    t.equal(byId.get(1)!.answers!.length, 2);
    t.same(byId.get(2)!.answers!.map((a) => (a as { data: unknown }).data), ['fd00::5']);
    t.equal(byId.get(3)!.rcode, 'NXDOMAIN');
  });

  await t.test('names outside the zone are forwarded', async (t) => {
    t.same(await digShort(d.dnsPort, 'example.test'), ['192.0.2.80']);
    const nx = await dig(['@127.0.0.1', '-p', String(d.dnsPort), 'missing.test']);
    t.equal(digStatus(nx), 'NXDOMAIN');
    t.match(nx, /flags: qr rd ra;/, 'not authoritative');
  });

  await t.test('TCP: a client that half-closes after a forwarded query still gets its answer', async (t) => {
    const sock = new Socket({ allowHalfOpen: true });
    const msg = query('other.example.test', 'A', { id: 77 });
    const len = Buffer.alloc(2);
    len.writeUInt16BE(msg.length);
    const got = await new Promise<Buffer>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      sock.on('data', (c) => (buf = Buffer.concat([buf, c])));
      sock.on('end', () => resolve(buf));
      sock.on('error', reject);
      sock.connect(d.dnsPort, '127.0.0.1', () => sock.end(Buffer.concat([len, msg])));
    });
    t.equal(decode(got.subarray(2)).id, 77, 'answered, then the server closed its side');
  });

  await t.test('forwarded answers are cached (positive and negative)', async (t) => {
    const before = up.udpQueries;
    await digShort(d.dnsPort, 'example.test');
    await digShort(d.dnsPort, 'EXAMPLE.test');
    await dig(['@127.0.0.1', '-p', String(d.dnsPort), 'missing.test']);
    t.equal(up.udpQueries, before, 'no new upstream queries');
    const metrics = await (await fetch(`${d.api}/metrics`)).text();
    // Served natively, the repeats come from the native threads' copy of the cache.
    const path = /native DNS path/.test(d.logs()) ? 'native' : 'js';
    if (path === 'js') t.match(metrics, /podman_swarm_dns_dns_cache_hits_total [1-9]/);
    t.match(metrics, new RegExp(`podman_swarm_dns_dns_queries_total\\{type="A",rcode="NOERROR",source="cache",path="${path}"\\} [1-9]`));
  });

  await t.test('DNS over TCP: an idle connection is closed by the server', async (t) => {
    const d2 = await startDaemon(t, { args: ['--tcp-idle-timeout', '1s'] });
    const sock = new Socket();
    await new Promise<void>((res) => sock.connect(d2.dnsPort, '127.0.0.1', res));
    const closed = await new Promise<boolean>((res) => {
      sock.on('close', () => res(true));
      setTimeout(() => res(false), 5000);
    });
    t.ok(closed, 'closed after the idle timeout');
  });
});

t.test('--udp-answer-limit: short UDP answers without TC, everything over TCP, on both paths', async (t) => {
  for (const native of ['1', '0']) {
    const d = await startDaemon(t, { config: CONFIG, args: ['--udp-answer-limit', '5'], env: { PODMAN_SWARM_DNS_NATIVE: native } });
    const udp = decode((await udpExchange(d.dnsPort, query('big.default.cluster.local', 'A', { id: 7 })))!);
    t.equal(udp.answers!.length, 5, `native=${native}: 5 records`);
    t.notOk(udp.flag_tc, 'no TC: the client has what it asked for');
    const [tcp] = await tcpExchange(d.dnsPort, [query('big.default.cluster.local')]);
    t.equal(decode(tcp!).answers!.length, 80, 'TCP is not limited');
  }
});

t.test('forwarding: failover, SERVFAIL, TC retry over TCP', async (t) => {
  const dead = await startUpstream(t, { silent: true });
  const good = await startUpstream(t, { records: { 'example.test': ['192.0.2.1'] } });
  const d = await startDaemon(t, { upstreams: [dead.address, good.address], args: ['--upstream-timeout', '300ms'] });
  t.same(await digShort(d.dnsPort, 'example.test'), ['192.0.2.1'], 'the second upstream answers when the first is silent');
  t.ok(dead.udpQueries >= 1, 'the first upstream was tried');
  await expectLog(t, d, /upstream DNS server 127\.0\.0\.1:\d+ is failing \(no answer/, 'logged once per state change');

  const d2 = await startDaemon(t, { upstreams: [dead.address], args: ['--upstream-timeout', '300ms'] });
  t.equal(digStatus(await dig(['@127.0.0.1', '-p', String(d2.dnsPort), 'example.test'])), 'SERVFAIL', 'SERVFAIL when no upstream answers');

  const trunc = await startUpstream(t, { truncateUdp: true, records: { 'big.test': ['192.0.2.7', '192.0.2.8'] } });
  const d3 = await startDaemon(t, { upstreams: [trunc.address] });
  t.same(await digShort(d3.dnsPort, 'big.test'), ['192.0.2.7', '192.0.2.8'], 'the full answer fetched over TCP');
  t.equal(trunc.tcpQueries, 1);

  const failing = await startUpstream(t, { rcode: 'SERVFAIL' });
  const d4 = await startDaemon(t, { upstreams: [failing.address, good.address] });
  t.same(await digShort(d4.dnsPort, 'example.test'), ['192.0.2.1'], 'an upstream answering SERVFAIL is skipped');
});

t.test('recursion ACL: off-subnet clients get REFUSED, in-zone answers still work', async (t) => {
  const up = await startUpstream(t, { records: { 'example.test': ['192.0.2.1'] } });
  const d = await startDaemon(t, { config: CONFIG, upstreams: [up.address], args: ['--allow-recursion', '127.0.0.1/32'] });
  const allowed = decode((await udpExchange(d.dnsPort, query('example.test'), { localAddress: '127.0.0.1' }))!);
  t.equal(allowed.rcode, 'NOERROR');
  const refused = decode((await udpExchange(d.dnsPort, query('example.test'), { localAddress: '127.0.0.2' }))!);
  t.equal(refused.rcode, 'REFUSED');
  t.notOk(refused.flag_ra, 'no recursion offered');
  const inZone = decode((await udpExchange(d.dnsPort, query('web.default.cluster.local'), { localAddress: '127.0.0.2' }))!);
  t.equal(inZone.answers!.length, 2);
  t.equal(up.udpQueries, 1, 'the refused query never reached the upstream');
});

t.test('--forward-allow: other names and CNAME chains leaving the allowed set are refused', async (t) => {
  const up = await startUpstream(t, {
    records: { 'www.ok.test': ['192.0.2.1'], 'evil.other': ['192.0.2.66'] },
    extra: { 'cdn.ok.test': [{ type: 'CNAME', name: 'cdn.ok.test', ttl: 60, data: 'evil.other' } as packet.Answer, { type: 'A', name: 'evil.other', ttl: 60, data: '192.0.2.66' } as packet.Answer] },
  });
  const d = await startDaemon(t, { upstreams: [up.address], args: ['--forward-allow', 'ok.test'] });
  t.same(await digShort(d.dnsPort, 'www.ok.test'), ['192.0.2.1']);
  t.equal(digStatus(await dig(['@127.0.0.1', '-p', String(d.dnsPort), 'evil.other'])), 'REFUSED');
  t.equal(digStatus(await dig(['@127.0.0.1', '-p', String(d.dnsPort), 'cdn.ok.test'])), 'REFUSED');
});
