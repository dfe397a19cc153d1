import t from 'tap';
import { explain, malformedName, type ExplainInputs } from '../../src/dns/explain.js';
import { answerQuestion, type Zone, type ZoneSettings } from '../../src/dns/records.js';
import { Registry } from '../../src/registry/registry.js';
import type { Endpoint } from '../../src/registry/types.js';
import { ep, node } from '../helpers/registry.js';

// `explain` against a real registry with this host's and another host's endpoints: every reason
// an endpoint is in or out, and the endpoints it calls "in" are exactly the ones the real answer
// path answers with.

const SETTINGS: ZoneSettings = { domain: 'cluster.local', ttl: 5, negativeTtl: 7, nameserver: '10.223.0.10', serial: 1, failOpen: false, preferLocal: true };

function zone(local: Endpoint[], remote: Endpoint[], settings: Partial<ZoneSettings> = {}): Zone {
  const r = new Registry({ localNode: 'me', routableContainerIps: false, defaultMode: 'dnsrr' });
  r.apply(node('me', 1, local));
  r.apply(node('other', 1, remote, { address: '192.0.2.99' }));
  return { settings: { ...SETTINGS, ...settings }, source: r };
}

const http = { http: { port: 8080, protocol: 'tcp' as const } };
const inputs = (z: Zone, o: Partial<ExplainInputs> = {}): ExplainInputs => ({
  zone: z,
  client: '127.0.0.1',
  recursionAllowed: (ip) => ip.startsWith('127.'),
  isLocal: (ip) => ip.startsWith('127.'),
  forwardAllowed: () => true,
  forwardAllow: [],
  cached: () => false,
  upstreams: ['192.0.2.53:53', '192.0.2.54:53'],
  ...o,
});

const world = (settings: Partial<ZoneSettings> = {}) =>
  zone(
    [
      ep('web', '10.88.0.2', { id: 'l1', hostname: 'web-l1', ports: http }),
      ep('web', '10.88.0.3', { id: 'l2', hostname: 'web-l2', ports: http, healthy: false, health: 'tcp' }),
    ],
    [
      // A container on the other host: its own IP is not reachable from here, its published port is.
      ep('web', '10.89.0.2', { id: 'r1', hostname: 'web-r1', explicit: false, ports: { http: { port: 8080, protocol: 'tcp', hostPort: 18080 } } }),
      ep('web', '10.89.0.3', { id: 'r2', hostname: 'web-r2', explicit: false, ports: http }),
    ],
    settings,
  );

const answered = (z: Zone, name: string, type: string, local: boolean) =>
  (answerQuestion({ name, type, class: 'IN' }, z, { local })?.answers ?? []).map((a) => String((a as { data: unknown }).data)).sort();

t.test('a service: each endpoint in or out, with the reason; "in" is what the answer path answers', async (t) => {
  const z = world();
  const e = explain(inputs(z), 'Web.Default.SVC.cluster.local.', 'A');
  t.match(e.parse, { kind: 'service', namespace: 'default', service: 'web' });
  const by = Object.fromEntries(e.service!.endpoints.map((p) => [p.id, p]));
  t.match(by.l1, { in_answer: true, local: true, why: /^in: healthy and reachable; listed first \(on this host, prefer-local\)/ });
  t.match(by.l2, { in_answer: false, why: /^out: unhealthy \(check tcp\)/ });
  t.match(by.r1, { in_answer: true, reachable: true, addresses: ['192.0.2.99'], why: /listed after this host/ });
  t.match(by.r2, { in_answer: false, reachable: false, why: /on node other that publishes no port/ });
  t.match(e.service!.order, /prefer-local/);
  const inAddrs = e.service!.endpoints.filter((p) => p.in_answer).flatMap((p) => p.addresses).sort();
  t.same(inAddrs, answered(z, 'web.default.svc.cluster.local', 'A', true), 'the same addresses as the real answer');
});

t.test('prefer-local does not apply to a client elsewhere; fail-open lets unhealthy ones in', async (t) => {
  const z = world();
  const far = explain(inputs(z, { client: '192.0.2.200' }), 'web.default.cluster.local', 'A');
  t.match(far.service!.order, /prefer-local does not apply: 192\.0\.2\.200/);
  t.notOk(far.service!.endpoints.some((p) => /prefer-local/.test(p.why)));

  const down = zone([ep('api', '10.0.0.1', { id: 'a1', healthy: false, health: 'tcp' })], [], { failOpen: true });
  const e = explain(inputs(down), 'api.default.cluster.local', 'A');
  t.match(e.service!.endpoints[0], { in_answer: true, why: /fail-open/ });
  t.same(answered(down, 'api.default.cluster.local', 'A', true), ['10.0.0.1']);
});

t.test('host names, SRV names, address families', async (t) => {
  const z = world();
  const host = explain(inputs(z), 'web-l1.web.default.cluster.local', 'AAAA');
  t.match(host.parse, { kind: 'host', host: 'web-l1' });
  t.match(host.service!.endpoints.find((p) => p.id === 'l1'), { in_answer: false, why: /no AAAA address/ });
  t.match(host.service!.endpoints.find((p) => p.id === 'r1'), { in_answer: false, why: /host name is web-r1, not web-l1/ });
  const srv = explain(inputs(z), '_http._tcp.web.default.cluster.local', 'SRV');
  t.match(srv.parse, { kind: 'srv', port: 'http', protocol: 'tcp' });
  const noPort = explain(inputs(z), '_metrics._tcp.web.default.cluster.local', 'SRV');
  t.match(noPort.parse, { kind: 'unknown', summary: /no port named metrics of protocol tcp/ });
});

t.test('names in the zone that name nothing say what is missing', async (t) => {
  const z = world();
  t.match(explain(inputs(z), 'nope.default.cluster.local', 'A').parse, { kind: 'unknown', summary: /no service nope in namespace default: NXDOMAIN/ });
  t.match(explain(inputs(z), 'x.web.default.cluster.local', 'A').parse, { summary: /no endpoint with host name x/ });
  t.match(explain(inputs(z), 'a.b.c.d.e.f.cluster.local', 'A').parse, { summary: /6 labels before the zone/ });
  t.match(explain(inputs(z), 'cluster.local', 'SOA').parse, { kind: 'apex' });
  t.match(explain(inputs(z), 'default.cluster.local', 'A').parse, { kind: 'empty' });
});

t.test('outside the zone: recursion, --forward-allow, cache, upstream', async (t) => {
  const z = world();
  const open = explain(inputs(z), 'www.example.org', 'A');
  t.match(open, { parse: { kind: 'outside' }, forward: { recursion: { allowed: true }, forward_allow: { allowed: true }, cache: /not cached/, upstream: '192.0.2.53:53' } });
  t.match(explain(inputs(z, { cached: () => true }), 'www.example.org', 'A').forward, { cache: /^cached/, upstream: null });
  t.match(explain(inputs(z, { client: '203.0.113.9' }), 'www.example.org', 'A').forward, { recursion: { allowed: false, why: /may not recurse/ }, cache: 'not consulted' });
  const fa = inputs(z, { forwardAllow: ['corp.example'], forwardAllowed: (n) => n.endsWith('corp.example') });
  t.match(explain(fa, 'www.example.org', 'A').forward, { forward_allow: { allowed: false, why: /not under --forward-allow corp\.example/ }, upstream: null });
  t.match(explain(inputs(z), '2.0.88.10.in-addr.arpa', 'PTR').parse, { kind: 'reverse', address: '10.88.0.2' });
  t.match(explain(inputs(z, { containerName: () => true }), 'db', 'A').parse, { kind: 'container' });
});

t.test('malformed names say what is wrong', async (t) => {
  t.equal(malformedName('web.default.cluster.local'), null);
  t.equal(malformedName('_http._tcp.web.default.cluster.local.'), null);
  t.match(malformedName(''), /empty/);
  t.match(malformedName('a..b'), /label 2 is empty/);
  t.match(malformedName(`${'x'.repeat(64)}.example`), /64 bytes long, more than DNS allows \(63\)/);
  t.match(malformedName(Array(60).fill('abcde').join('.')), /more than DNS allows \(253\)/);
  t.match(malformedName('we b.default'), /"we b" has characters/);
});
