import t from 'tap';
import { decodeBody, decodeBytes, decodeState, encodeBody, encodeCanonical, encodeState, sha256, sortEndpoints, stateHash } from '../../src/sync/delta.js';
import { endpointIn, endpointOut, idIn, idOut, StringsIn, StringsOut } from '../../src/sync/compact.js';
import { seeded } from '../../src/gossip/sim/clock.js';
import { validEndpoint } from '../../src/registry/remote.js';
import type { Endpoint, NodeState } from '../../src/registry/types.js';

// The compact encoding must give back exactly the endpoint the owner had: the receiver hashes
// what it decoded, and the owner signed the hash of what it had, so any difference (a field
// lost, an address written another way, a time off by one) would refuse every update.

const rand = seeded(31);
const r = (n: number): number => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[r(xs.length)]!;
const hex = (n: number): string => Array.from({ length: n }, () => r(16).toString(16)).join('');

// Addresses in every form they may have in a state: canonical and not (the latter travel as text).
const ADDRESSES = ['10.88.0.5', '192.0.2.255', '0.0.0.0', '255.255.255.255', 'fd00::1', '::1', '::', '2001:db8::8:800:200c:417a', '2001:db8:0:0:1:0:0:1', '2001:0db8::1', 'FD00::1', '::ffff:10.0.0.1', 'fe80::1:0:0:0', '1:0:0:2:0:0:0:3', '0:0:1::'];

function randomEndpoint(): Endpoint {
  const name = pick(['web', 'db-1', 'svc7-12-3', 'a.b_c', hex(12)]);
  const e: Endpoint = {
    id: pick([name, `${name}.alice`, hex(12)]),
    namespace: pick(['default', 'prod', 'x1']),
    service: pick(['web', 'db', 'api-v2']),
    hostname: pick(['web', 'db-1', 'other']),
    addresses: Array.from({ length: r(3) }, () => pick(ADDRESSES)),
    explicit: rand() < 0.5,
    ports: Object.fromEntries(Array.from({ length: r(3) }, (_, i) => [pick(['http', 'dns', `p${i}`]), { port: 1 + r(65535), protocol: pick(['tcp', 'udp'] as const), ...(rand() < 0.5 ? { hostPort: 1 + r(65535) } : {}) }])),
    weight: 1 + r(100),
    health: pick(['tcp', 'podman', 'none', 'http:/healthz'] as const),
    healthy: rand() < 0.5,
    source: pick(['config', 'api', 'podman'] as const),
    lastSeen: pick([0, 1_765_000_000_000 + r(100_000), 12.5, 1e20]),
  };
  if (rand() < 0.3) e.mode = pick(['dnsrr', 'vip'] as const);
  if (rand() < 0.3) e.ttl = pick([0, 5, 30.5]);
  if (rand() < 0.6) {
    const c: NonNullable<Endpoint['container']> = { id: pick([hex(64), hex(64).toUpperCase(), hex(12), 'not-hex']), name: pick([name, e.id, 'c']) };
    if (rand() < 0.5) c.network = pick(['podman', 'bridge', 'net1']);
    if (rand() < 0.3) c.owner = pick(['alice', 'bob']);
    if (rand() < 0.3) c.isolated = rand() < 0.5;
    e.container = c;
  }
  if (rand() < 0.2) e.problems = Array.from({ length: r(3) }, () => pick(['bad label', 'port skipped', '']));
  if (!validEndpoint(e)) throw new Error(`the generator made an invalid endpoint: ${JSON.stringify(e)}`);
  return e;
}

const hashOf = (e: Endpoint): string => Buffer.from(sha256(encodeCanonical(e))).toString('hex');

t.test('property: an endpoint comes back exactly (same canonical bytes), whatever it holds', async (t) => {
  for (let i = 0; i < 3000; i++) {
    const eps = Array.from({ length: 1 + r(4) }, randomEndpoint);
    const version = pick([1, 1_765_000_050_000, 2 ** 52]);
    const out = new StringsOut();
    const wire = encodeCanonical(eps.map((e) => endpointOut(e, out, version)));
    const back = decodeBytes(wire) as unknown[];
    const table = new StringsIn();
    const got = back.map((x) => endpointIn(x, table, version));
    for (let k = 0; k < eps.length; k++) {
      if (hashOf(got[k]!) !== hashOf(eps[k]!)) return t.fail(`case ${i}: ${JSON.stringify(eps[k])} came back as ${JSON.stringify(got[k])}`);
    }
  }
  t.pass('3000 messages of up to 4 endpoints');
});

t.test('a delta body and a whole state come back with the same state hash', async (t) => {
  for (let i = 0; i < 300; i++) {
    const endpoints = sortEndpoints(Array.from({ length: r(20) }, (_, k) => ({ ...randomEndpoint(), id: `e${k}` })));
    const s: NodeState = { id: hex(32), name: pick(['host-1', 'h']), address: pick(ADDRESSES), incarnation: 1_765_000_000_000, version: 1_765_000_000_000 + 1 + r(1e6), endpoints };
    const st = decodeState(s.id, s.version, encodeState(s));
    if (!st || Buffer.compare(stateHash(st), stateHash(s)) !== 0) return t.fail(`case ${i}: the state differs`);
    const d = { id: s.id, name: s.name, address: s.address, incarnation: s.incarnation, base: 0, version: s.version, put: endpoints, del: [] };
    const back = decodeBody(d, encodeBody(d));
    if (!back || JSON.stringify(back.put.map(hashOf)) !== JSON.stringify(endpoints.map(hashOf)) || back.address !== s.address) return t.fail(`case ${i}: the body differs`);
  }
  t.pass('300 states');
});

t.test('sizes: the common strings, raw container ids, addresses and ids are what make it small', async (t) => {
  const e: Endpoint = {
    id: 'web-1', namespace: 'default', service: 'web', hostname: 'web-1', addresses: ['10.88.0.5'], explicit: false,
    ports: { http: { port: 8080, protocol: 'tcp', hostPort: 20001 } }, weight: 10, health: 'tcp', healthy: true, source: 'podman',
    container: { id: 'c0ffee'.repeat(10) + 'c0ff', name: 'web-1', network: 'podman' }, lastSeen: 1_765_000_000_000,
  };
  const compact = encodeCanonical(endpointOut(e, new StringsOut(), 1_765_000_000_000)).length;
  t.ok(compact < 80, `a Podman endpoint takes ${compact} bytes (as a msgpack map: ${encodeCanonical(e).length})`);
  t.equal(idOut('0123456789abcdef0123456789abcdef').length, 16, 'a node id is 16 bytes');
  t.equal(idIn(idOut('0123456789abcdef0123456789abcdef')), '0123456789abcdef0123456789abcdef');
  t.equal(idIn(idOut('relay-1')), 'relay-1', 'an id that is not hex travels as it is');
  t.equal(idIn(new Uint8Array(15)), null, 'raw ids are 16 bytes');
});
