import t from 'tap';
import { ContainerNames } from '../../src/dns/scoped.js';

// aardvark-compatible container names, scoped by the querier's network (SPEC §3).

const names = new ContainerNames();
names.setNetworks([
  { name: 'front', subnets: ['10.1.0.0/24'] },
  { name: 'back', subnets: ['10.2.0.0/24', 'fd00:2::/64'] },
]);
names.setContainers([
  { names: ['web', 'www'], networks: { front: ['10.1.0.2'], back: ['10.2.0.2', 'fd00:2::2'] } },
  { names: ['db'], networks: { back: ['10.2.0.3'] } },
]);

const a = (name: string, client: string, type = 'A') => names.answer({ name, type }, client);

t.test('name, alias and <name>.dns.podman, TTL 0', async (t) => {
  t.match(a('web', '10.1.0.9'), { rcode: 'NOERROR', authoritative: true, answers: [{ type: 'A', name: 'web', ttl: 0, data: '10.1.0.2' }] });
  t.match(a('WWW.', '10.1.0.9')!.answers, [{ data: '10.1.0.2' }], 'alias, any case, trailing dot');
  t.match(a('web.dns.podman', '10.1.0.9')!.answers, [{ data: '10.1.0.2' }]);
});

t.test('scoped: only containers and addresses of the networks the querier is on', async (t) => {
  t.equal(a('db', '10.1.0.9'), null, 'db is not on front');
  t.match(a('db', '10.2.0.9')!.answers, [{ data: '10.2.0.3' }]);
  t.same(a('web', '10.2.0.9')!.answers.map((r) => (r as { data: unknown }).data), ['10.2.0.2'], 'only its back address');
  t.same(a('web', '10.2.0.9', 'AAAA')!.answers.map((r) => (r as { data: unknown }).data), ['fd00:2::2']);
  t.equal(a('web', '192.168.1.1'), null, 'not from a Podman network');
  t.equal(a('web.example', '10.1.0.9'), null, 'dotted names are not container names');
});

t.test('an existing name asked for another type: NODATA', async (t) => {
  t.match(a('db', '10.2.0.9', 'MX'), { rcode: 'NOERROR', answers: [] });
});

t.test('PTR of a container IP on a shared network: its names', async (t) => {
  t.same(a('3.0.2.10.in-addr.arpa', '10.2.0.9', 'PTR')!.answers.map((r) => (r as { data: unknown }).data), ['db.']);
  t.same(a('2.0.1.10.in-addr.arpa', '10.1.0.9', 'PTR')!.answers.map((r) => (r as { data: unknown }).data), ['web.', 'www.']);
  t.equal(a('3.0.2.10.in-addr.arpa', '10.1.0.9', 'PTR'), null, 'not from another network');
});

t.test('NODATA under dns.podman carries the dns.podman SOA; the bare name has none to give', async (t) => {
  const v4only = a('db.dns.podman', '10.2.0.9', 'AAAA')!;
  t.match(v4only, { rcode: 'NOERROR', answers: [], authorities: [{ type: 'SOA', name: 'dns.podman', ttl: 0 }] });
  t.same(a('db', '10.2.0.9', 'AAAA')!.authorities, [], 'no zone above a bare name');
});

t.test('ANY: the RFC 8482 answer for a known name', async (t) => {
  t.match(a('web', '10.1.0.9', 'ANY')!.answers, [{ type: 'HINFO', name: 'web', data: { cpu: 'RFC8482', os: '' } }]);
  t.equal(a('db', '10.1.0.9', 'ANY'), null, 'scoping still applies');
});

t.test('this host itself sees the containers of every network', async (t) => {
  const host = (name: string, type = 'A') => names.answer({ name, type }, '10.223.0.10', { host: true });
  t.match(host('db')!.answers, [{ data: '10.2.0.3' }], 'db is on back only');
  t.match(host('web')!.answers, [{ data: '10.1.0.2' }], 'the first network that has the name answers');
  t.same(host('3.0.2.10.in-addr.arpa', 'PTR')!.answers.map((r) => (r as { data: unknown }).data), ['db.']);
  t.equal(names.answer({ name: 'db', type: 'A' }, '10.223.0.10'), null, 'the same address not marked as this host: nothing');
});
