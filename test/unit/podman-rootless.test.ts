import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeContainer, endpointsWithin, type PodmanOrigin } from '../../src/podman/endpoints.js';
import type { ContainerInspect, NetworkInfo } from '../../src/podman/types.js';
import { reachable } from '../../src/registry/addresses.js';
import type { NodeState } from '../../src/registry/types.js';
import { checkable } from '../../src/health/checker.js';
import { ROOT } from '../helpers/daemon.js';

// Rootless containers (inspect JSON of a real rootless Podman 4.3 slirp4netns container with
// `-p 18299:80`, test/fixtures/podman/inspect-rootless-slirp.json) → what every host is told.

const fixture = <T>(name: string): T => JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'podman', name), 'utf8')) as T;
const networks = new Map(fixture<NetworkInfo[]>('networks.json').map((n) => [n.name, n]));
const alice: PodmanOrigin = { owner: 'alice', rootless: true, qualify: true };
const node = { address: '192.0.2.10', origin: alice };
const NOW = 1_700_000_000_000;
const here: NodeState = { id: 'n1', name: 'host1', address: '192.0.2.10', incarnation: 1, version: 1, endpoints: [] };
const view = (localNode: string) => ({ localNode, routableContainerIps: true });

t.test('slirp4netns with -p: the node address and the published port, for every host and this one', async (t) => {
  const f = describeContainer(fixture<ContainerInspect>('inspect-rootless-slirp.json'), networks, node, NOW);
  t.match(f.endpoint, {
    id: 'rl-web.alice',
    service: 'web',
    addresses: ['192.0.2.10'],
    explicit: true,
    ports: { p80: { port: 18299, protocol: 'tcp' } },
    container: { name: 'rl-web', owner: 'alice' },
  });
  t.equal(f.endpoint!.ports.p80!.hostPort, undefined, 'the published port is the port: SRV carries it everywhere');
  t.equal(f.endpoint!.container!.isolated, undefined);
  t.same(f.problems, []);
  for (const local of ['n1', 'n2']) t.same(reachable(f.endpoint!, here, view(local)), { direct: true, addresses: ['192.0.2.10'], ports: { p80: { port: 18299, protocol: 'tcp' } } }, `seen from ${local}`);
  t.equal(checkable(f.endpoint!), true, 'health-checked at the node address and published port');
});

t.test('pasta with -p: the same as slirp4netns (the node address and the published port)', async (t) => {
  // Podman 4.4 and later name the mode "pasta"; its inspect has no container address either (pasta
  // copies the host's). Debian 12's Podman 4.3 has no pasta mode, so this is the slirp4netns
  // fixture with the mode renamed; test/e2e/rootless.test.ts runs the DNS path through pasta itself.
  const c = fixture<ContainerInspect>('inspect-rootless-slirp.json');
  c.HostConfig!.NetworkMode = 'pasta';
  const f = describeContainer(c, networks, node, NOW);
  t.match(f.endpoint, { addresses: ['192.0.2.10'], explicit: true, ports: { p80: { port: 18299, protocol: 'tcp' } }, container: { owner: 'alice' } });
  t.same(f.problems, []);
  t.same(reachable(f.endpoint!, here, view('n2')), { direct: true, addresses: ['192.0.2.10'], ports: { p80: { port: 18299, protocol: 'tcp' } } }, 'another host gets the node address');
  t.equal(checkable(f.endpoint!), true);
});

t.test('a labelled port that is not published is left out and said so', async (t) => {
  const c = fixture<ContainerInspect>('inspect-rootless-slirp.json');
  c.Config!.Labels = { 'podman-swarm.service': 'web', 'podman-swarm.port.http': '80/tcp', 'podman-swarm.port.admin': '9000/tcp' };
  const f = describeContainer(c, networks, node, NOW);
  t.same(f.endpoint!.ports, { http: { port: 18299, protocol: 'tcp' } });
  t.match(f.problems, [/port admin \(9000\/tcp\) is not published/]);
});

t.test('without a published port: registered, isolated, not served to other hosts, not checked', async (t) => {
  const c = fixture<ContainerInspect>('inspect-rootless-slirp.json');
  c.NetworkSettings!.Ports = {};
  const f = describeContainer(c, networks, node, NOW);
  t.ok(f.endpoint, 'registered');
  t.match(f.endpoint, { explicit: false, addresses: [], container: { owner: 'alice', isolated: true } });
  t.match(f.problems, [/rootless container of alice without a published port: reachable only inside alice's network namespace/]);
  t.same(f.endpoint!.problems, undefined, 'label problems only travel; the status shows this one');
  t.equal(reachable(f.endpoint!, here, view('n2')), null, 'another host: not answered, even with --routable-container-ips');
  t.equal(checkable(f.endpoint!), false, 'not checkable: a check would fail and withdraw it everywhere');
});

t.test('a rootless bridge network: the container IP is never what others get', async (t) => {
  const c = fixture<ContainerInspect>('inspect-web.json');
  const withPort = describeContainer(c, networks, node, NOW);
  t.match(withPort.endpoint, { addresses: ['192.0.2.10'], explicit: true, ports: { http: { port: 18080, protocol: 'tcp' } } });
  c.NetworkSettings!.Ports = {};
  const without = describeContainer(c, networks, node, NOW);
  t.match(without.endpoint, { addresses: ['10.89.0.2'], explicit: false, container: { isolated: true } });
  t.equal(reachable(without.endpoint!, here, view('n2')), null);
});

t.test('a port published on 127.0.0.1 only does not reach other hosts: left out, said so', async (t) => {
  const c = fixture<ContainerInspect>('inspect-rootless-slirp.json');
  c.NetworkSettings!.Ports = { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '18299' }] };
  const f = describeContainer(c, networks, node, NOW);
  t.match(f.endpoint, { container: { isolated: true } });
  t.match(f.problems, [/port 80\/tcp is published on 127\.0\.0\.1 only/, /without a published port/]);
});

t.test("root's containers are unchanged: ids unqualified, no owner", async (t) => {
  const f = describeContainer(fixture<ContainerInspect>('inspect-web.json'), networks, { address: '192.0.2.10' }, NOW);
  t.match(f.endpoint, { id: 'p3ex-web', addresses: ['10.89.0.2'], explicit: false, ports: { http: { port: 80, hostPort: 18080 } } });
  t.equal(f.endpoint!.container!.owner, undefined);
});

t.test('same service from root and a user: both endpoints; the same id twice: the second is named', async (t) => {
  const rootF = describeContainer(fixture<ContainerInspect>('inspect-web.json'), networks, { address: '192.0.2.10' }, NOW);
  const userF = describeContainer(fixture<ContainerInspect>('inspect-rootless-slirp.json'), networks, node, NOW);
  const both = endpointsWithin([rootF, userF], 10);
  t.same(both.endpoints.map((e) => `${e.service}/${e.id}`), ['web/p3ex-web', 'web/rl-web.alice']);
  const again = endpointsWithin([userF, { ...userF }], 10);
  t.equal(again.endpoints.length, 1);
  t.equal(again.duplicate.length, 1);
});
