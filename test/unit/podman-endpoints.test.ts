import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeContainer, endpointsWithin } from '../../src/podman/endpoints.js';
import { gatewaysToServe } from '../../src/podman/source.js';
import type { ContainerInspect, NetworkInfo } from '../../src/podman/types.js';
import { ROOT } from '../helpers/daemon.js';

// Inspect JSON of real Podman 4.3 containers (test/fixtures/podman/) → endpoints and names.

const fixture = <T>(name: string): T => JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'podman', name), 'utf8')) as T;
const networks = new Map(fixture<NetworkInfo[]>('networks.json').map((n) => [n.name, n]));
const node = { address: '192.0.2.10' };
const NOW = 1_700_000_000_000;

t.test('labelled container: service, named port with its host port, podman healthcheck, bad weight reported', async (t) => {
  const f = describeContainer(fixture<ContainerInspect>('inspect-web.json'), networks, node, NOW);
  t.match(f.endpoint, {
    id: 'p3ex-web',
    namespace: 'default',
    service: 'web',
    hostname: 'p3ex-web',
    addresses: ['10.89.0.2'],
    explicit: false,
    ports: { http: { port: 80, protocol: 'tcp', hostPort: 18080 } },
    weight: 10,
    health: 'podman',
    source: 'podman',
    container: { name: 'p3ex-web', network: 'p3exnet' },
  });
  t.match(f.problems, [/podman-swarm\.weight="500"/]);
  t.same(f.endpoint!.problems, f.problems, 'the problem travels with the endpoint (status, API)');
  t.equal(f.podmanHealth, 'starting');
  t.same(f.names, { names: ['p3ex-web', 'b5f75708e860'], networks: { p3exnet: ['10.89.0.2'] } });
});

t.test('unlabelled container on an auto-registered network: the compose labels name it', async (t) => {
  const f = describeContainer(fixture<ContainerInspect>('inspect-plain.json'), networks, node, NOW);
  t.match(f.endpoint, { service: 'api', namespace: 'shop', addresses: ['10.89.0.3'], ports: {}, health: 'tcp' });
  t.same(f.names.names, ['p3ex-plain', 'p3alias', '855d586b3c34'], 'name and aliases');
});

t.test('without compose labels the container name is the service; published ports are named p<port>', async (t) => {
  const c = fixture<ContainerInspect>('inspect-plain.json');
  c.Config!.Labels = {};
  c.NetworkSettings!.Ports = { '80/tcp': [{ HostIp: '', HostPort: '8080' }] };
  t.match(describeContainer(c, networks, node, NOW).endpoint, { service: 'p3ex-plain', namespace: 'default', ports: { p80: { port: 80, protocol: 'tcp', hostPort: 8080 } } });
});

t.test('opt-out, no auto-registration, not running', async (t) => {
  const c = fixture<ContainerInspect>('inspect-plain.json');
  c.Config!.Labels = { 'podman-swarm.enable': 'false' };
  t.equal(describeContainer(c, networks, node, NOW).endpoint, null, 'podman-swarm.enable=false');
  const plain = fixture<ContainerInspect>('inspect-plain.json');
  t.equal(describeContainer(plain, new Map(), node, NOW).endpoint, null, 'network not labelled');
  const stopped = fixture<ContainerInspect>('inspect-web.json');
  stopped.State!.Running = false;
  const f = describeContainer(stopped, networks, node, NOW);
  t.equal(f.endpoint, null);
  t.equal(f.running, false);
});

t.test('host network: the node address, explicit', async (t) => {
  const f = describeContainer(fixture<ContainerInspect>('inspect-host.json'), networks, node, NOW);
  t.match(f.endpoint, { service: 'hostsvc', addresses: ['192.0.2.10'], explicit: true });
});

t.test('macvlan: the container IP, routable', async (t) => {
  const c = fixture<ContainerInspect>('inspect-web.json');
  const nets = new Map(networks);
  nets.set('p3exnet', { ...networks.get('p3exnet')!, driver: 'macvlan' });
  t.match(describeContainer(c, nets, node, NOW).endpoint, { addresses: ['10.89.0.2'], explicit: true });
});

t.test('pod member / --network container:X: the addresses of the container it shares with', async (t) => {
  const infra = fixture<ContainerInspect>('inspect-web.json');
  const member = fixture<ContainerInspect>('inspect-host.json');
  member.HostConfig!.NetworkMode = `container:${infra.Id}`;
  member.NetworkSettings!.Networks = { p3exnet: { IPAddress: '', Aliases: ['x'] } };
  const f = describeContainer(member, networks, node, NOW, (id) => (id === infra.Id ? infra : undefined));
  t.match(f.endpoint, { service: 'hostsvc', addresses: ['10.89.0.2'], explicit: false, ports: {} });
  const alone = describeContainer(member, networks, node, NOW);
  t.equal(alone.endpoint, null, 'not registered while the other one is unknown');
});

t.test('a labelled container with no address: a warning, no endpoint', async (t) => {
  const c = fixture<ContainerInspect>('inspect-web.json');
  c.NetworkSettings!.Networks = {};
  c.HostConfig!.NetworkMode = 'none';
  const f = describeContainer(c, networks, node, NOW);
  t.equal(f.endpoint, null);
  t.match(f.problems, [/weight/, /container p3ex-web has no address \(network mode none\): not registered/]);
});

t.test('garbage inspect JSON never throws', async (t) => {
  const f = describeContainer({ Id: 'abcdef1234567890', State: { Running: true }, Config: { Labels: { 'podman-swarm.service': 'x' } }, NetworkSettings: { Networks: { n: { IPAddress: 'nope', Aliases: null } } } }, networks, node, NOW);
  t.equal(f.endpoint, null);
  t.match(f.problems, [/no address/]);
});

t.test('gateways served: auto-registered bridges without Podman DNS', async (t) => {
  t.same(gatewaysToServe(networks), ['10.89.0.1']);
  const withDns = new Map([...networks].map(([k, n]) => [k, { ...n, dns_enabled: true }]));
  t.same(gatewaysToServe(withDns), [], 'aardvark owns the gateway of DNS-enabled networks');
});

t.test('unusable container addresses are skipped with a warning; ports beyond the limit are dropped', async (t) => {
  const c = fixture<ContainerInspect>('inspect-web.json');
  const net = c.NetworkSettings!.Networks!.p3exnet!;
  net.GlobalIPv6Address = 'fe80::1%eth0';
  const f = describeContainer(c, networks, node, NOW);
  t.same(f.endpoint!.addresses, ['10.89.0.2'], 'the scoped address is not an endpoint address');
  t.match(f.problems, [/weight/, /address fe80::1%eth0 on network p3exnet is a scoped IPv6 address.*: skipped/]);
  net.IPAddress = '0.0.0.0';
  net.GlobalIPv6Address = '';
  const none = describeContainer(c, networks, node, NOW);
  t.equal(none.endpoint, null);
  t.match(none.problems, [/weight/, /address 0\.0\.0\.0 .* unspecified.*skipped/, /has no address/]);

  const many = fixture<ContainerInspect>('inspect-web.json');
  for (let i = 0; i < 5; i++) many.Config!.Labels![`podman-swarm.port.p${i}`] = `${1000 + i}/tcp`;
  const trimmed = describeContainer(many, networks, { ...node, maxPorts: 3 }, NOW);
  t.equal(Object.keys(trimmed.endpoint!.ports).length, 3);
  t.match(trimmed.problems, [/weight/, /6 ports, more than --max-ports-per-endpoint 3: .* skipped/]);
});

t.test('at most --max-endpoints-per-service endpoints per service from containers; the rest are named', async (t) => {
  const web = (name: string) => {
    const c = fixture<ContainerInspect>('inspect-web.json');
    c.Name = `/${name}`;
    return describeContainer(c, networks, node, NOW);
  };
  const plain = describeContainer(fixture<ContainerInspect>('inspect-plain.json'), networks, node, NOW);
  const all = [web('w1'), plain, web('w2'), web('w3')];
  const { endpoints, over } = endpointsWithin(all, 2);
  t.same(endpoints.map((e) => `${e.service}/${e.id}`), ['web/w1', 'api/p3ex-plain', 'web/w2'], 'the first two of web, and api');
  t.same(over.map((c) => c.name), ['w3']);
  t.equal(endpointsWithin(all, 3).over.length, 0);
});
