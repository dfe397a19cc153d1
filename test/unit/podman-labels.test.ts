import t from 'tap';
import { parseLabels, toLabel } from '../../src/podman/labels.js';

// SPEC §4 label table: each label, the compose defaults, and bad values (dropped, reported).

t.test('every label', async (t) => {
  const s = parseLabels({
    'podman-swarm.service': 'Web',
    'podman-swarm.namespace': 'shop',
    'podman-swarm.port.http': '8080',
    'podman-swarm.port.dns': '53/udp',
    'podman-swarm.mode': 'vip',
    'podman-swarm.health': 'http:/healthz',
    'podman-swarm.weight': '30',
    'podman-swarm.ttl': '30s',
    'podman-swarm.enable': 'false',
  });
  t.same(s, {
    service: 'web',
    namespace: 'shop',
    ports: { http: { port: 8080, protocol: 'tcp' }, dns: { port: 53, protocol: 'udp' } },
    mode: 'vip',
    health: 'http:/healthz',
    weight: 30,
    ttl: 30,
    enable: false,
    labelled: true,
    problems: [],
  });
});

t.test('compose labels are defaults; explicit labels win', async (t) => {
  const compose = { 'com.docker.compose.service': 'api_server', 'com.docker.compose.project': 'My_Shop' };
  t.match(parseLabels(compose), { composeService: 'api-server', namespace: 'my-shop', labelled: false });
  t.match(parseLabels({ 'io.podman.compose.service': 'db', 'io.podman.compose.project': 'p' }), { composeService: 'db', namespace: 'p' });
  t.match(parseLabels({ ...compose, 'podman-swarm.namespace': 'other' }), { namespace: 'other' });
});

t.test('bad values: the field is left out and the problem named', async (t) => {
  const s = parseLabels({
    'podman-swarm.service': 'has space',
    'podman-swarm.weight': '500',
    'podman-swarm.port.http': 'eighty',
    'podman-swarm.port.Bad_Name': '80',
    'podman-swarm.mode': 'round-robin',
    'podman-swarm.health': 'ping',
    'podman-swarm.ttl': '-1',
    'podman-swarm.enable': 'yes',
    'podman-swarm.colour': 'blue',
  });
  t.equal(s.service, undefined);
  t.equal(s.labelled, true, 'still a labelled container');
  t.same(s.ports, {});
  t.equal(s.problems.length, 9);
  t.match(s.problems.join('\n'), /podman-swarm\.weight="500": "500" is not a weight/);
  t.match(s.problems.join('\n'), /podman-swarm\.colour: unknown podman-swarm label/);
});

t.test('no labels at all', async (t) => {
  t.same(parseLabels(null), { ports: {}, labelled: false, problems: [] });
});

t.test('toLabel', async (t) => {
  t.equal(toLabel('My_Container.1'), 'my-container-1');
  t.equal(toLabel('---'), undefined);
  t.equal(toLabel('x'.repeat(70)), 'x'.repeat(63));
});
