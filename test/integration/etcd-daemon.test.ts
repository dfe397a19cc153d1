import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiOverSocket, runCli, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { digShort } from '../helpers/dns.js';
import { haveEtcd, startEtcd, type EtcdCluster } from '../helpers/etcd.js';
import { freePort } from '../helpers/ports.js';
import { waiter, expectLog } from '../helpers/until.js';

// The daemon with --registry etcd against a real etcd on loopback: two daemons share endpoints
// through it (API registrations; Podman is not needed for what is shown here), etcd killed and
// started again (stale in status, readyz, nodes and metrics, then back with no restart), a graceful
// stop withdrawing at once, and bad settings: a refused password and a TLS handshake against a
// plain port stop the start with exit 2 naming the URL; an unreachable URL is retried while the
// daemon serves.

if (!haveEtcd && !process.env.CI) {
  t.comment('skipped: etcd is not installed (apt-get install etcd-server; .ci/run installs it)');
  process.exit(0);
}

const until = waiter(20_000);
const NAME = 'web.default.svc.cluster.local';

const etcdArgs = (endpoints: string[], extra: string[] = []): string[] => ['--registry', 'etcd', '--etcd-endpoints', endpoints.join(','), '--etcd-lease-ttl', '2s', ...extra];
const register = (d: RunningDaemon, address: string) => apiOverSocket(d, 'POST', '/api/v1/services/default/web/endpoints', { address });
const status = async (d: RunningDaemon): Promise<any> => (await apiOverSocket(d, 'GET', '/api/v1/status')).body;
const metric = async (d: RunningDaemon, name: string): Promise<number | undefined> => {
  const text = await (await fetch(`${d.api}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`podman_swarm_dns_etcd_${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
};

t.test('two daemons share endpoints through etcd; etcd away is stale, not empty, and comes back', async (t) => {
  const etcd: EtcdCluster = await startEtcd(1);
  t.teardown(() => etcd.stop());
  const a = await startDaemon(t, { args: etcdArgs(etcd.endpoints) });
  const b = await startDaemon(t, { args: etcdArgs(etcd.endpoints) });

  t.equal((await register(a, '10.1.0.1')).status, 201, 'registered on A');
  t.same(await until('B answers A\'s endpoint', async () => {
    const r = await digShort(b.dnsPort, NAME);
    return r.length ? r : undefined;
  }), ['10.1.0.1'], 'B answers the endpoint registered on A');
  const sb = await status(b);
  t.equal(sb.etcd.state, 'synced', 'status: synced');
  t.equal(sb.cluster, null, 'no gossip cluster');
  t.match((await runCli(['status', '--api-socket', b.socket])).stdout, /^etcd\s+synced via http:\/\/127\.0\.0\.1:\d+, revision \d+$/m, '`podman-swarm-dns status`: the etcd line');
  const nodes = (await apiOverSocket(b, 'GET', '/api/v1/nodes')).body as Array<{ state: string; local: boolean }>;
  t.equal(nodes.length, 2, 'both nodes listed');
  t.same(nodes.map((n) => n.state), ['alive', 'alive']);
  t.equal(await metric(b, 'up'), 1, 'etcd_up 1');
  t.ok((await metric(a, 'writes_total'))! >= 1, 'A counted its writes');
  t.ok((await metric(b, 'watch_events_total'))! >= 1, "B counted A's keys from the watch");
  const join = await apiOverSocket(b, 'POST', '/api/v1/join', { addresses: ['127.0.0.1:7946'] });
  t.match(JSON.stringify(join.body), /the registry is etcd/, 'no gossip join with etcd, and why');

  await etcd.members[0]!.kill();
  await until('B sees etcd gone', async () => ((await status(b)).etcd.state === 'unavailable' ? true : undefined));
  t.same(await digShort(b.dnsPort, NAME), ['10.1.0.1'], 'B still answers the last known state');
  const ready = await fetch(`${b.api}/readyz`);
  t.equal(ready.status, 200, 'still ready');
  t.match(((await ready.json()) as { stale?: string }).stale, /etcd unreachable/, 'readyz says stale');
  t.match((await status(b)).problems.join('\n'), /etcd unreachable/, 'status lists it as a problem');
  t.match((await runCli(['status', '--api-socket', b.socket])).stdout, /^etcd\s+UNREACHABLE, serving the last known state via http:\/\/127\.0\.0\.1:\d+, revision \d+, stale for \d+ s/m, '`podman-swarm-dns status` says so');
  t.match((await apiOverSocket(b, 'GET', '/api/v1/nodes')).body.find((n: { local: boolean }) => !n.local), { state: 'stale' }, 'the other node is stale');
  t.equal(await metric(b, 'up'), 0, 'etcd_up 0');
  t.ok((await metric(b, 'stale_seconds'))! > 0, 'stale seconds counted');

  // A change made while etcd is away reaches B once it is back, with no restart.
  t.equal((await register(a, '10.1.0.2')).status, 201, 'registered on A while etcd is away');
  await etcd.members[0]!.start();
  t.same(await until('B converges', async () => {
    const r = (await digShort(b.dnsPort, NAME)).sort();
    return r.length === 2 ? r : undefined;
  }), ['10.1.0.1', '10.1.0.2'], 'B answers both after etcd returns');
  await until('B synced again', async () => ((await status(b)).etcd.state === 'synced' ? true : undefined));
  t.notOk(((await (await fetch(`${b.api}/readyz`)).json()) as { stale?: string }).stale, 'readyz no longer stale');

  t.equal(await a.stop(), 0, 'A stopped gracefully');
  t.same(await until("A's endpoints gone from B", async () => ((await digShort(b.dnsPort, NAME)).length === 0 ? [] : undefined)), [], 'gone after the lease is revoked');
  t.equal((await apiOverSocket(b, 'GET', '/api/v1/nodes')).body.length, 1, 'A left the nodes');
});

t.test('bad etcd settings: refused password and TLS against a plain port stop the start (exit 2); unreachable is retried', async (t) => {
  const etcd: EtcdCluster = await startEtcd(1);
  t.teardown(() => etcd.stop());
  const url = etcd.endpoints[0]!;
  const ctl = (...args: string[]) => spawnSync('etcdctl', ['--endpoints', url, ...args], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8' });
  t.equal(ctl('user', 'add', 'root:right-password').status, 0, 'root user added');
  t.equal(ctl('auth', 'enable').status, 0, 'auth enabled');

  const wrong = await startDaemon(t, { wait: false, args: etcdArgs([url], ['--etcd-username', 'root', '--etcd-password-file', pwFile(t, 'wrong-password')]) });
  t.equal(await wrong.exitCode(), 2, 'wrong password: exit 2');
  await expectLog(t, wrong, new RegExp(`etcd ${url}: authentication failed.*--etcd-password-file`), 'names the URL and the cause');
  t.equal(wrong.logs().split('\n').filter((l) => /authentication failed/.test(l)).length, 1, 'in one line, with no retry announced');

  const tls = await startDaemon(t, { wait: false, args: etcdArgs([url.replace('http:', 'https:')]) });
  t.equal(await tls.exitCode(), 2, 'TLS to a plain port: exit 2');
  await expectLog(t, tls, /etcd https:\/\/127\.0\.0\.1:\d+: TLS failed/, 'names the URL and the cause');

  const right = await startDaemon(t, { args: etcdArgs([url], ['--etcd-username', 'root', '--etcd-password-file', pwFile(t, 'right-password')]) });
  t.equal((await register(right, '10.2.0.1')).status, 201);
  await until('the right password syncs', async () => ((await status(right)).etcd.state === 'synced' ? true : undefined));

  const closed = `http://127.0.0.1:${await freePort()}`;
  const away = await startDaemon(t, { args: etcdArgs([closed]) });
  t.equal((await register(away, '10.3.0.1')).status, 201, 'an unreachable etcd: the daemon starts and takes registrations');
  t.same(await digShort(away.dnsPort, NAME), ['10.3.0.1'], 'and answers its local state');
  const s = await status(away);
  t.equal(s.etcd.state, 'unavailable');
  t.match(s.problems.join('\n'), new RegExp(`etcd unreachable \\(${closed}`), 'status names the URL');
});

t.test('--etcd-skydns-prefix: the records CoreDNS\'s etcd plugin reads, written and withdrawn with the endpoints', async (t) => {
  const etcd: EtcdCluster = await startEtcd(1);
  t.teardown(() => etcd.stop());
  const url = etcd.endpoints[0]!;
  const range = async (prefix: string): Promise<Array<{ key: string; value: any }>> => {
    const b64 = (x: string) => Buffer.from(x).toString('base64');
    const end = Buffer.from(prefix);
    end[end.length - 1]!++;
    const r = (await (await fetch(`${url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: b64(prefix), range_end: end.toString('base64') }) })).json()) as { kvs?: Array<{ key: string; value: string }> };
    return (r.kvs ?? []).map((kv) => ({ key: Buffer.from(kv.key, 'base64').toString(), value: JSON.parse(Buffer.from(kv.value, 'base64').toString()) }));
  };
  const bad = await startDaemon(t, { wait: false, args: etcdArgs([url], ['--etcd-skydns-prefix', '/podman-swarm-dns/skydns']) });
  t.equal(await bad.exitCode(), 2, 'a SkyDNS prefix inside the registry prefix: exit 2');
  await expectLog(t, bad, /overlaps --etcd-prefix/);

  // A long lease: after the kill below, the first run's records would still be there beside a second node's.
  const args = etcdArgs([url], ['--etcd-skydns-prefix', '/skydns', '--etcd-lease-ttl', '60s']);
  let a = await startDaemon(t, { args });
  const reg = await apiOverSocket(a, 'POST', '/api/v1/services/default/web/endpoints', { id: 'w1', hostname: 'w1', address: '10.4.0.1', ports: { http: '8080/tcp' }, weight: 20 });
  t.equal(reg.status, 201);
  // What CoreDNS reads for web.default.cluster.local: every key under /skydns/local/cluster/default/web/.
  const records = await until('the SkyDNS record', async () => {
    const r = await range('/skydns/local/cluster/default/web/');
    return r.length ? r : undefined;
  });
  t.equal(records.length, 1);
  t.match(records[0]!.key, /^\/skydns\/local\/cluster\/default\/web\/w1-[0-9a-f]{24}$/, 'key: the zone reversed, namespace, service, a DNS label');
  t.same(records[0]!.value, { host: '10.4.0.1', port: 8080, weight: 20 }, 'value: host, port, weight');

  // A restart (same state directory, so the same node) replaces its records rather than adding to them.
  await a.stop('SIGKILL');
  a = await startDaemon(t, { args: [...args, '--state-dir', join(a.dir, 'state')] });
  await until('the restarted daemon synced', async () => ((await status(a)).etcd.state === 'synced' ? true : undefined));
  t.equal((await range('/skydns/')).length, 1, 'still one record after a restart');
  t.equal(await a.stop(), 0);
  t.same(await range('/skydns/'), [], 'a graceful stop withdraws the records');
});

function pwFile(t: { teardown(fn: () => void): void }, pw: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'psd-etcd-pw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const p = join(dir, 'password');
  writeFileSync(p, `${pw}\n`);
  return p;
}
