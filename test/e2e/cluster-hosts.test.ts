import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { apiOverSocket } from '../helpers/daemon.js';
import { createHosts, gossipArgs, startHostDaemon, type Host, type HostDaemon as Daemon } from '../helpers/hosts.js';
import { isRoot } from '../helpers/netns.js';
import { keygen } from '../../src/commands/keygen.js';
import { hasPodman } from '../helpers/podman.js';
import { hostPodman } from '../helpers/host-podman.js';
import { waiter, expectLog } from '../helpers/until.js';

// Three simulated hosts (network namespaces on a bridge), each running the daemon as root with
// an encrypted gossip key, DNS on its own address. An endpoint registered through the API on
// host 1 (an HTTP server there) is answered on hosts 2 and 3 and reachable from host 3; cutting
// host 1's link withdraws it, restoring the link brings it back; a fourth host with the wrong key
// stays out. Hosts 1, 2 and 3 each run their own Podman (private storage, network config and
// service socket, in the host's own mount namespace) watched by their daemon: a labelled container
// with a published port on host 1 is answered on hosts 2 and 3 with host 1's address and the
// published port, and reachable; one on host 2 likewise from host 3.

if (!isRoot) {
  t.comment('skipped: needs root (run by .ci/run as root)');
  process.exit(0);
}


/** The daemon of `host` with gossip (key `key`, joining `seeds`) and its Podman. */
const startDaemon = (host: Host, dir: string, key: string, seeds: string[], podmanSocket = 'none'): Daemon =>
  startHostDaemon(host, dir, [...gossipArgs(key, seeds), '--podman-socket', podmanSocket]);

const api = (d: Daemon, method: string, path: string, body?: unknown) => apiOverSocket(d, method, path, body);

const until = waiter(60_000);

const dig = (from: Host, server: Host, name: string, type = 'A'): string[] =>
  from.exec('dig', [`@${server.address}`, '+short', '+time=1', '+tries=1', name, type], 5000).split('\n').filter(Boolean);

t.test('three hosts: cross-host answers, reachability, link cut and restore, wrong key', async (t) => {
  const withPodman = hasPodman();
  if (!withPodman) t.comment('podman, runc or busybox-static missing: the container part is skipped');
  const { hosts, dir, cut, restore } = createHosts(t, 4, 'g4', withPodman ? [1, 2, 3] : []);
  const [h1, h2, h3, h4] = hosts as [Host, Host, Host, Host];
  const podmans = withPodman ? await Promise.all([h1, h2, h3].map((h) => hostPodman(t, h, join(dir, `podman${h.index}`)))) : null;
  const [p1, p2, p3] = podmans ?? [];
  const key = join(dir, 'gossip.key');
  writeFileSync(key, `${keygen()}\n`);
  const wrong = join(dir, 'wrong.key');
  writeFileSync(wrong, `${keygen()}\n`);
  const seed = `${h1.address}:7946`;
  const d1 = startDaemon(h1, dir, key, [], p1?.socket);
  const d2 = startDaemon(h2, dir, key, [seed], p2?.socket);
  const d3 = startDaemon(h3, dir, key, [seed], p3?.socket);
  const web = h1.spawn(process.execPath, ['-e', `require('http').createServer((q, r) => r.end('hello from host 1\\n')).listen(8080, '0.0.0.0')`]);
  t.teardown(() => void web.kill('SIGKILL'));

  for (const d of [d1, d2, d3]) {
    await until(`host${d.host.index} sees 3 members`, async () => (await api(d, 'GET', '/api/v1/nodes')).body.filter((n: any) => n.state === 'alive').length === 3);
  }
  const reg = await api(d1, 'POST', '/api/v1/services/default/web/endpoints', { id: 'web-h1', hostname: 'web-h1', address: h1.address, ports: { http: '8080/tcp' }, health: 'none' });
  t.equal(reg.status, 201);

  await t.test('host 1\'s endpoint is answered on hosts 2 and 3 and reachable from host 3', async (t) => {
    for (const h of [h2, h3]) await until(`web on host${h.index}`, () => dig(h, h, 'web.default.cluster.local').includes(h1.address));
    t.same(dig(h3, h3, 'web.default.cluster.local'), [h1.address], 'A = host 1 address');
    const srv = dig(h3, h3, '_http._tcp.web.default.cluster.local', 'SRV');
    t.match(srv[0], /^0 10 8080 web-h1\.web\.default\.svc\.cluster\.local\.$/, 'SRV port = 8080');
    const [addr] = dig(h3, h3, 'web.default.cluster.local');
    const port = srv[0]!.split(' ')[2];
    t.equal(h3.exec('curl', ['-s', '--max-time', '5', `http://${addr}:${port}/`]), 'hello from host 1\n', 'curl from host 3 gets the page');
  });

  const page = (text: string) => ['sh', '-c', `echo ${text} > /tmp/index.html && exec httpd -f -p 80 -h /tmp`];
  await t.test("a labelled container with a published port on host 1: host 1's address and the port elsewhere", { skip: !p1 }, async (t) => {
    await p1!.container(`g4web-${process.pid}`, ['--label', 'podman-swarm.service=web2', '-p', '8081:80'], page('hello from a container on host 1'));
    for (const h of [h2, h3]) await until(`web2 on host${h.index}`, () => dig(h, h, 'web2.default.cluster.local').includes(h1.address));
    t.same(dig(h2, h2, 'web2.default.cluster.local'), [h1.address], 'host 2: A = host 1 address');
    const srv = dig(h3, h3, '_p80._tcp.web2.default.cluster.local', 'SRV');
    t.match(srv[0], /^0 10 8081 /, 'host 3: SRV port = the published port');
    t.equal(h3.exec('curl', ['-s', '--max-time', '5', `http://${h1.address}:8081/`]), 'hello from a container on host 1\n', 'curl from host 3 reaches the container');
    const own = dig(h1, h1, 'web2.default.cluster.local');
    t.equal(own.length, 1);
    t.not(own[0], h1.address, 'host 1 itself answers the container IP');
  });

  await t.test("a labelled container on host 2's own Podman: resolvable and reachable from host 3", { skip: !p2 }, async (t) => {
    await p2!.container(`g4web3-${process.pid}`, ['--label', 'podman-swarm.service=web3', '-p', '8082:80'], page('hello from a container on host 2'));
    await until('web3 on host3', () => dig(h3, h3, 'web3.default.cluster.local').includes(h2.address));
    t.same(dig(h3, h3, 'web3.default.cluster.local'), [h2.address], 'host 3: A = host 2 address');
    t.match(dig(h3, h3, '_p80._tcp.web3.default.cluster.local', 'SRV')[0], /^0 10 8082 /, 'host 3: SRV port = the published port');
    t.equal(h3.exec('curl', ['-s', '--max-time', '5', `http://${h2.address}:8082/`]), 'hello from a container on host 2\n', 'curl from host 3 reaches the container');
  });

  await t.test('cutting host 1 off for 30 s withdraws its endpoints; restoring brings them back', async (t) => {
    cut(h1);
    const cutAt = Date.now();
    // All of host 1's endpoints: the API-registered one and, with Podman, its container.
    const names = ['web', ...(p1 ? ['web2'] : [])].map((n) => `${n}.default.cluster.local`);
    // Found dead after the suspicion time; a host that does not answer a connection at all is
    // withdrawn then, without waiting for --dead-grace (that is for a daemon restarting).
    for (const h of [h2, h3]) await until(`host 1's endpoints gone on host${h.index}`, () => names.every((n) => dig(h, h, n).length === 0), 30_000);
    const members = (await api(d2, 'GET', '/api/v1/nodes')).body;
    t.equal(members.find((n: any) => n.name === 'host1')?.state, 'dead', 'host 2 declares host 1 dead');
    t.pass(`${names.join(', ')} withdrawn on hosts 2 and 3`);
    await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - cutAt))));
    restore(h1);
    for (const h of [h2, h3]) await until(`host 1's endpoints back on host${h.index}`, () => names.every((n) => dig(h, h, n).includes(h1.address)), 90_000);
    t.pass(`${names.join(', ')} answered again on hosts 2 and 3`);
    await expectLog(t, d2, /member host1 \(.*\) is alive/);
  });

  await t.test('a host with the wrong gossip key cannot join, and the logs say why', async (t) => {
    const d4 = startDaemon(h4, dir, wrong, [seed]);
    await until('host 4 logs the refusal', () => /could not join .*authentication failed/.test(d4.logs()), 30_000);
    await expectLog(t, d1, /rejected gossip from .*authentication failed: wrong gossip key/);
    const members = (await api(d1, 'GET', '/api/v1/nodes')).body;
    t.notOk(members.some((n: any) => n.name === 'host4'), 'host 4 is not a member');
    t.same(dig(h4, h4, 'web.default.cluster.local'), [], 'and learns nothing');
  });

  for (const d of [d1, d2, d3]) d.proc.kill('SIGTERM');
});
