import t from 'tap';
import type { Answer as RR } from 'dns-packet';
import { answerQuestion, type Client, type Zone, type ZoneSettings } from '../../src/dns/records.js';
import { Registry } from '../../src/registry/registry.js';
import type { Endpoint } from '../../src/registry/types.js';
import { ep, node } from '../helpers/registry.js';

const SETTINGS: ZoneSettings = {
  domain: 'cluster.local',
  ttl: 5,
  negativeTtl: 7,
  nameserver: '10.223.0.10',
  serial: 1234,
  failOpen: false,
  preferLocal: true,
};

function zone(endpoints: Endpoint[], o: { settings?: Partial<ZoneSettings>; remote?: Endpoint[] } = {}): Zone {
  const r = new Registry({ localNode: 'me', routableContainerIps: false, defaultMode: 'dnsrr' });
  r.apply(node('me', 1, endpoints));
  if (o.remote) r.apply(node('other', 1, o.remote, { address: '192.0.2.99' }));
  return { settings: { ...SETTINGS, ...o.settings }, source: r };
}

const LOCAL: Client = { local: true };
const ask = (z: Zone, name: string, type = 'A', client = LOCAL) => answerQuestion({ name, type, class: 'IN' }, z, client);
const data = (rrs: RR[]) => rrs.map((r) => (r as { data: unknown }).data);

const web = [
  ep('web', '10.0.0.1', { id: 'w1', hostname: 'web-1', ports: { http: { port: 8080, protocol: 'tcp' }, metrics: { port: 9090, protocol: 'tcp' } }, weight: 20 }),
  ep('web', ['10.0.0.2', 'fd00::2'], { id: 'w2', hostname: 'web-2', ports: { http: { port: 8080, protocol: 'tcp' } } }),
  ep('dns', '10.0.0.3', { id: 'd1', hostname: 'dns-1', namespace: 'infra', ports: { dns: { port: 53, protocol: 'udp' } } }),
];

t.test('A and AAAA of <svc>.<ns> and <svc>.<ns>.svc', async (t) => {
  const z = zone(web);
  for (const name of ['web.default.cluster.local', 'web.default.svc.cluster.local']) {
    const a = ask(z, name)!;
    t.equal(a.rcode, 'NOERROR');
    t.ok(a.authoritative);
    t.same(data(a.answers).sort(), ['10.0.0.1', '10.0.0.2'], name);
    t.ok(a.answers.every((r) => r.name === name && (r as { ttl: number }).ttl === 5));
    t.same(data(ask(z, name, 'AAAA')!.answers), ['fd00::2']);
  }
});

t.test('A of <host>.<svc>.<ns>[.svc]', async (t) => {
  const z = zone(web);
  t.same(data(ask(z, 'web-2.web.default.svc.cluster.local')!.answers), ['10.0.0.2']);
  t.same(data(ask(z, 'web-1.web.default.cluster.local')!.answers), ['10.0.0.1']);
  t.equal(ask(z, 'web-9.web.default.svc.cluster.local')!.rcode, 'NXDOMAIN');
});

t.test('SRV _<port>._<proto>: weight, port, target, additional A/AAAA', async (t) => {
  const z = zone(web);
  const a = ask(z, '_http._tcp.web.default.svc.cluster.local', 'SRV')!;
  t.same(
    data(a.answers).sort((x, y) => ((x as { target: string }).target < (y as { target: string }).target ? -1 : 1)),
    [
      { priority: 0, weight: 20, port: 8080, target: 'web-1.web.default.svc.cluster.local' },
      { priority: 0, weight: 10, port: 8080, target: 'web-2.web.default.svc.cluster.local' },
    ],
  );
  t.same(
    a.additionals.map((r) => `${r.name} ${r.type} ${(r as { data: string }).data}`).sort(),
    ['web-1.web.default.svc.cluster.local A 10.0.0.1', 'web-2.web.default.svc.cluster.local A 10.0.0.2', 'web-2.web.default.svc.cluster.local AAAA fd00::2'],
  );
  t.same(data(ask(z, '_dns._udp.dns.infra.cluster.local', 'SRV')!.answers), [{ priority: 0, weight: 10, port: 53, target: 'dns-1.dns.infra.svc.cluster.local' }]);
  t.equal(ask(z, '_http._udp.web.default.cluster.local', 'SRV')!.rcode, 'NXDOMAIN', 'wrong protocol: no such name');
  t.equal(ask(z, '_nope._tcp.web.default.cluster.local', 'SRV')!.rcode, 'NXDOMAIN');
  t.equal(ask(z, '_http._tcp.web.default.cluster.local', 'A')!.rcode, 'NOERROR', 'SRV name asked for A: NODATA');
  t.equal(ask(z, '_tcp.web.default.cluster.local', 'SRV')!.rcode, 'NOERROR', '_tcp node exists (empty non-terminal)');
});

t.test('SRV of the service name lists all named ports of all endpoints', async (t) => {
  const a = ask(zone(web), 'web.default.svc.cluster.local', 'SRV')!;
  t.same(data(a.answers).map((d) => `${(d as { target: string }).target}:${(d as { port: number }).port}`).sort(), [
    'web-1.web.default.svc.cluster.local:8080',
    'web-1.web.default.svc.cluster.local:9090',
    'web-2.web.default.svc.cluster.local:8080',
  ]);
});

t.test('PTR of endpoint addresses (v4 and v6); unknown addresses are not ours', async (t) => {
  const z = zone(web);
  t.same(data(ask(z, '1.0.0.10.in-addr.arpa', 'PTR')!.answers), ['web-1.web.default.svc.cluster.local']);
  const v6 = '2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa';
  t.same(data(ask(z, v6, 'PTR')!.answers), ['web-2.web.default.svc.cluster.local']);
  t.equal(ask(z, '9.9.9.10.in-addr.arpa', 'PTR'), null, 'forwarded');
  t.equal(ask(z, '1.0.0.10.in-addr.arpa', 'A'), null);
});

t.test('apex SOA and NS, ns.dns glue, dns-version TXT', async (t) => {
  const z = zone(web);
  const soa = ask(z, 'cluster.local', 'SOA')!;
  t.match(data(soa.answers)[0], { mname: 'ns.dns.cluster.local', rname: 'hostmaster.cluster.local', serial: 1234, minimum: 7 });
  const ns = ask(z, 'cluster.local', 'NS')!;
  t.same(data(ns.answers), ['ns.dns.cluster.local']);
  t.same(ns.additionals.map((r) => [r.name, (r as { data: string }).data]), [['ns.dns.cluster.local', '10.223.0.10']]);
  t.same(data(ask(z, 'ns.dns.cluster.local')!.answers), ['10.223.0.10']);
  t.same(data(ask(z, 'dns-version.cluster.local', 'TXT')!.answers), [['1.1.0']]);
});

t.test('NXDOMAIN vs NODATA, both with the SOA and the negative TTL', async (t) => {
  const z = zone(web);
  const nx = ask(z, 'nope.default.cluster.local')!;
  t.equal(nx.rcode, 'NXDOMAIN');
  t.same(nx.authorities.map((r) => [r.type, (r as { ttl: number }).ttl]), [['SOA', 7]]);
  for (const [name, type] of [['web.default.cluster.local', 'TXT'], ['dns.infra.cluster.local', 'AAAA'], ['default.cluster.local', 'A'], ['default.svc.cluster.local', 'A'], ['svc.cluster.local', 'A'], ['cluster.local', 'A']]) {
    const a = ask(z, name!, type)!;
    t.equal(a.rcode, 'NOERROR', `${name} ${type}`);
    t.equal(a.answers.length, 0);
    t.equal(a.authorities[0]!.type, 'SOA');
  }
  t.equal(ask(z, 'nosuchns.cluster.local')!.rcode, 'NXDOMAIN');
  t.equal(ask(z, 'a.b.c.d.e.cluster.local')!.rcode, 'NXDOMAIN');
});

t.test('names are matched case-insensitively and echoed as asked', async (t) => {
  const a = ask(zone(web), 'WeB.DeFault.Cluster.LOCAL')!;
  t.same(data(a.answers).sort(), ['10.0.0.1', '10.0.0.2']);
  t.ok(a.answers.every((r) => r.name === 'WeB.DeFault.Cluster.LOCAL'));
});

t.test('names outside the zone are not answered (forwarded)', async (t) => {
  t.equal(ask(zone(web), 'example.com'), null);
  t.equal(ask(zone(web), 'notcluster.local'), null);
});

t.test('TTL: the per-service override wins', async (t) => {
  const z = zone([ep('web', '10.0.0.1', { ttl: 0 }), ep('db', '10.0.0.2')]);
  t.equal((ask(z, 'web.default.cluster.local')!.answers[0] as { ttl: number }).ttl, 0);
  t.equal((ask(z, 'db.default.cluster.local')!.answers[0] as { ttl: number }).ttl, 5);
  const other = zone([ep('db', '10.0.0.2')], { settings: { ttl: 30 } });
  t.equal((ask(other, 'db.default.cluster.local')!.answers[0] as { ttl: number }).ttl, 30);
});

t.test('unhealthy endpoints are left out; none healthy is NODATA; fail-open serves all', async (t) => {
  const eps = [ep('web', '10.0.0.1'), ep('web', '10.0.0.2', { healthy: false })];
  t.same(data(ask(zone(eps), 'web.default.cluster.local')!.answers), ['10.0.0.1']);
  const down = [ep('web', '10.0.0.1', { healthy: false }), ep('web', '10.0.0.2', { healthy: false })];
  const nodata = ask(zone(down), 'web.default.cluster.local')!;
  t.equal(nodata.rcode, 'NOERROR');
  t.same(nodata.answers, []);
  t.equal(nodata.authorities[0]!.type, 'SOA');
  t.same(data(ask(zone(down, { settings: { failOpen: true } }), 'web.default.cluster.local')!.answers).sort(), ['10.0.0.1', '10.0.0.2']);
  t.same(data(ask(zone(eps, { settings: { failOpen: true } }), 'web.default.cluster.local')!.answers), ['10.0.0.1'], 'fail-open only when none is healthy');
});

t.test('rotation: the query ID picks the first record', async (t) => {
  const eps = [ep('web', '10.0.0.1', { id: 'a' }), ep('web', '10.0.0.2', { id: 'b' }), ep('web', '10.0.0.3', { id: 'c' })];
  const z = zone(eps);
  const firsts = [0, 1, 2, 3].map((rotation) => data(ask(z, 'web.default.cluster.local', 'A', { local: true, rotation })!.answers)[0]);
  t.same(firsts, ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.1']);
  t.same(data(ask(z, 'web.default.cluster.local', 'A', { local: true, rotation: 1 })!.answers), ['10.0.0.2', '10.0.0.3', '10.0.0.1'], 'the rest follows in order');
});

t.test('prefer-local: this host\'s endpoints first for local clients only', async (t) => {
  const local = [ep('web', '10.0.0.1', { id: 'l' })];
  const remote = [ep('web', '10.9.0.1', { id: 'r1' }), ep('web', '10.9.0.2', { id: 'r2' })];
  const z = zone(local, { remote });
  for (const rotation of [0, 1, 2]) {
    t.equal(data(ask(z, 'web.default.cluster.local', 'A', { local: true, rotation })!.answers)[0], '10.0.0.1', `rotation ${rotation}`);
  }
  t.not(data(ask(z, 'web.default.cluster.local', 'A', { local: false, rotation: 1 })!.answers)[0], '10.0.0.1', 'off-host client: plain rotation');
  const off = zone(local, { remote, settings: { preferLocal: false } });
  t.not(data(ask(off, 'web.default.cluster.local', 'A', { local: true, rotation: 1 })!.answers)[0], '10.0.0.1', '--no-prefer-local');
});

t.test('ANY gets the RFC 8482 answer for names that exist, NXDOMAIN for others', async (t) => {
  const a = ask(zone(web), 'web.default.cluster.local', 'ANY')!;
  t.same(a.answers.map((r) => [r.type, r.name, (r as { data: unknown }).data]), [['HINFO', 'web.default.cluster.local', { cpu: 'RFC8482', os: '' }]]);
  t.equal(ask(zone(web), 'nope.default.cluster.local', 'ANY')!.rcode, 'NXDOMAIN');
  const full = ask(zone(web), 'web.default.cluster.local', 'ANY', { local: true, fullAny: true })!;
  t.same([...new Set(full.answers.map((r) => r.type))].sort(), ['A', 'AAAA', 'SRV'], 'the table compiler still sees every record');
});

t.test('vip mode answers the VIP once the load balancer allocated one', async (t) => {
  const z = zone([ep('web', '10.0.0.1', { mode: 'vip' })]);
  const view = (z.source as Registry).service('default', 'web')!;
  view.vip = '10.223.5.5';
  t.same(data(ask(z, 'web.default.cluster.local')!.answers), ['10.223.5.5']);
});
