import t from 'tap';
import { join } from 'node:path';
import { apiOverSocket } from '../helpers/daemon.js';
import { haveEtcd, startEtcdOn, type NsEtcdMember } from '../helpers/etcd.js';
import { createHosts, startHostDaemon, type Host, type HostDaemon as Daemon } from '../helpers/hosts.js';
import { hostPodman } from '../helpers/host-podman.js';
import { isRoot } from '../helpers/netns.js';
import { hasPodman } from '../helpers/podman.js';
import { waiter } from '../helpers/until.js';

// The etcd registry across three simulated hosts (network namespaces on a bridge): an etcd member
// on each host (one three-member cluster) and a daemon on each with --registry etcd, DNS on the
// host's address. Hosts 1 and 2 run their own Podman: a labelled container with a published port
// on each is answered on host 3 (host 1's and 2's address, the published port). The fault steps
// use API registrations (Podman adds nothing to them): host 1's daemon killed with SIGKILL (its
// endpoints go when its lease expires) and stopped gracefully (they go at once, the lease
// revoked); one etcd member killed (the daemon using it moves to the next); every member killed
// for 30 s (DNS keeps answering the last state; after they return, every daemon converges with no
// restart); a compacted revision (host 3's daemon frozen while the others change and etcd
// compacts: it lists everything again, takes a new lease and writes its keys again).
// How long a withdrawal took is printed, not asserted (bench/etcd.mjs measures it).

if (!isRoot || (!haveEtcd && !process.env.CI)) {
  t.comment(isRoot ? 'skipped: etcd is not installed (apt-get install etcd-server etcd-client)' : 'skipped: needs root (run by .ci/run as root)');
  process.exit(0);
}

const TTL_S = 2;
const until = waiter(60_000);


/** The daemon of `host` on the etcd registry (no gossip). */
const startDaemon = (host: Host, dir: string, etcd: string[], podmanSocket = 'none'): Daemon =>
  startHostDaemon(host, dir, ['--podman-socket', podmanSocket, '--registry', 'etcd', '--etcd-endpoints', etcd.join(','), '--etcd-lease-ttl', `${TTL_S}s`]);

const api = (d: Daemon, method: string, path: string, body?: unknown) => apiOverSocket(d, method, path, body);
const etcdStatus = async (d: Daemon): Promise<{ state: string; relists: number; lease: string | null }> => (await api(d, 'GET', '/api/v1/status')).body.etcd;
const register = (d: Daemon, service: string, id: string, address: string) =>
  api(d, 'POST', `/api/v1/services/default/${service}/endpoints`, { id, hostname: id, address, health: 'none' });
const dig = (from: Host, name: string, type = 'A'): string[] =>
  from.exec('dig', [`@${from.address}`, '+short', '+time=1', '+tries=1', `${name}.default.cluster.local`, type], 5000).split('\n').filter(Boolean).sort();
/** The answer when it has records (one dig, so the value checked is the value returned). */
const someOf = (a: string[]): string[] | false => a.length > 0 && a;
const exited = (d: Daemon): Promise<void> => (d.proc.exitCode !== null ? Promise.resolve() : new Promise((r) => d.proc.once('exit', () => r())));

t.test('three hosts on a three-member etcd cluster', async (t) => {
  const withPodman = hasPodman();
  if (!withPodman) t.comment('podman, runc or busybox-static missing: the container step is skipped');
  const { hosts, dir } = createHosts(t, 3, 'e20', withPodman ? [1, 2] : []);
  const [h1, h2, h3] = hosts as [Host, Host, Host];
  const members = await startEtcdOn(hosts, dir);
  const [e1] = members as [NsEtcdMember, NsEtcdMember, NsEtcdMember];
  // Each daemon tries its own host's member first, then the others.
  const endpointsFor = (h: Host): string[] => [members[h.index - 1]!, ...members.filter((m) => m.host !== h)].map((m) => m.clientUrl);
  const podmans = withPodman ? await Promise.all([h1, h2].map((h) => hostPodman(t, h, join(dir, `podman${h.index}`)))) : null;
  const [p1, p2] = podmans ?? [];
  let d1 = startDaemon(h1, dir, endpointsFor(h1), p1?.socket);
  const d2 = startDaemon(h2, dir, endpointsFor(h2), p2?.socket);
  const d3 = startDaemon(h3, dir, endpointsFor(h3));
  t.teardown(() => {
    for (const d of [d1, d2, d3]) d.proc.kill('SIGKILL');
  });
  for (const d of [d1, d2, d3]) await until(`host${d.host.index} synced with etcd`, async () => (await etcdStatus(d))?.state === 'synced');
  const alive = async (d: Daemon): Promise<number> => (await api(d, 'GET', '/api/v1/nodes')).body.filter((n: { state: string }) => n.state === 'alive').length;
  t.equal(await until('host 3 lists 3 nodes', async () => ((await alive(d3)) === 3 ? 3 : undefined)), 3, 'host 3 lists the three nodes');

  t.equal((await register(d1, 'web', 'web-h1', h1.address)).status, 201);
  t.equal((await register(d3, 'own', 'own-h3', h3.address)).status, 201);

  await t.test("host 1's registration and the containers on hosts 1 and 2 are answered on host 3", async (t) => {
    t.same(await until('web on host 3', () => someOf(dig(h3, 'web'))), [h1.address], 'API registration on host 1: A on host 3');
    t.same(await until('own on host 1', () => someOf(dig(h1, 'own'))), [h3.address], 'and host 3\'s on host 1');
    if (!p1 || !p2) return;
    const page = ['sh', '-c', 'echo hi > /tmp/index.html && exec httpd -f -p 80 -h /tmp'];
    await p1.container(`e20c1-${process.pid}`, ['--label', 'podman-swarm.service=ctr', '-p', '8081:80'], page);
    await p2.container(`e20c2-${process.pid}`, ['--label', 'podman-swarm.service=ctr', '-p', '8082:80'], page);
    t.same(await until('both containers on host 3', () => (a => a.length === 2 && a)(dig(h3, 'ctr'))), [h1.address, h2.address].sort(), "containers on hosts 1 and 2: their hosts' addresses on host 3");
    const ports = dig(h3, '_p80._tcp.ctr', 'SRV').map((l) => l.split(' ')[2]).sort();
    t.same(ports, ['8081', '8082'], 'SRV: the published ports');
  });

  await t.test("kill -9 of host 1's daemon: its endpoints go everywhere when its lease expires", async (t) => {
    const names = ['web', ...(p1 ? ['ctr'] : [])];
    const before = { h2: dig(h2, 'ctr').length, h3: dig(h3, 'ctr').length };
    const killedAt = Date.now();
    d1.proc.kill('SIGKILL');
    await exited(d1);
    for (const h of [h2, h3]) await until(`host 1's endpoints gone on host${h.index}`, () => !dig(h, 'web').includes(h1.address) && !(p1 && dig(h, 'ctr').includes(h1.address)), (TTL_S + 10) * 1000);
    t.comment(`gone on hosts 2 and 3 ${Date.now() - killedAt} ms after the kill (lease TTL ${TTL_S} s)`);
    t.same(dig(h3, 'web'), [], 'web gone on host 3');
    if (p1) t.same([dig(h2, 'ctr').length, dig(h3, 'ctr').length], [before.h2 - 1, before.h3 - 1], "only host 1's container left the answers");
    t.equal((await api(d3, 'GET', '/api/v1/nodes')).body.length, 2, 'host 1 left host 3\'s nodes');
    t.pass(`${names.join(', ')} withdrawn`);
    // Back, with the same state directory: its registrations are written again.
    d1 = startDaemon(h1, dir, endpointsFor(h1), p1?.socket);
    t.same(await until('web back on host 3', () => someOf(dig(h3, 'web'))), [h1.address], 'host 1 restarted: web back on host 3');
  });

  await t.test("graceful stop of host 1's daemon: its endpoints go at once", async (t) => {
    d1.proc.kill('SIGTERM');
    await exited(d1);
    const stoppedAt = Date.now();
    t.equal(d1.proc.exitCode, 0, 'stopped cleanly');
    await until('web gone on host 3', () => dig(h3, 'web').length === 0, 10_000);
    t.comment(`gone on host 3 ${Date.now() - stoppedAt} ms after the daemon exited (lease revoked)`);
    t.same(dig(h2, 'web'), [], 'and on host 2');
    d1 = startDaemon(h1, dir, endpointsFor(h1), p1?.socket);
    await until('web back on host 3', () => dig(h3, 'web').includes(h1.address));
  });

  await t.test("one etcd member killed (host 1's, the one its daemon uses first): everything keeps working", async (t) => {
    await e1.kill();
    t.equal((await register(d1, 'after', 'after-h1', h1.address)).status, 201, 'registered on host 1');
    t.same(await until('after on host 3', () => someOf(dig(h3, 'after'))), [h1.address], "host 1's new endpoint answered on host 3 through the other members");
    await until('host 1 synced through another member', async () => (await etcdStatus(d1)).state === 'synced');
    t.equal((await api(d2, 'DELETE', '/api/v1/services/default/after/endpoints/after-h1')).status, 404, "host 2 cannot delete host 1's endpoint");
    t.same(dig(h3, 'after'), [h1.address], 'still answered');
    e1.start();
    await until('member 1 back', () => (e1.ctl('endpoint', 'health'), true));
  });

  await t.test('every etcd member stopped for 30 s: DNS keeps answering, then converges with no restart', async (t) => {
    const pids = [d1, d2, d3].map((d) => d.proc.pid);
    await Promise.all(members.map((m) => m.kill()));
    const downAt = Date.now();
    await until('host 3 sees etcd gone', async () => (await etcdStatus(d3)).state === 'unavailable');
    t.equal((await register(d1, 'late', 'late-h1', h1.address)).status, 201, 'a registration on host 1 while etcd is down');
    t.same(dig(h1, 'late'), [h1.address], 'answered on host 1 (its own)');
    let rounds = 0;
    while (Date.now() - downAt < 30_000 && rounds++ < 60) {
      t.same(dig(h3, 'web'), [h1.address], `host 3 still answers web (${Math.round((Date.now() - downAt) / 1000)} s)`);
      await new Promise((r) => setTimeout(r, 5000));
    }
    const ready = JSON.parse(h3.exec('curl', ['-s', '--unix-socket', d3.socket, 'http://x/readyz']));
    t.match(ready, { ready: true, stale: /etcd unreachable/ }, 'host 3 ready, marked stale');
    t.equal(dig(h3, 'late').length, 0, 'host 1\'s change is not on host 3 yet');
    for (const m of members) m.start();
    t.same(await until('late on host 3', () => someOf(dig(h3, 'late')), 90_000), [h1.address], 'after etcd returns, host 3 answers the change made meanwhile');
    for (const d of [d1, d2, d3]) await until(`host${d.host.index} synced again`, async () => (await etcdStatus(d)).state === 'synced', 90_000);
    t.same([d1, d2, d3].map((d) => d.proc.pid), pids, 'no daemon restarted');
    t.same([d1, d2, d3].map((d) => d.proc.exitCode), [null, null, null], 'all running');
    t.same(dig(h1, 'own'), [h3.address], "host 3's endpoint still on host 1");
  });

  await t.test('a compacted watch revision: host 3 lists everything again', async (t) => {
    const relists = (await etcdStatus(d3)).relists;
    const lease = (await etcdStatus(d3)).lease;
    d3.proc.kill('SIGSTOP');
    try {
      // Longer than the lease first: host 3 resumes with a new session, not just a renewal, and
      // the deletes of its expired keys come before the revision compacted below.
      await new Promise((r) => setTimeout(r, (TTL_S + 3) * 1000));
      t.equal((await api(d1, 'DELETE', '/api/v1/services/default/web/endpoints/web-h1')).status, 204, 'host 1 removes web-h1 while host 3 is frozen');
      // A key outside the prefix moves the revision past host 3's; compacting there takes the
      // revision its watch resumes from.
      e1.ctl('put', '/elsewhere', 'x');
      const rev = /"revision":(\d+)/.exec(e1.ctl('get', '/elsewhere', '-w', 'json'))![1]!;
      e1.ctl('compaction', rev);
    } finally {
      d3.proc.kill('SIGCONT');
    }
    await until('host 3 listed again', async () => (await etcdStatus(d3)).relists > relists);
    t.pass('host 3 listed everything again');
    await until('host 3 synced', async () => (await etcdStatus(d3)).state === 'synced');
    t.not((await etcdStatus(d3)).lease, lease, 'on a new lease');
    t.same(dig(h3, 'web'), [], 'web-h1, removed meanwhile, is gone on host 3');
    t.same(await until('own back on host 1', () => someOf(dig(h1, 'own'))), [h3.address], "host 3's keys written again on the new lease");
  });

  for (const d of [d1, d2, d3]) d.proc.kill('SIGTERM');
  await Promise.all([d1, d2, d3].map(exited));
});
