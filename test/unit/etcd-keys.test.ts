import t from 'tap';
import { prefixEnd } from '../../src/etcd/client.js';
import { diffKeys, endpointKeyOf, isSkydnsKeyOf, keysOf, NodeAssembler, nodeKey, skydnsKeysOf, skydnsLeaf } from '../../src/etcd/keys.js';
import type { NodeState } from '../../src/registry/types.js';
import { ep } from '../helpers/registry.js';

const P = '/psd/';
const state = (endpoints = [ep('web', '10.0.0.1', { id: 'w1' }), ep('web', '10.0.0.2', { id: 'a/b c', hostname: 'ab' })]): NodeState => ({
  id: 'n1', name: 'host1', address: '192.0.2.1', incarnation: 3, version: 99, endpoints,
});

t.test('key layout: a node record and one key per endpoint; ids escaped', async (t) => {
  const keys = [...keysOf(P, state()).keys()];
  t.same(keys, ['/psd/nodes/n1', '/psd/endpoints/n1/default/web/w1', '/psd/endpoints/n1/default/web/a%2Fb%20c']);
  t.same(JSON.parse(keysOf(P, state()).get('/psd/nodes/n1')!), { name: 'host1', address: '192.0.2.1', incarnation: 3 }, 'the version is etcd\'s, not written');
});

t.test('diff: only changed and new keys are put, vanished ones deleted', async (t) => {
  const a = keysOf(P, state());
  const b = keysOf(P, state([ep('web', '10.0.0.1', { id: 'w1' }), ep('web', '10.0.0.3', { id: 'w3' })]));
  t.same(diffKeys(a, b, '7'), [
    { put: '/psd/endpoints/n1/default/web/w3', value: b.get('/psd/endpoints/n1/default/web/w3'), lease: '7' },
    { del: '/psd/endpoints/n1/default/web/a%2Fb%20c' },
  ]);
  t.same(diffKeys(a, a, '7'), [], 'nothing changed: nothing written');
  t.equal(diffKeys(new Map(), a, '7').length, 3, 'a fresh lease writes everything');
});

t.test('assembler: states rebuilt from keys, versioned by their highest revision', async (t) => {
  const asm = new NodeAssembler(P);
  let rev = 10;
  const put = (key: string, value: string) => ({ type: 'put' as const, kv: { key, value, modRevision: ++rev, lease: '1' } });
  const kv = [...keysOf(P, state())].map(([k, v]) => put(k, v));
  t.same([...asm.apply(kv.slice(1))], ['n1']);
  t.equal(asm.state('n1'), null, 'endpoints without the node record are not published');
  asm.apply(kv.slice(0, 1));
  const s = asm.state('n1')!;
  t.equal(s.version, 13);
  t.same(s.endpoints.map((e) => e.id).sort(), ['a/b c', 'w1']);
  asm.apply([{ type: 'delete', key: endpointKeyOf(P, 'n1', { namespace: 'default', service: 'web', id: 'w1' }), modRevision: 20 }]);
  t.same(asm.state('n1')!.endpoints.map((e) => e.id), ['a/b c']);
  t.equal(asm.state('n1')!.version, 20, 'a delete moves the version too');
  asm.apply([{ type: 'delete', key: nodeKey(P, 'n1'), modRevision: 21 }]);
  t.equal(asm.state('n1'), null, 'node record gone: the node is gone');
  t.equal(asm.skipped, 0);
  asm.apply([put('/psd/nodes/', '{}'), put('/psd/endpoints/n2/default/web/x', 'nope'), put('/other/nodes/n3', '{}'), put('/psd/nodes/%E0%A4%A', '{}')]);
  t.equal(asm.skipped, 4, 'malformed keys and values are counted, not fatal');
});

// CoreDNS's etcd plugin (plugin/etcd/msg/path.go, README "Special Behaviour"): a query name's
// labels reversed under the path make the key prefix it reads every record under; a record's key
// turned back into a name (the SRV target of an IP host) drops the path and reverses the labels.
const corednsPath = (name: string, path = '/skydns'): string => `${path}/${name.split('.').filter(Boolean).reverse().join('/')}`;
const corednsDomain = (key: string, path = '/skydns'): string => key.slice(path.length + 1).split('/').reverse().join('.');
/** The fields of CoreDNS's msg.Service, with the JSON type each must have. */
const SERVICE_FIELDS: Record<string, 'string' | 'number' | 'boolean'> = { host: 'string', port: 'number', priority: 'number', weight: 'number', text: 'string', mail: 'boolean', ttl: 'number', targetstrip: 'number', group: 'string' };

t.test('SkyDNS records: the key layout and JSON CoreDNS\'s etcd plugin reads', async (t) => {
  const long = 'h'.repeat(63);
  const s = state([
    ep('web', '10.0.0.1', { id: 'w1', ports: { http: { port: 80, protocol: 'tcp' } }, weight: 30, ttl: 7 }),
    ep('web', '10.88.0.5', { id: 'c'.repeat(64), hostname: long, explicit: false, ports: { http: { port: 80, protocol: 'tcp', hostPort: 8081 } } }),
    ep('web', '10.0.0.9', { id: 'sick', healthy: false }),
    ep('api', 'fd00::7', { id: 'a/b c', namespace: 'prod' }),
    ep('web', '10.89.0.4', { id: 'rootless', container: { id: 'c1', name: 'r', owner: 'alice', isolated: true } }),
  ]);
  const m = skydnsKeysOf('/skydns/', 'cluster.local', s);
  t.equal(m.size, 3, 'healthy endpoints only, and none reachable from its own host only (rootless, nothing published)');
  const under = (name: string) => [...m.keys()].filter((k) => k.startsWith(`${corednsPath(name)}/`));
  t.equal(under('web.default.cluster.local').length, 2, 'a query for web.default.cluster.local reads both web records');
  t.equal(under('api.prod.cluster.local').length, 1, 'and api.prod.cluster.local its own');
  for (const [key, value] of m) {
    const target = corednsDomain(key);
    const leaf = target.split('.')[0]!;
    t.match(leaf, /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, `${key}: the SRV target's first label is a DNS label`);
    t.ok(target.length <= 253, 'the target is a valid name');
    t.ok(isSkydnsKeyOf('n1', key) && !isSkydnsKeyOf('n2', key), 'the key names its node');
    const v = JSON.parse(value) as Record<string, unknown>;
    for (const [f, x] of Object.entries(v)) t.equal(typeof x, SERVICE_FIELDS[f], `${f}: a msg.Service field of the right type`);
  }
  const web = under('web.default.cluster.local').map((k) => JSON.parse(m.get(k)!));
  t.same(web.sort((a, b) => a.port - b.port), [{ host: '10.0.0.1', port: 80, weight: 30, ttl: 7 }, { host: '192.0.2.1', port: 8081, weight: 10 }],
    "explicit address as is; a container through its node's address and published port; weight and TTL kept");
  t.same(JSON.parse(m.get(under('api.prod.cluster.local')[0]!)!), { host: 'fd00::7', weight: 10 }, 'IPv6, no port');
  t.equal(skydnsLeaf('n1', { hostname: 'w1', id: 'w1' }), skydnsLeaf('n1', { hostname: 'w1', id: 'w1' }), 'stable');
  t.not(skydnsLeaf('n1', { hostname: 'w1', id: 'w1' }), skydnsLeaf('n2', { hostname: 'w1', id: 'w1' }), 'differs per node');
});

t.test('prefix range end', async (t) => {
  t.equal(Buffer.from(prefixEnd('/a/'), 'base64').toString(), '/a0');
  t.same([...Buffer.from(prefixEnd('\u00ff'), 'base64')], [0xc3, 0xc0], 'the last byte below 0xff is incremented');
});

t.test('etcd client settings: files read once, inconsistencies named with the fix', async (t) => {
  const { etcdClientOptions } = await import('../../src/etcd/setup.js');
  const { ConfigError } = await import('../../src/config/errors.js');
  const base = { etcdEndpoints: ['https://e1:2379'], etcdCaFile: '', etcdCertFile: '', etcdKeyFile: '', etcdUsername: '', etcdPasswordFile: '' };
  const files: Record<string, string> = { '/ca': 'CA', '/c': 'CERT', '/k': 'KEY', '/pw': 'secret\nignored\n' };
  const read = (p: string) => {
    if (!(p in files)) throw new Error('ENOENT: no such file');
    return files[p]!;
  };
  t.same(etcdClientOptions({ ...base, etcdCaFile: '/ca', etcdCertFile: '/c', etcdKeyFile: '/k', etcdUsername: 'u', etcdPasswordFile: '/pw' }, read), {
    endpoints: ['https://e1:2379'], ca: 'CA', cert: 'CERT', key: 'KEY', username: 'u', password: 'secret',
  });
  const bad = (o: Partial<typeof base>, re: RegExp) => t.throws(() => etcdClientOptions({ ...base, ...o }, read), re as unknown as Error);
  bad({ etcdEndpoints: [] }, /needs --etcd-endpoints/);
  bad({ etcdCertFile: '/c' }, /--etcd-cert-file and --etcd-key-file go together/);
  bad({ etcdUsername: 'u' }, /--etcd-username and --etcd-password-file go together/);
  bad({ etcdCaFile: '/missing' }, /--etcd-ca-file \/missing: cannot read it \(ENOENT/);
  bad({ etcdEndpoints: ['http://e1:2379'], etcdCaFile: '/ca' }, /http:\/\/e1:2379 is not https/);
  try {
    etcdClientOptions({ ...base, etcdEndpoints: [] }, read);
  } catch (e) {
    t.type(e, ConfigError, 'a configuration error: exit 2');
  }
});
