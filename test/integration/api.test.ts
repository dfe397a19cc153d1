import t from 'tap';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { apiOverSocket, runCli, startDaemon } from '../helpers/daemon.js';
import { digShort, digStatus, dig } from '../helpers/dns.js';
import { until, expectLog } from '../helpers/until.js';

const CONFIG = 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.1\n        hostname: web-1\n        ports: { http: 8080/tcp }\n';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response) => ({ status: res.status, body: (res.status === 204 ? null : await res.json()) as any, headers: res.headers });
const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
const manyPorts = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`p${i}`, 1000 + i]));
const del = (url: string, headers: Record<string, string>) => fetch(url, { method: 'DELETE', headers });

t.test('HTTP API', async (t) => {
  const d = await startDaemon(t, { config: CONFIG });
  const api = `${d.api}/api/v1`;
  const auth = d.auth();

  await t.test('health, readiness, metrics', async (t) => {
    t.same((await json(await fetch(`${d.api}/healthz`))).body, { status: 'ok' });
    t.same((await json(await fetch(`${d.api}/readyz`))).body, { ready: true });
    await digShort(d.dnsPort, 'web.default.cluster.local');
    const m = await fetch(`${d.api}/metrics`);
    t.match(m.headers.get('content-type'), /text\/plain/);
    const text = await m.text();
    for (const name of ['dns_queries_total', 'dns_query_duration_seconds_bucket', 'dns_cache_hits_total', 'registry_services 1', 'registry_endpoints 1', 'api_requests_total']) {
      t.match(text, `podman_swarm_dns_${name}`);
    }
  });

  await t.test('services, detail, endpoints, addresses, nodes, status', async (t) => {
    const list = await json(await fetch(`${api}/services`));
    t.same(list.body, [{ namespace: 'default', name: 'web', mode: 'dnsrr', vip: null, ports: { http: 'tcp' }, endpoints: 1, healthy: 1 }]);
    t.match(list.headers.get('x-podman-swarm-index'), /^\d+$/);
    const detail = await json(await fetch(`${api}/services/default/web`));
    t.match(detail.body, { namespace: 'default', name: 'web', ttl: null, problems: [], endpoints: [{ id: 'web-1' }] });
    const eps = await json(await fetch(`${api}/services/default/web/endpoints`));
    t.match(eps.body, [{
      service_name: 'web', namespace: 'default', pod_id: '', pod_name: 'web-1', node_name: String, address: '10.0.0.1', port: 8080,
      healthy: true, last_seen: /^\d{4}-\d\d-\d\dT/, ports: { http: { port: 8080, protocol: 'tcp' } }, weight: 10, id: 'web-1',
    }]);
    t.same((await json(await fetch(`${api}/services/default/web/addresses`))).body, { service: 'web', namespace: 'default', addresses: ['10.0.0.1:8080'] });
    const nodes = await json(await fetch(`${api}/nodes`));
    t.match(nodes.body, [{ state: 'alive', local: true, endpoints: 1 }]);
    const status = await json(await fetch(`${api}/status`));
    t.match(status.body, { ready: true, dns: { listen: [`127.0.0.1:${d.dnsPort}`], path: /^(js|native)$/ }, registry: { services: 1, endpoints: 1 } });
    t.equal((await fetch(`${api}/services/default/nope`)).status, 404);
  });

  await t.test('register and deregister an endpoint: DNS follows', async (t) => {
    const created = await json(await post(`${api}/services/prod/pg/endpoints`, { id: 'db1', address: '10.0.0.5', hostname: 'db1', ports: { pg: '5432/tcp' }, weight: 30, health: 'tcp' }, auth));
    t.equal(created.status, 201);
    t.match(created.body, { id: 'db1', address: '10.0.0.5', port: 5432, weight: 30, source: 'api' });
    t.equal(created.headers.get('location'), '/api/v1/services/prod/pg/endpoints/db1');
    t.same(await digShort(d.dnsPort, 'pg.prod.cluster.local'), ['10.0.0.5']);
    t.same(await digShort(d.dnsPort, 'SRV', '_pg._tcp.pg.prod.cluster.local'), ['0 30 5432 db1.pg.prod.svc.cluster.local.']);
    const generated = await json(await post(`${api}/services/prod/pg/endpoints`, { address: '10.0.0.6' }, auth));
    t.equal(generated.body.id, '10-0-0-6', 'an id is generated from the address when absent');
    t.same(await digShort(d.dnsPort, 'pg.prod.cluster.local'), ['10.0.0.5', '10.0.0.6']);
    t.equal((await del(`${api}/services/prod/pg/endpoints/db1`, auth)).status, 204);
    t.same(await digShort(d.dnsPort, 'pg.prod.cluster.local'), ['10.0.0.6']);
    t.equal((await del(`${api}/services/prod/pg/endpoints/10-0-0-6`, auth)).status, 204);
    t.equal(digStatus(await dig(['@127.0.0.1', '-p', String(d.dnsPort), 'pg.prod.cluster.local'])), 'NXDOMAIN');
  });

  await t.test('POST of an existing id replaces the endpoint: 200, not 201', async (t) => {
    const created = await post(`${api}/services/prod/cache/endpoints`, { id: 'c1', address: '10.0.0.20', ports: { redis: '6379/tcp' }, weight: 30 }, auth);
    t.equal(created.status, 201, 'a new id is created');
    const replaced = await json(await post(`${api}/services/prod/cache/endpoints`, { id: 'c1', address: '10.0.0.21' }, auth));
    t.equal(replaced.status, 200, 'the same id again replaces it');
    t.match(replaced.body, { id: 'c1', address: '10.0.0.21', weight: 10, source: 'api' }, 'fields left out take their defaults');
    t.equal(replaced.headers.get('location'), '/api/v1/services/prod/cache/endpoints/c1');
    t.same(await digShort(d.dnsPort, 'cache.prod.cluster.local'), ['10.0.0.21'], 'one endpoint, at the new address');
    t.same(await digShort(d.dnsPort, 'SRV', '_redis._tcp.cache.prod.cluster.local'), [], 'the ports of the old body are gone');
    t.equal((await del(`${api}/services/prod/cache/endpoints/c1`, auth)).status, 204);
  });

  await t.test('a blocking query returns when the service changes', async (t) => {
    await post(`${api}/services/default/cache/endpoints`, { address: '10.0.0.7' }, auth);
    const first = await fetch(`${api}/services/default/cache/endpoints`);
    const index = Number(first.headers.get('x-podman-swarm-index'));
    let returned = false;
    const blocked = fetch(`${api}/services/default/cache/endpoints?index=${index}&wait=30s`).then(async (r) => {
      returned = true;
      return json(r);
    });
    await post(`${api}/services/default/other/endpoints`, { address: '10.0.0.9' }, auth);
    await new Promise((r) => setTimeout(r, 300));
    t.notOk(returned, 'a change to another service does not wake it');
    await post(`${api}/services/default/cache/endpoints`, { address: '10.0.0.8' }, auth);
    const res = await blocked;
    t.ok(Number(res.headers.get('x-podman-swarm-index')) > index);
    t.same(res.body.map((e: { address: string }) => e.address).sort(), ['10.0.0.7', '10.0.0.8']);
    const timed = await fetch(`${api}/services/default/cache/endpoints?index=${res.headers.get('x-podman-swarm-index')}&wait=200ms`);
    t.equal(timed.status, 200, 'returns the unchanged data when the wait ends');
  });

  await t.test('bad input gets a 4xx JSON error', async (t) => {
    const cases: Array<[string, Promise<Response>, number, RegExp]> = [
      ['not JSON', post(`${api}/services/default/x/endpoints`, '{nope', auth), 400, /not valid JSON/],
      ['no address', post(`${api}/services/default/x/endpoints`, { hostname: 'a' }, auth), 400, /address/],
      ['bad port', post(`${api}/services/default/x/endpoints`, { address: '10.0.0.1', ports: { http: '99999/tcp' } }, auth), 400, /ports\.http/],
      ['bad weight', post(`${api}/services/default/x/endpoints`, { address: '10.0.0.1', weight: 0 }, auth), 400, /weight/],
      ['bad health', post(`${api}/services/default/x/endpoints`, { address: '10.0.0.1', health: 'ping' }, auth), 400, /health/],
      ['unknown field', post(`${api}/services/default/x/endpoints`, { address: '10.0.0.1', colour: 'red' }, auth), 400, /colour: unknown field/],
      ['bad service name', post(`${api}/services/default/Bad_Name/endpoints`, { address: '10.0.0.1' }, auth), 400, /not a DNS label/],
      ['config endpoint', del(`${api}/services/default/web/endpoints/web-1`, auth), 409, /config file/],
      ['overwrite config endpoint', post(`${api}/services/default/web/endpoints`, { id: 'web-1', address: '10.0.0.1' }, auth), 409, /config file/],
      ['unknown endpoint', del(`${api}/services/default/web/endpoints/zzz`, auth), 404, /no endpoint zzz/],
      ['unknown route', fetch(`${api}/nope`), 404, /no such endpoint/],
      ['wrong method', fetch(`${api}/services`, { method: 'PUT', headers: auth }), 405, /PUT is not allowed/],
      ['bad index', fetch(`${api}/services?index=abc`), 400, /index=abc/],
      ['wait without index', fetch(`${api}/services?wait=5s`), 400, /wait= needs index=/],
      ['huge body', post(`${api}/services/default/x/endpoints`, 'x'.repeat(100_000), auth), 413, /larger than/],
      ['dns without name', fetch(`${api}/dns`), 400, /name= is required/],
      ['dns with an unknown type', fetch(`${api}/dns?name=web.default.cluster.local&type=BOGUS`), 400, /type=BOGUS is not a DNS record type/],
      ['write over TCP without the token', post(`${api}/services/default/x/endpoints`, { address: '10.0.0.1' }), 401, /API token/],
      ['scoped IPv6', post(`${api}/services/default/x/endpoints`, { address: 'fe80::1%eth0' }, auth), 400, /^address: "fe80::1%eth0" is a scoped IPv6/],
      ['unspecified IPv4', post(`${api}/services/default/x/endpoints`, { address: '0.0.0.0' }, auth), 400, /^address: "0\.0\.0\.0" is an unspecified/],
      ['unspecified IPv6', post(`${api}/services/default/x/endpoints`, { address: '::' }, auth), 400, /^address: "::" is an unspecified/],
      ['multicast IPv4', post(`${api}/services/default/x/endpoints`, { address: '224.0.0.251' }, auth), 400, /^address: .* multicast/],
      ['multicast IPv6', post(`${api}/services/default/x/endpoints`, { address: 'ff02::fb' }, auth), 400, /^address: .* multicast/],
      ['65 ports', post(`${api}/services/default/x/endpoints`, { address: '10.0.0.1', ports: manyPorts(65) }, auth), 400, /^ports: 65 ports, more than the 64/],
    ];
    for (const [what, pending, status, pattern] of cases) {
      const res = await pending;
      t.equal(res.status, status, what);
      t.match(res.headers.get('content-type'), /application\/json/, `${what}: JSON`);
      t.match(((await res.json()) as { error: string }).error, pattern, what);
    }
    t.equal(d.proc.exitCode, null, 'the daemon is still running');
    const names = (await json(await fetch(`${api}/services`))).body.map((s: { name: string }) => s.name);
    t.notOk(names.includes('x'), 'nothing refused was registered');
    t.equal((await post(`${api}/services/default/x/endpoints`, { address: '10.0.0.1', ports: manyPorts(64) }, auth)).status, 201, '64 ports are fine');
  });

  await t.test('API registrations survive a restart', async (t) => {
    t.equal((await post(`${api}/services/default/keep/endpoints`, { id: 'k1', address: '10.0.0.42', ports: { http: 80 } }, auth)).status, 201);
    // Concurrent writes are saved one after another: none overwrites another's.
    const many = await Promise.all(Array.from({ length: 40 }, (_, i) => post(`${api}/services/default/many/endpoints`, { address: `10.3.0.${i + 1}` }, auth)));
    t.same(many.map((r) => r.status), many.map(() => 201));
    await d.stop('SIGKILL');
    const again = await startDaemon(t, { config: CONFIG, args: ['--state-dir', join(d.dir, 'state')] });
    t.same(await digShort(again.dnsPort, 'keep.default.cluster.local'), ['10.0.0.42']);
    t.equal((await digShort(again.dnsPort, 'many.default.cluster.local')).length, 40, 'all 40 concurrent registrations are back after kill -9');
  });
});

t.test('API token', async (t) => {
  const tokenFile = join(t.testdirName, 'token');
  await import('node:fs').then((fs) => fs.mkdirSync(t.testdirName, { recursive: true }));
  writeFileSync(tokenFile, 'secret-token-0123456789\n');
  const d = await startDaemon(t, { args: ['--api-token-file', tokenFile] });
  const url = `${d.api}/api/v1/services/default/x/endpoints`;
  t.equal((await post(url, { address: '10.0.0.1' })).status, 401, 'writes need the token even on loopback');
  t.equal((await post(url, { address: '10.0.0.1' }, { authorization: 'Bearer wrong-token-0123456789' })).status, 401);
  t.equal((await post(url, { address: '10.0.0.1' }, { authorization: 'Bearer secret-token-0123456789' })).status, 201);
  t.equal((await fetch(`${d.api}/api/v1/services`)).status, 200, 'reads on loopback need no token');
  t.equal((await apiOverSocket(d, 'POST', '/api/v1/services/default/y/endpoints', { address: '10.0.0.2' })).status, 201, 'the unix socket needs no token');
  t.notOk(existsSync(join(d.dir, 'state', 'api-token')), 'with --api-token-file no token is made in the state directory');

  // A listener on all addresses is not loopback: reads need the token there too (we still
  // connect through 127.0.0.1, so no traffic leaves the machine).
  const { freePort } = await import('../helpers/ports.js');
  const port = await freePort('0.0.0.0');
  const open = await startDaemon(t, { args: ['--api-token-file', tokenFile, '--api-listen', `0.0.0.0:${port}`] , wait: false });
  const res = await until('the API on 0.0.0.0', () => fetch(`http://127.0.0.1:${port}/api/v1/services`), 15_000);
  t.equal(res.status, 401);
  t.equal(res.headers.get('www-authenticate'), 'Bearer');
  t.equal((await fetch(`http://127.0.0.1:${port}/api/v1/services`, { headers: { authorization: 'Bearer secret-token-0123456789' } })).status, 200);
  await open.stop();
});

t.test('without --api-token-file, a token made at first start guards writes over TCP', async (t) => {
  const d = await startDaemon(t);
  const path = join(d.dir, 'state', 'api-token');
  t.equal(statSync(path).mode & 0o777, 0o600, 'the token file is readable by its owner only');
  const token = d.token();
  t.match(token, /^[0-9a-f]{64}$/);
  const url = `${d.api}/api/v1/services/default/z/endpoints`;
  const refused = await post(url, { address: '10.0.0.3' });
  t.equal(refused.status, 401);
  t.match(((await refused.json()) as { error: string }).error, /api-token/);
  t.equal((await del(`${url}/10-0-0-3`, {})).status, 401, 'DELETE too');
  t.equal((await post(url, { address: '10.0.0.3' }, d.auth())).status, 201);
  t.equal((await fetch(`${d.api}/api/v1/services/default/z`)).status, 200, 'reads on loopback stay open');
  t.equal((await apiOverSocket(d, 'DELETE', '/api/v1/services/default/z/endpoints/10-0-0-3')).status, 204, 'the unix socket needs no token');
  const cli = await runCli(['join', '127.0.0.1:9', '--api-socket', d.socket]);
  t.match(cli.stdout, /joined through 0 of 1/, 'the CLI writes (join) through the unix socket without a token');
  t.notMatch(cli.stderr, /token/);
  await d.stop();
  const again = await startDaemon(t, { args: ['--state-dir', join(d.dir, 'state')] });
  t.equal(again.token(), token, 'the token is kept across restarts');
  t.equal((await post(`${again.api}/api/v1/services/default/z/endpoints`, { address: '10.0.0.3' }, { authorization: `Bearer ${token}` })).status, 201);
});

t.test('limits on ports per endpoint and endpoints per service', async (t) => {
  const d = await startDaemon(t, { args: ['--max-endpoints-per-service', '2', '--max-ports-per-endpoint', '2'] });
  const url = `${d.api}/api/v1/services/default/lim/endpoints`;
  const auth = d.auth();
  t.equal((await post(url, { id: 'a', address: '10.0.0.1', ports: manyPorts(2) }, auth)).status, 201);
  const over = await post(url, { id: 'b', address: '10.0.0.2', ports: manyPorts(3) }, auth);
  t.equal(over.status, 400);
  t.match(((await over.json()) as { error: string }).error, /^ports: 3 ports, more than the 2/);
  t.equal((await post(url, { id: 'b', address: '10.0.0.2' }, auth)).status, 201);
  const third = await post(url, { id: 'c', address: '10.0.0.3' }, auth);
  t.equal(third.status, 409);
  t.match(((await third.json()) as { error: string }).error, /default\/lim already has 2 endpoints on this node \(--max-endpoints-per-service\)/);
  t.equal((await post(url, { id: 'b', address: '10.0.0.4' }, auth)).status, 200, 'an existing endpoint can still be replaced (200)');
  t.same((await digShort(d.dnsPort, 'lim.default.cluster.local')).sort(), ['10.0.0.1', '10.0.0.4']);
});

t.test('a non-loopback API listener without a token is refused at start', async (t) => {
  const d = await startDaemon(t, { args: ['--api-listen', '0.0.0.0:18999'], wait: false });
  const code = await d.exitCode();
  t.equal(code, 2);
  await expectLog(t, d, /--api-listen 0\.0\.0\.0:18999 is reachable from the network but no --api-token-file is set/);
});

t.test('an API socket path longer than a unix socket takes is refused at start, not cut short', async (t) => {
  const path = `/tmp/${'s'.repeat(110)}/api.sock`;
  const d = await startDaemon(t, { args: ['--api-listen', `unix:${path}`], wait: false });
  t.equal(await d.exitCode(), 2);
  await expectLog(t, d, `the API socket path ${path} is 124 bytes, more than a unix socket takes (107); choose a shorter --state-dir`);
});

t.test('an API socket another daemon listens on stops the start with exit 2, and the first daemon keeps it', async (t) => {
  const first = await startDaemon(t);
  const second = await startDaemon(t, { args: ['--api-listen', `unix:${first.socket}`], wait: false });
  t.equal(await second.exitCode(), 2);
  await expectLog(t, second, `cannot serve the API on unix:${first.socket}: another daemon is already listening there; stop that daemon or give --api-listen another unix:PATH`);
  t.notMatch(second.logs(), /serving DNS/, 'it stopped before serving anything');
  t.equal((await apiOverSocket(first, 'GET', '/readyz')).status, 200, 'the socket still answers');
});
