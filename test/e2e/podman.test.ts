import t from 'tap';
import { decode, digShort, query, udpExchange } from '../helpers/dns.js';
import { apiOverSocket, startDaemon, runCli, type RunningDaemon } from '../helpers/daemon.js';
import { isRoot } from '../helpers/netns.js';
import { hasPodman, startPodman, type TestPodman } from '../helpers/podman.js';
import { startUpstream } from '../helpers/upstream.js';
import { waiter, expectLog } from '../helpers/until.js';

const until = waiter(10_000);

// The daemon against a real Podman (its own `podman system service`, see helpers/podman.ts):
// labelled containers and auto-registered networks in DNS, container names from inside a
// container that uses the daemon as its DNS server, bad labels, and a Podman restart.

if (!isRoot || !hasPodman()) {
  t.comment('skipped: needs root, podman, runc and busybox-static (run by .ci/run as root)');
  process.exit(0);
}

const P = `p3e${process.pid % 10000}`;

const getJson = async (d: RunningDaemon, path: string): Promise<unknown> => (await apiOverSocket(d, 'GET', path)).body;

const a = (d: RunningDaemon, name: string): Promise<string[]> => digShort(d.dnsPort, name);

let podman: TestPodman;
let d: RunningDaemon;
let net: { subnets: Array<{ subnet: string; gateway: string }> };

t.before(async () => {
  podman = await startPodman(t, P);
  // Auto-registered and without Podman's DNS: the daemon serves its gateway.
  net = await podman.network(`${P}-app`, ['--label', 'podman-swarm.enable=true', '--disable-dns']);
  await podman.network(`${P}-other`);
  const up = await startUpstream(t, { records: { [`upstream.${P}.test`]: ['192.0.2.77'] } });
  d = await startDaemon(t, {
    upstreams: [up.address],
    args: ['--podman-socket', podman.socket, '--resync-interval', '3s', '--health-interval', '1s'],
  });
});

t.test('labelled containers: A and SRV answers; stop → gone', async (t) => {
  const labels = ['--label', 'podman-swarm.service=web', '--label', 'podman-swarm.port.http=80/tcp'];
  const latencies: number[] = [];
  const ips: string[] = [];
  for (const n of [1, 2]) {
    const started = performance.now();
    await podman.container(`${P}-web${n}`, ['--network', `${P}-other`, ...labels]);
    const returned = performance.now();
    // Polled right after `podman run` returns: the figure reported below, never asserted.
    await until('the new endpoint in DNS', async () => {
      const r = decode((await udpExchange(d.dnsPort, query('web.default.cluster.local')))!);
      return (r.answers ?? []).length === n;
    });
    latencies.push(Math.round(performance.now() - returned));
    t.comment(`podman run took ${Math.round(returned - started)} ms; DNS answered ${latencies.at(-1)} ms after it returned`);
  }
  const inspect = JSON.parse(await podman.run(['inspect', `${P}-web1`, `${P}-web2`])) as Array<{ NetworkSettings: { Networks: Record<string, { IPAddress: string }> } }>;
  for (const c of inspect) ips.push(c.NetworkSettings.Networks[`${P}-other`]!.IPAddress);
  t.same(await a(d, 'web.default.cluster.local'), ips.sort(), 'A: both container IPs');
  const srv = await digShort(d.dnsPort, '_http._tcp.web.default.cluster.local', 'SRV');
  t.same(srv, [`0 10 80 ${P}-web1.web.default.svc.cluster.local.`, `0 10 80 ${P}-web2.web.default.svc.cluster.local.`], 'SRV: the named port');

  await podman.run(['stop', '-t', '0', `${P}-web2`]);
  await until('the stopped container to leave DNS', async () => (await a(d, 'web.default.cluster.local')).length === 1);
  t.same(await a(d, 'web.default.cluster.local'), [ips[0]], 'only the running one is left');
  t.comment(`start → DNS answer after podman run returned: ${latencies.join(', ')} ms`);
  const status = (await getJson(d, '/api/v1/status')) as { podman: { last_start_to_registry_ms: number } };
  t.comment(`Podman start event → registry (inspect included): ${status.podman.last_start_to_registry_ms} ms`);
});

t.test('auto-registered network: by container name, or by the compose labels', async (t) => {
  await podman.container(`${P}-plain`, ['--network', `${P}-app`]);
  await podman.container(`${P}-composed`, ['--network', `${P}-app`, '--label', 'com.docker.compose.service=api', '--label', 'com.docker.compose.project=shop']);
  await podman.container(`${P}-optout`, ['--network', `${P}-app`, '--label', 'podman-swarm.enable=false']);
  const plain = await until('the plain container', async () => (await a(d, `${P}-plain.default.cluster.local`))[0]);
  t.match(plain, /^\d+\.\d+\.\d+\.\d+$/);
  t.ok(await until('the compose service', async () => (await a(d, 'api.shop.cluster.local'))[0]), 'compose service/project');
  const out = await digShort(d.dnsPort, `${P}-optout.default.cluster.local`);
  t.same(out, [], 'podman-swarm.enable=false opts out');
});

t.test('inside a container with --dns <gateway>: cluster names, container names, upstream names', async (t) => {
  const gw = net.subnets[0]!.gateway;
  await until('DNS on the gateway', async () => {
    const s = (await getJson(d, '/api/v1/status')) as { podman: { dns_gateways: string[] } };
    return s.podman.dns_gateways.includes(gw);
  });
  // web (labelled) lives on the other network: cluster names reach across networks, plain names do not.
  const script = [
    'nslookup web.default.cluster.local', `nslookup ${P}-plain`, `nslookup ${P}-composed.dns.podman`,
    `nslookup upstream.${P}.test`, `nslookup ${P}-web1 || true`,
  ].join('; echo ====; ');
  const out = await podman.run(['run', '--rm', '--network', `${P}-app`, '--dns', gw, 'localhost/psdns-bb', 'sh', '-c', script]);
  const parts = out.split('====');
  t.match(parts[0], /Name:\s+web\.default\.cluster\.local\s+Address: \d+/, 'cluster name');
  t.match(parts[1], new RegExp(`Name:\\s+${P}-plain\\s+Address: \\d+`), 'another container by its plain name');
  t.match(parts[2], new RegExp(`Name:\\s+${P}-composed\\.dns\\.podman\\s+Address: \\d+`), '<name>.dns.podman');
  t.match(parts[3], /Address: 192\.0\.2\.77/, 'an upstream name, forwarded');
  t.notMatch(parts[4], new RegExp(`Name:\\s+${P}-web1`), 'a container on a network it does not share is not visible');
});

t.test('network connect / disconnect: the container is inspected again (Podman 4.3 events do not name the network)', async (t) => {
  const before = await a(d, 'web.default.cluster.local');
  t.equal(before.length, 1);
  await podman.run(['network', 'connect', `${P}-app`, `${P}-web1`]);
  const both = await until('the second address', async () => {
    const now = await a(d, 'web.default.cluster.local');
    return now.length === 2 ? now : undefined;
  });
  t.ok(both.includes(before[0]!), 'the first address stays');
  await podman.run(['network', 'disconnect', `${P}-app`, `${P}-web1`]);
  await until('the address to go', async () => (await a(d, 'web.default.cluster.local')).length === 1);
  t.same(await a(d, 'web.default.cluster.local'), before);
});

t.test('bad labels: a warning, the endpoint served without the bad field, the problem in status and API', async (t) => {
  await podman.container(`${P}-bad`, ['--network', `${P}-other`, '--label', 'podman-swarm.service=badlabels', '--label', 'podman-swarm.weight=500', '--label', 'podman-swarm.port.http=eighty']);
  await until('the endpoint', async () => (await a(d, 'badlabels.default.cluster.local')).length === 1);
  const weightWarnings = () => d.events().filter((e) => e.level === 40 && /container p3e\d+-bad: label podman-swarm\.weight="500": "500" is not a weight/.test(String(e.msg)));
  await until('the bad-weight warning', () => weightWarnings().length > 0);
  t.equal(weightWarnings().length, 1, 'warned once');
  const eps = (await getJson(d, '/api/v1/services/default/badlabels/endpoints')) as Array<{ weight: number; problems: string[] }>;
  t.equal(eps[0]!.weight, 10, 'the default weight instead');
  t.match(eps[0]!.problems.join('\n'), /podman-swarm\.port\.http="eighty"/);
  const status = await runCli(['status', '--api-socket', d.socket]);
  t.match(status.stdout + status.stderr, /podman-swarm\.weight/, 'podman-swarm-dns status shows it');
});

t.test('Podman restarted: the daemon keeps serving, reconnects and resyncs', async (t) => {
  await podman.stopService();
  await until('the disconnect in the log', async () => /Podman API at .* is not reachable/.test(d.logs()));
  t.same((await a(d, 'web.default.cluster.local')).length, 1, 'known endpoints are still served');
  // Started while the API is down: only the resync after the reconnect can find it.
  await podman.direct(['run', '-d', '--name', `${P}-late`, '--network', `${P}-other`, '--label', 'podman-swarm.service=late', 'localhost/psdns-bb', 'httpd', '-f', '-p', '80']);
  t.teardown(() => podman.direct(['rm', '-f', '-t', '0', `${P}-late`]).catch(() => undefined));
  await podman.startService();
  await until('the late container', async () => (await a(d, 'late.default.cluster.local')).length === 1, 20_000);
  await expectLog(t, d, /connected to Podman at/);
});
