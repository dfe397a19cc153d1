import t, { type Test } from 'tap';
import { parseArgs } from '../../src/config/args.js';
import { ConfigError } from '../../src/config/errors.js';
import { optionsHelp } from '../../src/config/help.js';
import { loadConfig, loadConfigSliced } from '../../src/config/load.js';
import { envName, OPTIONS } from '../../src/config/options.js';

const FILE = '/etc/podman-swarm-dns/config.yaml';

function load(o: { argv?: string[]; env?: Record<string, string>; file?: string | null }) {
  const specs = Object.values(OPTIONS).map((d) => ({ name: d.name, bool: d.kind.arg === '' }));
  const { flags } = parseArgs(o.argv ?? [], specs);
  return loadConfig({
    flags,
    env: o.env ?? {},
    now: 0,
    readFile: (p) => {
      if (o.file === null || o.file === undefined || p !== (flags.get('config')?.[0] ?? o.env?.PODMAN_SWARM_DNS_CONFIG ?? FILE)) {
        throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      }
      return o.file;
    },
  });
}

const fails = (t: Test, f: () => unknown, code: string, pattern: RegExp) => {
  try {
    f();
    t.fail('expected a ConfigError');
  } catch (e) {
    t.type(e, ConfigError);
    t.equal((e as ConfigError).code, code);
    t.equal((e as ConfigError).exitCode, 2);
    t.match((e as Error).message, pattern);
  }
};

t.test('defaults match SPEC §11', async (t) => {
  const { options: o, file } = load({});
  t.equal(file, null, 'a missing default file is fine');
  t.equal(o.domain, 'cluster.local');
  t.equal(o.ttl, 5);
  t.equal(o.negativeTtl, 5);
  t.equal(o.serviceCidr.text, '10.223.0.0/16');
  t.equal(o.link, 'pswarm0');
  t.equal(o.resolved, 'auto');
  t.equal(o.logLevel, 'info');
  t.same(o.podmanSocket, ['/run/podman/podman.sock']);
  t.same(o.gossipListen, { host: '0.0.0.0', port: 7946 });
  t.equal(o.stateDir, '', 'computed at start (root vs user)');
});

t.test('every core option of SPEC §11 exists under its exact name', async (t) => {
  const names = new Set(Object.values(OPTIONS).map((d) => d.name));
  for (const n of ['config', 'node-name', 'state-dir', 'dns-listen', 'api-listen', 'api-token-file', 'gossip-listen', 'advertise-address', 'join', 'join-token', 'gossip-key-file', 'insecure-gossip', 'podman-socket', 'domain', 'ttl', 'negative-ttl', 'upstream-dns', 'service-cidr', 'link', 'resolved', 'log-level']) {
    t.ok(names.has(n), n);
  }
  const help = optionsHelp();
  for (const n of names) t.match(help, new RegExp(`--(\\[no-\\])?${n}\\b`), `--help documents --${n}`);
  t.match(help, 'PODMAN_SWARM_DNS_UPSTREAM_DNS, UPSTREAM_DNS');
});

t.test('precedence: flags > environment > file > defaults', async (t) => {
  const file = 'ttl: 30s\nnegative-ttl: 40s\ndomain: file.example\n';
  const env = { PODMAN_SWARM_DNS_TTL: '20s', PODMAN_SWARM_DNS_NEGATIVE_TTL: '9s' };
  const c = load({ argv: ['--ttl', '10s'], env, file });
  t.equal(c.options.ttl, 10);
  t.equal(c.options.negativeTtl, 9);
  t.equal(c.options.domain, 'file.example');
  t.same([c.origin.ttl, c.origin.negativeTtl, c.origin.domain, c.origin.link], ['flag', 'env', 'file', 'default']);
});

t.test('UPSTREAM_DNS and repeatable options', async (t) => {
  t.same(load({ env: { UPSTREAM_DNS: '1.1.1.1,9.9.9.9:5353' } }).options.upstreamDns, [{ host: '1.1.1.1', port: 53 }, { host: '9.9.9.9', port: 5353 }]);
  t.same(load({ argv: ['--upstream-dns', '1.1.1.1', '--upstream-dns', '[::1]:53,8.8.8.8'] }).options.upstreamDns.map((u) => u.host), ['1.1.1.1', '::1', '8.8.8.8']);
  t.same(load({ file: 'join:\n  - seed1.example\n  - 10.0.0.1:7000\n' }).options.join, [{ host: 'seed1.example', port: 7946 }, { host: '10.0.0.1', port: 7000 }]);
  t.equal(load({ argv: ['--no-prefer-local'] }).options.preferLocal, false);
  t.equal(load({ file: 'fail-open: yes\n' }).options.failOpen, true);
});

t.test('bad YAML names the file, line and column', async (t) => {
  fails(t, () => load({ file: 'ttl: [5s\n' }), 'ERR_CONFIG_YAML', /config\.yaml: line \d+, column \d+: invalid YAML/);
  fails(t, () => load({ file: '- a\n- b\n' }), 'ERR_CONFIG_YAML', /expected a mapping/);
});

t.test('unknown key names the key, its line and a suggestion', async (t) => {
  fails(t, () => load({ file: 'domain: x.example\ntll: 5s\n' }), 'ERR_CONFIG_UNKNOWN_KEY', /config\.yaml: unknown key "tll" \(line 2\) \(did you mean ttl\?\)/);
  fails(t, () => load({ file: 'config: /x\n' }), 'ERR_CONFIG_UNKNOWN_KEY', /only be given as a flag/);
});

t.test('bad values name where, key, value and the expected form', async (t) => {
  fails(t, () => load({ file: 'ttl: soon\n' }), 'ERR_CONFIG_BAD_VALUE', /config\.yaml: key "ttl" \(line 1\): "soon" is not a duration; expected a duration such as/);
  fails(t, () => load({ argv: ['--service-cidr', '10.0.0.0/99'] }), 'ERR_CONFIG_BAD_VALUE', /--service-cidr: "10\.0\.0\.0\/99" is not a CIDR/);
  fails(t, () => load({ env: { [envName('log-level')]: 'loud' } }), 'ERR_CONFIG_BAD_VALUE', /PODMAN_SWARM_DNS_LOG_LEVEL: "loud" is not one of debug, info, warn, error/);
  fails(t, () => load({ argv: ['--dns-listen', '127.0.0.1'] }), 'ERR_CONFIG_BAD_VALUE', /has no port; expected ip:port/);
  fails(t, () => load({ argv: ['--upstream-dns', '1.1.1.1,nope'] }), 'ERR_CONFIG_BAD_VALUE', /item "nope" is not an IP address/);
  fails(t, () => load({ argv: ['--ttl', '1.5s'] }), 'ERR_CONFIG_BAD_VALUE', /must be whole seconds/);
  fails(t, () => load({ argv: ['--health-fall', '0'] }), 'ERR_CONFIG_BAD_VALUE', /out of range 1–100/);
  fails(t, () => load({ file: 'insecure-gossip: maybe\n' }), 'ERR_CONFIG_BAD_VALUE', /"maybe" is not true or false/);
});

t.test('an explicit config file that is missing is an error', async (t) => {
  fails(t, () => load({ argv: ['--config', '/nope.yaml'] }), 'ERR_CONFIG_FILE', /\/nope\.yaml: cannot read the config file \(no such file\); it was given by --config/);
});

t.test('flag parsing errors', async (t) => {
  fails(t, () => load({ argv: ['--domian', 'x'] }), 'ERR_USAGE', /unknown option --domian \(did you mean --domain\?\)/);
  fails(t, () => load({ argv: ['--ttl'] }), 'ERR_USAGE', /--ttl needs a value/);
});

t.test('static services: the SPEC §11 format', async (t) => {
  const c = load({
    file: `
services:
  - namespace: prod
    name: postgres
    mode: dnsrr
    endpoints:
      - address: 10.0.0.5
        hostname: db1
        ports: { pg: 5432/tcp }
        weight: 20
      - address: 10.0.0.6
  - name: dns
    ttl: 0
    endpoints:
      - address: fd00::53
        ports: { dns: 53/udp }
`,
  });
  t.equal(c.services.length, 2);
  const [db1, db2, dns] = c.endpoints;
  t.match(db1, { id: 'db1', namespace: 'prod', service: 'postgres', hostname: 'db1', addresses: ['10.0.0.5'], ports: { pg: { port: 5432, protocol: 'tcp' } }, weight: 20, mode: 'dnsrr', explicit: true, source: 'config', health: 'tcp' });
  t.match(db2, { id: '10-0-0-6', hostname: '10-0-0-6', weight: 10, health: 'none' });
  t.match(dns, { namespace: 'default', ttl: 0, ports: { dns: { port: 53, protocol: 'udp' } } });
});

t.test('static services: errors point into the list', async (t) => {
  fails(t, () => load({ file: 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.1\n        ports: { http: 99999 }\n' }), 'ERR_CONFIG_BAD_VALUE', /services\[0\]\.endpoints\[0\]\.ports\.http \(line 5\): 99999 is not a port/);
  fails(t, () => load({ file: 'services:\n  - name: Web_1\n    endpoints: []\n' }), 'ERR_CONFIG_BAD_VALUE', /services\[0\]\.name.*not a DNS label/);
  fails(t, () => load({ file: 'services:\n  - name: web\n    endpoints:\n      - adress: 10.0.0.1\n' }), 'ERR_CONFIG_BAD_VALUE', /services\[0\]\.endpoints\[0\]\.adress.*unknown field/);
  fails(t, () => load({ file: 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.1\n      - address: 10.0.0.1\n' }), 'ERR_CONFIG_BAD_VALUE', /appears twice/);
  fails(t, () => load({ file: 'services:\n  - name: web\n    mode: round\n    endpoints: []\n' }), 'ERR_CONFIG_BAD_VALUE', /"round" is not a mode/);
});

t.test('static services: addresses no client can reach, and the port and endpoint limits', async (t) => {
  const svc = (endpoints: string) => `services:\n  - name: web\n    endpoints:\n${endpoints}`;
  fails(t, () => load({ file: svc('      - address: "fe80::1%eth0"\n') }), 'ERR_CONFIG_BAD_VALUE', /services\[0\]\.endpoints\[0\]\.address \(line 4\): "fe80::1%eth0" is a scoped IPv6/);
  fails(t, () => load({ file: svc('      - address: 0.0.0.0\n') }), 'ERR_CONFIG_BAD_VALUE', /endpoints\[0\]\.address.*unspecified/);
  fails(t, () => load({ file: svc('      - address: 239.1.2.3\n') }), 'ERR_CONFIG_BAD_VALUE', /endpoints\[0\]\.address.*multicast/);
  const ports = (n: number) => `      - address: 10.0.0.1\n        ports: { ${Array.from({ length: n }, (_, i) => `p${i}: ${1000 + i}`).join(', ')} }\n`;
  t.equal(load({ file: svc(ports(64)) }).endpoints[0]!.ports.p63!.port, 1063, '64 ports by default');
  fails(t, () => load({ file: svc(ports(65)) }), 'ERR_CONFIG_BAD_VALUE', /endpoints\[0\]\.ports.*65 ports, more than the 64 .*--max-ports-per-endpoint/);
  fails(t, () => load({ file: svc(ports(3)), argv: ['--max-ports-per-endpoint', '2'] }), 'ERR_CONFIG_BAD_VALUE', /3 ports, more than the 2/);
  const three = svc('      - address: 10.0.0.1\n      - address: 10.0.0.2\n      - address: 10.0.0.3\n');
  t.equal(load({ file: three }).endpoints.length, 3);
  fails(t, () => load({ file: three, env: { PODMAN_SWARM_DNS_MAX_ENDPOINTS_PER_SERVICE: '2' } }), 'ERR_CONFIG_BAD_VALUE', /services\[0\]\.endpoints.*3 endpoints for default\/web, more than --max-endpoints-per-service 2/);
});

t.test('etcd options: URLs and prefixes checked, with what is wrong', async (t) => {
  const { options: o } = load({ argv: ['--registry', 'etcd', '--etcd-endpoints', 'http://10.0.0.1:2379/,https://e2:2379', '--etcd-lease-ttl', '10s'] });
  t.equal(o.registry, 'etcd');
  t.same(o.etcdEndpoints, ['http://10.0.0.1:2379', 'https://e2:2379'], 'normalised to scheme, host and port');
  t.equal(o.etcdLeaseTtl, 10_000);
  t.equal(o.etcdPrefix, '/podman-swarm-dns/');
  fails(t, () => load({ argv: ['--etcd-endpoints', '10.0.0.1:2379'] }), 'ERR_CONFIG_BAD_VALUE', /etcd-endpoints.*not an http:\/\/ or https:\/\/ URL|etcd-endpoints.*not a URL/);
  fails(t, () => load({ argv: ['--etcd-endpoints', 'http://e:2379/v3'] }), 'ERR_CONFIG_BAD_VALUE', /path/);
  fails(t, () => load({ argv: ['--etcd-prefix', 'psd'] }), 'ERR_CONFIG_BAD_VALUE', /start and end with/);
  fails(t, () => load({ argv: ['--registry', 'consul'] }), 'ERR_CONFIG_BAD_VALUE', /registry/);
});

t.test('a reload reads the file in slices: the same config, the event loop served between them, errors as from loadConfig', async (t) => {
  const lines = ['ttl: 7s', 'services:'];
  for (let i = 0; i < 2_000; i++) lines.push(`  - name: s${i}`, '    endpoints:', `      - {address: 10.${i >> 8}.${i & 255}.1, hostname: h0}`);
  const file = `${lines.join('\n')}\n`;
  const input = { flags: new Map([['config', ['/c.yaml']]]), env: {}, now: 0, readFile: () => file };
  const whole = loadConfig(input);
  let turns = 0;
  const timer = setInterval(() => turns++, 0);
  const sliced = await loadConfigSliced(input).finally(() => clearInterval(timer));
  t.same(sliced, whole, 'the same options, services and endpoints');
  t.equal(sliced.endpoints.length, 2_000);
  t.ok(turns >= 2, `timers ran ${turns} times while it was read`);
  // The last service's address, in the last slice: named with its line, as loadConfig names it.
  const bad = file.replace('10.7.207.1,', '10.7.207.999,');
  await t.rejects(loadConfigSliced({ ...input, readFile: () => bad }), { code: 'ERR_CONFIG_BAD_VALUE', message: /^\/c\.yaml: services\[1999\]\.endpoints\[0\]\.address \(line 6002\): "10\.7\.207\.999"/ });
});
