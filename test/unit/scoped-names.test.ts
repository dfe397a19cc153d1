import t from 'tap';
import { ContainerNames, maybeContainerName } from '../../src/dns/scoped.js';

// aardvark-compatible container names, scoped by the querier's network and, for rootless users' containers, by who asks.

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

t.test("rootless users' names: answered only to that user's queries, never by address", async (t) => {
  // Root's network "front" 10.1.0.0/24 has web at .2; user 1000 has a network of the same name and
  // subnet with its own web at .5 (its networks live in its own namespace), and user 1001 another.
  const n = new ContainerNames();
  n.setNetworks([{ name: 'front', subnets: ['10.1.0.0/24'] }]);
  n.setContainers([{ names: ['web'], networks: { front: ['10.1.0.2'] } }]);
  const changes: Array<boolean | undefined> = [];
  n.onChange = (hostView) => changes.push(hostView);
  t.equal(n.ownersKnown, false);
  n.setOwnerContainers(1000, [
    { names: ['web', 'www'], networks: { front: ['10.1.0.5'] } },
    { names: ['db'], networks: { back: ['10.9.0.3'], front: ['10.1.0.3'] } },
  ]);
  n.setOwnerContainers(1001, [{ names: ['cache'], networks: { front: ['10.1.0.7'] } }]);
  t.equal(n.ownersKnown, true);
  t.same(changes, [true, false], "the first owner changes what this host's addresses see; the second only names");
  const data = (x: ReturnType<ContainerNames['answer']>) => x?.answers.map((r) => (r as { data: unknown }).data) ?? null;
  const from = (name: string, o: { host?: boolean; owner?: number }, type = 'A') => data(n.answer({ name, type }, '192.0.2.1', o));

  t.same(from('web', { host: true, owner: 1000 }), ['10.1.0.5'], "user 1000 gets its own web, not root's on the same-named, same-subnet network");
  t.same(from('www.dns.podman', { host: true, owner: 1000 }), ['10.1.0.5'], 'aliases and dns.podman too');
  t.same(from('db', { host: true, owner: 1000 }), ['10.9.0.3'], 'every network of the user; the first by name that has the name answers');
  t.same(from('3.0.9.10.in-addr.arpa', { host: true, owner: 1000 }, 'PTR'), ['db.'], 'PTR of its own container IP');
  t.equal(from('cache', { host: true, owner: 1000 }), null, "never user 1001's");
  t.same(from('cache', { host: true, owner: 1001 }), ['10.1.0.7']);
  t.equal(from('web', { host: true, owner: 1001 }), null, "user 1001 has no web: it does not get root's or user 1000's");
  t.same(from('web', { host: true, owner: 0 }), ['10.1.0.2'], 'root on this host: root\'s');
  t.same(from('web', { host: true, owner: 4242 }), ['10.1.0.2'], "a uid whose Podman is not followed: this host's view (root's)");
  t.same(from('web', { host: true }), ['10.1.0.2'], 'owner unknown: the same');
  t.same(data(n.answer({ name: 'web', type: 'A' }, '10.1.0.9')), ['10.1.0.2'], "a root container on front (by its address): root's web");
  t.equal(n.answer({ name: 'cache', type: 'A' }, '10.1.0.9'), null, "a user's names are never given by source address");
  t.equal(data(n.answer({ name: '5.0.1.10.in-addr.arpa', type: 'PTR' }, '10.1.0.9')), null, "nor the PTR of a user's container IP");

  n.setOwnerContainers(1000, [{ names: ['web'], networks: { front: ['10.1.0.5'] } }]);
  t.equal(from('db', { host: true, owner: 1000 }), null, 'a container gone from the user is gone from its answers');
  n.setOwnerContainers(1000, []);
  t.equal(from('web', { host: true, owner: 1000 }), null, "a followed user without containers gets none (not root's)");
  changes.length = 0;
  n.setOwnerContainers(1000, null);
  n.setOwnerContainers(1001, null);
  n.setOwnerContainers(1001, null);
  t.equal(n.ownersKnown, false);
  t.same(changes, [false, true], 'the last owner gone: this host sees every network by address again; an unknown owner changes nothing');
  t.same(from('web', { host: true, owner: 1000 }), ['10.1.0.2'], 'no longer followed: the host view');
});

t.test('maybeContainerName: the shapes container names and their PTRs take', async (t) => {
  t.ok(maybeContainerName('web'));
  t.ok(maybeContainerName('Web.'));
  t.ok(maybeContainerName('web.dns.podman.'));
  t.ok(maybeContainerName('5.0.1.10.in-addr.arpa'));
  t.notOk(maybeContainerName('example.com'));
  t.notOk(maybeContainerName('web.default.cluster.local'));
  t.notOk(maybeContainerName('.'));
});
