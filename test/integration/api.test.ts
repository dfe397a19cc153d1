import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon } from '../helpers/daemon.js';
import { digShort, digStatus, dig } from '../helpers/dns.js';
import { until } from '../helpers/until.js';

const CONFIG = 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.1\n        hostname: web-1\n        ports: { http: 8080/tcp }\n';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response) => ({ status: res.status, body: (res.status === 204 ? null : await res.json()) as any, headers: res.headers });
const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });

t.test('HTTP API', async (t) => {
  const d = await startDaemon(t, { config: CONFIG });
  const api = `${d.api}/api/v1`;

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
    const created = await json(await post(`${api}/services/prod/pg/endpoints`, { id: 'db1', address: '10.0.0.5', hostname: 'db1', ports: { pg: '5432/tcp' }, weight: 30, health: 'tcp' }));
    t.equal(created.status, 201);
    t.match(created.body, { id: 'db1', address: '10.0.0.5', port: 5432, weight: 30, source: 'api' });
    t.equal(created.headers.get('location'), '/api/v1/services/prod/pg/endpoints/db1');
    t.same(await digShort(d.dnsPort, 'pg.prod.cluster.local'), ['10.0.0.5']);
    t.same(await digShort(d.dnsPort, 'SRV', '_pg._tcp.pg.prod.cluster.local'), ['0 30 5432 db1.pg.prod.svc.cluster.local.']);
    const generated = await json(await post(`${api}/services/prod/pg/endpoints`, { address: '10.0.0.6' }));
    t.equal(generated.body.id, '10-0-0-6', 'an id is generated from the address when absent');
    t.same(await digShort(d.dnsPort, 'pg.prod.cluster.local'), ['10.0.0.5', '10.0.0.6']);
    t.equal((await fetch(`${api}/services/prod/pg/endpoints/db1`, { method: 'DELETE' })).status, 204);
    t.same(await digShort(d.dnsPort, 'pg.prod.cluster.local'), ['10.0.0.6']);
    t.equal((await fetch(`${api}/services/prod/pg/endpoints/10-0-0-6`, { method: 'DELETE' })).status, 204);
    t.equal(digStatus(await dig(['@127.0.0.1', '-p', String(d.dnsPort), 'pg.prod.cluster.local'])), 'NXDOMAIN');
  });

  await t.test('a blocking query returns when the service changes', async (t) => {
    await post(`${api}/services/default/cache/endpoints`, { address: '10.0.0.7' });
    const first = await fetch(`${api}/services/default/cache/endpoints`);
    const index = Number(first.headers.get('x-podman-swarm-index'));
    let returned = false;
    const blocked = fetch(`${api}/services/default/cache/endpoints?index=${index}&wait=30s`).then(async (r) => {
      returned = true;
      return json(r);
    });
    await post(`${api}/services/default/other/endpoints`, { address: '10.0.0.9' });
    await new Promise((r) => setTimeout(r, 300));
    t.notOk(returned, 'a change to another service does not wake it');
    await post(`${api}/services/default/cache/endpoints`, { address: '10.0.0.8' });
    const res = await blocked;
    t.ok(Number(res.headers.get('x-podman-swarm-index')) > index);
    t.same(res.body.map((e: { address: string }) => e.address).sort(), ['10.0.0.7', '10.0.0.8']);
    const timed = await fetch(`${api}/services/default/cache/endpoints?index=${res.headers.get('x-podman-swarm-index')}&wait=200ms`);
    t.equal(timed.status, 200, 'returns the unchanged data when the wait ends');
  });

  await t.test('bad input gets a 4xx JSON error', async (t) => {
    const cases: Array<[string, Promise<Response>, number, RegExp]> = [
      ['not JSON', post(`${api}/services/default/x/endpoints`, '{nope'), 400, /not valid JSON/],
      ['no address', post(`${api}/services/default/x/endpoints`, { hostname: 'a' }), 400, /address/],
      ['bad port', post(`${api}/services/default/x/endpoints`, { address: '10.0.0.1', ports: { http: '99999/tcp' } }), 400, /ports\.http/],
      ['bad weight', post(`${api}/services/default/x/endpoints`, { address: '10.0.0.1', weight: 0 }), 400, /weight/],
      ['bad health', post(`${api}/services/default/x/endpoints`, { address: '10.0.0.1', health: 'ping' }), 400, /health/],
      ['unknown field', post(`${api}/services/default/x/endpoints`, { address: '10.0.0.1', colour: 'red' }), 400, /colour: unknown field/],
      ['bad service name', post(`${api}/services/default/Bad_Name/endpoints`, { address: '10.0.0.1' }), 400, /not a DNS label/],
      ['config endpoint', fetch(`${api}/services/default/web/endpoints/web-1`, { method: 'DELETE' }), 409, /config file/],
      ['overwrite config endpoint', post(`${api}/services/default/web/endpoints`, { id: 'web-1', address: '10.0.0.1' }), 409, /config file/],
      ['unknown endpoint', fetch(`${api}/services/default/web/endpoints/zzz`, { method: 'DELETE' }), 404, /no endpoint zzz/],
      ['unknown route', fetch(`${api}/nope`), 404, /no such endpoint/],
      ['wrong method', fetch(`${api}/services`, { method: 'PUT' }), 405, /PUT is not allowed/],
      ['bad index', fetch(`${api}/services?index=abc`), 400, /index=abc/],
      ['wait without index', fetch(`${api}/services?wait=5s`), 400, /wait= needs index=/],
      ['huge body', post(`${api}/services/default/x/endpoints`, 'x'.repeat(100_000)), 413, /larger than/],
      ['dns without name', fetch(`${api}/dns`), 400, /name= is required/],
    ];
    for (const [what, pending, status, pattern] of cases) {
      const res = await pending;
      t.equal(res.status, status, what);
      t.match(res.headers.get('content-type'), /application\/json/, `${what}: JSON`);
      t.match(((await res.json()) as { error: string }).error, pattern, what);
    }
    t.equal(d.proc.exitCode, null, 'the daemon is still running');
  });

  await t.test('API registrations survive a restart', async (t) => {
    await post(`${api}/services/default/keep/endpoints`, { id: 'k1', address: '10.0.0.42', ports: { http: 80 } });
    await d.stop();
    const again = await startDaemon(t, { config: CONFIG, args: ['--state-dir', join(d.dir, 'state')] });
    t.same(await digShort(again.dnsPort, 'keep.default.cluster.local'), ['10.0.0.42']);
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

  // A listener on all addresses is not loopback: reads need the token there too (we still
  // connect through 127.0.0.1, so no traffic leaves the machine).
  const { freePort } = await import('../helpers/ports.js');
  const port = await freePort('0.0.0.0');
  const open = await startDaemon(t, { args: ['--api-token-file', tokenFile, '--api-listen', `0.0.0.0:${port}`] , wait: false });
  // Not waited for by startDaemon (it waits on the loopback API): until it answers there.
  const res = await until('the API on 0.0.0.0 to answer', () => fetch(`http://127.0.0.1:${port}/api/v1/services`));
  t.equal(res.status, 401);
  t.equal(res.headers.get('www-authenticate'), 'Bearer');
  t.equal((await fetch(`http://127.0.0.1:${port}/api/v1/services`, { headers: { authorization: 'Bearer secret-token-0123456789' } })).status, 200);
  await open.stop();
});

t.test('a non-loopback API listener without a token is refused at start', async (t) => {
  const d = await startDaemon(t, { args: ['--api-listen', '0.0.0.0:18999'], wait: false });
  const code = await d.exited;
  t.equal(code, 2);
  t.match(d.logs(), /--api-listen 0\.0\.0\.0:18999 is reachable from the network but no --api-token-file is set/);
});
