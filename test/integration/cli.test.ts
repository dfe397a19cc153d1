import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, startDaemon, writeConfig } from '../helpers/daemon.js';
import { dig, digShort, digStatus } from '../helpers/dns.js';
import { expectLog } from '../helpers/until.js';

const CONFIG = 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.1\n        hostname: web-1\n        ports: { http: 8080/tcp }\n';

t.test('read commands over the API socket', async (t) => {
  const d = await startDaemon(t, { config: CONFIG });
  const sock = ['--api-socket', d.socket];

  const status = await runCli(['status', ...sock]);
  t.equal(status.code, 0);
  t.match(status.stdout, /^node\s+\S+ \(id [0-9a-f]{32}, address /m);
  t.match(status.stdout, new RegExp(`^dns\\s+127\\.0\\.0\\.1:${d.dnsPort} \\((js|native) path\\), zone cluster\\.local$`, 'm'));
  t.match(status.stdout, /^registry\s+1 services?, 1 endpoints? \(1 healthy\), 1 node, index \d+$/m);
  const statusJson = JSON.parse((await runCli(['status', '--json', ...sock])).stdout);
  t.match(statusJson, { ready: true, registry: { services: 1 } });
  t.same(statusJson.problems, [], 'a fresh single host has no problem (gossip is off: there is no peer to miss)');
  t.match(status.stdout, /^gossip\s+off \(a single host: no --join\)$/m);

  const services = await runCli(['services', ...sock]);
  t.match(services.stdout, /^NAMESPACE\s+NAME\s+MODE\s+VIP\s+PORTS\s+ENDPOINTS\s+HEALTHY\ndefault\s+web\s+dnsrr\s+-\s+http\/tcp\s+1\s+1$/m);
  t.match(JSON.parse((await runCli(['services', '--json', ...sock])).stdout), [{ name: 'web' }]);

  const eps = await runCli(['endpoints', 'default/web', ...sock]);
  t.equal(eps.code, 0);
  t.match(eps.stdout, /^web-1\s+web-1\s+10\.0\.0\.1\s+http=8080\/tcp\s+\S+\s+yes\s+config$/m);
  const short = await runCli(['endpoints', 'web', '--json', ...sock]);
  t.match(JSON.parse(short.stdout), [{ id: 'web-1', address: '10.0.0.1' }], 'namespace defaults to "default"');
  const missing = await runCli(['endpoints', 'default/nope', ...sock]);
  t.equal(missing.code, 4, 'unknown service: exit 4');
  t.match(missing.stderr, /no service default\/nope/);

  const q = await runCli(['query', 'web.default.cluster.local', ...sock]);
  t.equal(q.code, 0);
  t.match(q.stdout, /^;; NOERROR, authoritative\n;; ANSWER\nweb\.default\.cluster\.local\t5\tA\t10\.0\.0\.1$/m);
  const srv = JSON.parse((await runCli(['query', '_http._tcp.web.default.cluster.local', 'srv', '--json', ...sock])).stdout);
  t.match(srv, { rcode: 'NOERROR', answers: [{ type: 'SRV', data: { port: 8080 } }], additionals: [{ type: 'A', data: '10.0.0.1' }] });
  t.equal((await runCli(['query', 'nope.cluster.local', ...sock])).code, 4, 'NXDOMAIN: exit 4');
  const txt = await runCli(['query', 'dns-version.cluster.local', 'TXT', ...sock]);
  t.match(txt.stdout, /^dns-version\.cluster\.local\t\d*\tTXT\t"\d+\.\d+\.\d+"$/m, 'TXT strings printed as text');
  const txtJson = JSON.parse((await runCli(['query', 'dns-version.cluster.local', 'TXT', '--json', ...sock])).stdout);
  t.match(txtJson.answers, [{ type: 'TXT', data: [/^\d+\.\d+\.\d+$/] }], 'and returned as text by /api/v1/dns');

  const members = await runCli(['members', ...sock]);
  t.match(members.stdout, /\(this node\)\s+[0-9a-f]{32}\s+\S+\s+alive\s+1$/m);
});

t.test('a host told to join a cluster without a gossip key lists that as a problem', async (t) => {
  const d = await startDaemon(t, { args: ['--join', '127.0.0.1:9'] });
  const s = JSON.parse((await runCli(['status', '--json', '--api-socket', d.socket])).stdout);
  t.match(s.problems, [/^gossip is off: no --gossip-key-file/]);
  t.match((await runCli(['status', '--api-socket', d.socket])).stdout, /^gossip\s+off \(see problems\)$/m);
});

t.test('exit codes for usage errors and an unreachable daemon', async (t) => {
  const gone = await runCli(['status', '--api-socket', '/nonexistent/api.sock']);
  t.equal(gone.code, 3);
  t.match(gone.stderr, /cannot reach the daemon at unix:\/nonexistent\/api\.sock: is the daemon running\?/);
  t.equal((await runCli(['frobnicate'])).code, 2);
  t.equal((await runCli(['endpoints'])).code, 2);
  t.equal((await runCli([])).code, 2);
  const help = await runCli(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Commands:/);
  const dhelp = await runCli(['daemon', '--help']);
  t.match(dhelp.stdout, /--upstream-dns <ip\[:port\],\.\.\.>/);
  const key = await runCli(['keygen']);
  t.equal(Buffer.from(key.stdout.trim(), 'base64').length, 32);
});

t.test('configuration errors stop the daemon with exit 2 and name the key', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-cfg-'));
  t.teardown(() => import('node:fs').then((fs) => fs.rmSync(dir, { recursive: true, force: true })));
  const cases: Array<[string, string, RegExp]> = [
    ['bad YAML', 'services: [\n', /YAML\.yaml: line \d+, column \d+: invalid YAML/],
    ['unknown key', 'ttl: 5s\nupstream: 1.1.1.1\n', /unknown key "upstream" \(line 2\) \(did you mean upstream-dns\?\)/],
    ['bad value', 'negative-ttl: often\n', /key "negative-ttl" \(line 1\): "often" is not a duration/],
    ['bad service', 'services:\n  - name: web\n    endpoints:\n      - address: 300.0.0.1\n', /services\[0\]\.endpoints\[0\]\.address \(line 4\): "300\.0\.0\.1" is not an IPv4 or IPv6 address/],
  ];
  for (const [what, text, pattern] of cases) {
    const file = join(dir, `${what.replace(/ /g, '-')}.yaml`);
    writeFileSync(file, text);
    const r = await runCli(['daemon', '--config', file, '--link', 'none', '--dns-listen', '127.0.0.1:0']);
    t.equal(r.code, 2, `${what}: exit 2`);
    t.match(r.stderr, pattern, what);
  }
  const flag = await runCli(['daemon', '--ttl', 'x']);
  t.equal(flag.code, 2);
  t.match(flag.stderr, /--ttl: "x" is not a duration/);
});

t.test('SIGHUP reloads static services and reports what needs a restart', async (t) => {
  const d = await startDaemon(t, { config: CONFIG });
  writeConfig(d, `${CONFIG}  - name: api\n    endpoints:\n      - address: 10.0.0.9\nttl: 30s\ndomain: other.local\n`);
  d.proc.kill('SIGHUP');
  for (let i = 0; i < 50 && !/reloaded/.test(d.logs()); i++) await new Promise((r) => setTimeout(r, 50));
  await expectLog(t, d, /reloaded: applied ttl, services; needs a restart: domain/);
  t.same(await digShort(d.dnsPort, 'api.default.cluster.local'), ['10.0.0.9']);
  t.match(await dig(['@127.0.0.1', '-p', String(d.dnsPort), 'api.default.cluster.local']), /\s30\s+IN\s+A\s+10\.0\.0\.9/);
  writeConfig(d, 'ttl: nonsense\n');
  d.proc.kill('SIGHUP');
  for (let i = 0; i < 50 && !/reload failed/.test(d.logs()); i++) await new Promise((r) => setTimeout(r, 50));
  t.ok(d.events().some((e) => /^reload failed, keeping the running configuration: .*key "ttl" \(line 1\): "nonsense" is not a duration/.test(String(e.msg))), 'the reason is logged');
  t.equal(digStatus(await dig(['@127.0.0.1', '-p', String(d.dnsPort), 'api.default.cluster.local'])), 'NOERROR', 'still serving');
});
