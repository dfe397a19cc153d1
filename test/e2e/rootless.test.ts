import t from 'tap';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { apiOverSocket, CLI } from '../helpers/daemon.js';
import { createHosts, gossipArgs, startHostDaemon, type Host, type HostDaemon as Daemon } from '../helpers/hosts.js';
import { hostPodman } from '../helpers/host-podman.js';
import { isRoot } from '../helpers/netns.js';
import { IMAGE } from '../helpers/podman.js';
import { hasRootless, rootlessPodman } from '../helpers/rootless-podman.js';
import { upstreamOn } from '../helpers/upstream.js';
import { waiter } from '../helpers/until.js';
import { keygen } from '../../src/commands/keygen.js';

// Rootless Podman for real: two simulated hosts; host 1 runs root's Podman and a user's rootless
// Podman (slirp4netns), its daemon as root follows both (the user's socket found under
// /run/user). A rootless container with -p on host 1 is answered on host 2 with host 1's address
// and the published port, reachable from there, health-checked without flapping, and gone after
// its stop; a root container of the same service is answered next to it; a rootless container
// without a published port is registered as isolated on host 1 and never served to host 2. Root
// and the user each have a network "rlnames" (same subnet) with a container "rlname": the user's
// containers (slirp4netns, its rootless bridge) get the user's through the daemon on the host
// address, root's container and the host get root's; outside names go to host 1's fake upstream.

if (!isRoot || !hasRootless()) {
  t.comment('skipped: needs root, podman, runc, busybox-static, uidmap and slirp4netns (run by .ci/run as root)');
  process.exit(0);
}


/** The daemon of `host` with gossip, quick health checks and resyncs; `args` add the Podman sockets. */
const startDaemon = (host: Host, dir: string, key: string, args: string[], o: { upstream?: string; dnsListen?: string } = {}): Daemon =>
  startHostDaemon(host, dir, [...gossipArgs(key), '--health-interval', '500ms', '--health-fall', '2', '--resync-interval', '5s', ...args], o);

const until = waiter(60_000);
/** GET over the API socket; a connection the daemon closed as idle just then (EPIPE, ECONNRESET) is retried, twice at most. */
async function api(d: Daemon, path: string): Promise<{ status: number; body: any }> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await apiOverSocket(d, 'GET', path);
    } catch (e) {
      if (attempt >= 2 || !/EPIPE|ECONNRESET/.test((e as Error).message)) throw e;
    }
  }
}
const dig = (from: Host, name: string, type = 'A'): string[] =>
  from.exec('dig', [`@${from.address}`, '+short', '+time=1', '+tries=1', name, type], 5000).split('\n').filter(Boolean);
const srvPorts = (from: Host, name: string): number[] => dig(from, name, 'SRV').map((l) => Number(l.split(' ')[2])).sort();
/** The addresses a busybox nslookup printed for the name (not the server's `Address: <ip>:53`). */
const looked = (out: string): string[] => [...out.matchAll(/^Address( \d+)?:\s+(\S+)\s*$/gm)].map((m) => m[2]!).filter((a) => !a.endsWith(':53'));
const OUTSIDE = 'outside.example.test';
const CLUSTER_DNS = '10.223.0.10';
/** Why the user's Podman cannot run a pasta container (false when it can): `podman info` names pasta from Podman 4.4 on. */
function pastaMissing(user: { run(args: string[]): string }): string | false {
  try {
    const exe = user.run(['info', '--format', '{{.Host.Pasta.Executable}}']).trim();
    return exe ? false : 'podman info names no pasta executable (apt-get install passt)';
  } catch (e) {
    const version = (() => { try { return user.run(['version', '--format', '{{.Server.Version}}']).trim(); } catch { return '?'; } })();
    return `Podman ${version} has no pasta network mode (added in Podman 4.4; \`podman run --network pasta\` says "unable to find network with name or ID pasta: network not found"): ${(e as Error).message.split('\n').find((l) => l.startsWith('Error')) ?? ''}`;
  }
}
const page = (text: string) => ['sh', '-c', `echo ${text} > /tmp/index.html && exec httpd -f -p 80 -h /tmp`];

t.test('rootless Podman: answered and reachable across hosts, healthy, next to root, gone on stop', async (t) => {
  const { hosts, dir } = createHosts(t, 2, 'rl', [1]);
  const [h1, h2] = hosts as [Host, Host];
  const [root, user] = await Promise.all([hostPodman(t, h1, join(dir, 'podman1')), rootlessPodman(t, h1)]);
  const key = join(dir, 'gossip.key');
  writeFileSync(key, `${keygen()}\n`);
  // Host 1's upstream: a fake one on its loopback (nothing leaves the test's hosts).
  const upstream = await upstreamOn(t, h1.prefix, { [OUTSIDE]: ['192.0.2.77'] });
  // Host 1's daemon also serves the cluster DNS address (here on loopback: the test runs it with no link of its own).
  h1.exec('ip', ['addr', 'add', `${CLUSTER_DNS}/32`, 'dev', 'lo']);
  const d1 = startDaemon(h1, dir, key, ['--podman-socket', root.socket], { upstream: '127.0.0.1:5300', dnsListen: `${h1.address}:53,${CLUSTER_DNS}:53` });
  const d2 = startDaemon(h2, dir, key, ['--podman-socket', 'none', '--join', `${h1.address}:7946`]);
  t.teardown(() => {
    for (const d of [d1, d2]) d.proc.kill('SIGKILL');
  });
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`host 1 daemon:\n${d1.logs().slice(-6000)}`);
  });

  await until("host 1 follows root's and the user's Podman", async () => {
    const pm = (await api(d1, '/api/v1/status')).body?.podman;
    return pm?.sockets?.length === 2 && pm.sockets.every((s: any) => s.connected) && pm.sockets.find((s: any) => s.owner === user.user && s.rootless);
  });
  t.pass(`the daemon found ${user.user}'s socket at ${user.socket}`);

  user.container('rlweb', ['--label', 'podman-swarm.service=rlweb', '-p', '18301:80'], page('hello from a rootless container'));
  const name = 'rlweb.default.cluster.local';
  await until('the rootless container answered on host 2', () => srvPorts(h2, `_p80._tcp.${name}`).includes(18301));

  await t.test("host 2 gets host 1's address and the published port, and reaches the container", async (t) => {
    t.same(dig(h2, name), [h1.address], 'A = host 1 address');
    t.same(srvPorts(h2, `_p80._tcp.${name}`), [18301], 'SRV port = the published port');
    t.equal(h2.exec('curl', ['-s', '--max-time', '5', `http://${h1.address}:18301/`]), 'hello from a rootless container\n', 'curl from host 2 reaches it');
    t.same(dig(h1, name), [h1.address], 'host 1 itself answers its address too (the container IP is in the user\'s namespace)');
    const [ep] = (await api(d1, '/api/v1/services/default/rlweb/endpoints')).body;
    t.match(ep, { id: `rlweb.${user.user}`, owner: user.user, isolated: false, address: h1.address, port: 18301 }, 'the API shows the owner');
  });

  await t.test('health-checked at the published port: stays healthy', async (t) => {
    // Several check rounds (500 ms each, 2 failures to fall), then the endpoint's state.
    await until('checked', async () => (await api(d1, '/api/v1/status')).body.health.checked >= 1);
    await new Promise((r) => setTimeout(r, 3000));
    const status = (await api(d1, '/api/v1/status')).body;
    t.same(status.health.unhealthy, [], 'nothing unhealthy');
    t.same(status.health.not_checkable, [], 'and nothing unreachable');
    t.equal((await api(d2, '/api/v1/services/default/rlweb/endpoints')).body[0]?.healthy, true, 'healthy as host 2 sees it');
  });

  await t.test('a root container of the same service is answered next to it', async (t) => {
    await root.container('rlweb-root', ['--label', 'podman-swarm.service=rlweb', '-p', '18302:80'], page('hello from a root container'));
    await until('both on host 2', () => srvPorts(h2, `_p80._tcp.${name}`).length === 2);
    t.same(srvPorts(h2, `_p80._tcp.${name}`), [18301, 18302]);
    const eps = (await api(d2, '/api/v1/services/default/rlweb/endpoints')).body;
    t.same(eps.map((e: any) => e.owner).sort(), ['root', user.user].sort(), 'one endpoint per owner');
    t.equal(h2.exec('curl', ['-s', '--max-time', '5', `http://${h1.address}:18302/`]), 'hello from a root container\n');
  });

  await t.test('a slirp4netns container resolves cluster names through the daemon on the host address', async (t) => {
    // Its queries reach the host from the host's own address (slirp4netns), which the daemon serves.
    const out = user.run(['run', '--rm', '--dns', h1.address, IMAGE, 'nslookup', name, h1.address]);
    t.match(out, new RegExp(`Address:\\s+${h1.address.replace(/\./g, '\\.')}\\s*$`, 'm'), `${name} → ${h1.address}`);
  });

  await t.test("container names: each owner's own, on a network of the same name and subnet; outside names through the forwarder", async (t) => {
    // Root and the user both have a network "rlnames" 10.89.57.0/24 with a container "rlname":
    // root's at .6 on the host's bridge, the user's at .5 in the user's own network namespace.
    const net = ['network', 'create', '--subnet', '10.89.57.0/24', 'rlnames'];
    user.run(net);
    await root.run(net);
    user.container('rlname', ['--network', 'rlnames', '--ip', '10.89.57.5'], page('user'));
    await root.container('rlname', ['--network', 'rlnames', '--ip', '10.89.57.6'], page('root'));
    await until("root's rlname answered to host 1 itself", () => dig(h1, 'rlname').join() === '10.89.57.6');
    const script = `nslookup rlname ${CLUSTER_DNS}; nslookup ${OUTSIDE} ${CLUSTER_DNS}`;
    // A slirp4netns container's queries arrive from the host's own address, from a socket of the user.
    const slirp = await until("the user's slirp4netns container gets the user's rlname", () => {
      const out = user.run(['run', '--rm', '--dns', CLUSTER_DNS, IMAGE, 'sh', '-c', script]);
      return looked(out).includes('10.89.57.5') && out;
    });
    t.same(looked(slirp), ['10.89.57.5', '192.0.2.77'], `slirp4netns: rlname → the user's 10.89.57.5 (not root's), ${OUTSIDE} → the upstream's answer`);
    await until('the upstream was asked', () => upstream.queries().includes(OUTSIDE));
    // (Before the daemon knew the user's rlname, a try may have been forwarded, as any unknown name is.)
    const asked = upstream.queries().length;
    const bridge = user.run(['run', '--rm', '--network', 'rlnames', '--dns', CLUSTER_DNS, IMAGE, 'sh', '-c', script]);
    // A name only the upstream knows, asked last: once it is there, everything asked before it is too.
    t.same(dig(h1, 'marker.example.test'), [], 'the upstream has no marker');
    await until('the marker at the upstream', () => upstream.queries().includes('marker.example.test'));
    t.notOk(upstream.queries().slice(asked).includes('rlname'), 'a known container name is not sent upstream');
    t.same(looked(bridge), ['10.89.57.5', '192.0.2.77'], "on the user's rootless bridge network: the same");
    const rootOut = await root.run(['run', '--rm', '--network', 'rlnames', '--dns', h1.address, IMAGE, 'busybox', 'nslookup', 'rlname', h1.address]);
    t.same(looked(rootOut), ['10.89.57.6'], "root's container on root's rlnames: root's rlname");
    t.same(dig(h1, 'rlname'), ['10.89.57.6'], "host 1 itself (root): root's");
  });

  // Podman gained the pasta network mode in 4.4; Debian 12's 4.3.1 has none ("unable to find network with name or ID pasta").
  const pastaSkip = pastaMissing(user);
  await t.test('pasta: at the node address and published port, reachable from host 2; resolves through the cluster DNS address', { skip: pastaSkip }, async (t) => {
    // pasta copies the host's uplink (its address and default route) into the container: the host needs a default route.
    h1.exec('ip', ['route', 'replace', 'default', 'via', h2.address]);
    t.teardown(() => void h1.exec('ip', ['route', 'del', 'default']));
    user.container('rlpasta', ['--network', 'pasta', '--label', 'podman-swarm.service=rlpasta', '-p', '18303:80'], page('hello from pasta'));
    const pasta = 'rlpasta.default.cluster.local';
    await until('the pasta container answered on host 2', () => srvPorts(h2, `_p80._tcp.${pasta}`).includes(18303));
    t.same(dig(h2, pasta), [h1.address], "A = host 1's address");
    t.equal(h2.exec('curl', ['-s', '--max-time', '5', `http://${h1.address}:18303/`]), 'hello from pasta\n', 'curl from host 2 reaches it');
    // The container has the host's own address: it asks the cluster DNS address, which pasta sends from the host.
    const out = user.run(['run', '--rm', '--network', 'pasta', '--dns', CLUSTER_DNS, IMAGE, 'sh', '-c',
      `nslookup ${pasta} ${CLUSTER_DNS}; nslookup rlname ${CLUSTER_DNS}; nslookup ${OUTSIDE} ${CLUSTER_DNS}`]);
    t.same(looked(out), [h1.address, '10.89.57.5', '192.0.2.77'], "a cluster name, the user's container name, an outside name");
  });

  // What a pasta container's queries take, with pasta itself (the user's own, as Podman would run it):
  // pasta sends them from sockets of the user in the host's namespace. Runs with Podman 4.3 too.
  await t.test("pasta's network as the user: cluster names, the user's container names and outside names through the cluster DNS address", { skip: existsSync('/usr/bin/pasta') ? false : 'no pasta (apt-get install passt)' }, async (t) => {
    // pasta copies the host's uplink (its address and default route) into its namespace: the host needs a default route.
    h1.exec('ip', ['route', 'replace', 'default', 'via', h2.address]);
    t.teardown(() => void h1.exec('ip', ['route', 'del', 'default']));
    const viaPasta = (q: string): string[] => looked(h1.exec('runuser', ['-u', user.user, '--', 'pasta', '--quiet', '--config-net', '--', '/bin/busybox', 'nslookup', q, CLUSTER_DNS]));
    t.ok(viaPasta(name).includes(h1.address), `${name}: the rootless endpoint at host 1's address is among the answers`);
    t.same(viaPasta('rlname'), ['10.89.57.5'], "rlname: the user's (not root's 10.89.57.6)");
    t.same(viaPasta(OUTSIDE), ['192.0.2.77'], `${OUTSIDE}: the upstream's answer`);
  });

  await t.test('without a published port: isolated on host 1, never served to host 2', async (t) => {
    user.container('rliso', ['--label', 'podman-swarm.service=rliso'], page('unreachable'));
    const eps = await until('registered on host 1', async () => {
      const r = await api(d1, '/api/v1/services/default/rliso/endpoints');
      return r.status === 200 && r.body.length === 1 && r.body;
    });
    t.match(eps[0], { owner: user.user, isolated: true, reachable: true });
    t.match((await api(d1, '/api/v1/status')).body.problems.join('\n'), /rootless container of .* without a published port/);
    const r2 = await until('known to host 2', async () => {
      const r = await api(d2, '/api/v1/services/default/rliso/endpoints');
      return r.status === 200 && r.body.length === 1 && r.body;
    });
    t.equal(r2[0].reachable, false, 'host 2 knows it is not reachable from there');
    t.same(dig(h2, 'rliso.default.cluster.local'), [], 'and does not answer it');
  });

  await t.test("a daemon run as the user itself: its slirp4netns container at the host address and published port", async (t) => {
    // The user's own daemon (no root, no other host): port 5353, its own gossip port, its default socket.
    const home = join(user.home, 'psd');
    h1.exec('runuser', ['-u', user.user, '--', 'mkdir', '-p', home]);
    writeFileSync(join(user.home, 'user.yaml'), '');
    const socket = join(home, 'api.sock');
    const proc = h1.spawn(user.asUser[0]!, [...user.asUser.slice(1), process.execPath, CLI, 'daemon', '--config', join(user.home, 'user.yaml'), '--link', 'none',
      '--node-name', 'laptop', '--state-dir', join(home, 'state'), '--dns-listen', `${h1.address}:5353`, '--api-listen', `unix:${socket}`,
      '--upstream-dns', '127.0.0.1:9', '--gossip-listen', '127.0.0.1:7947', '--insecure-gossip']);
    let out = '';
    proc.stdout!.on('data', (c: Buffer) => (out += c));
    proc.stderr!.on('data', (c: Buffer) => (out += c));
    t.teardown(() => void proc.kill('SIGKILL'));
    t.teardown(() => {
      if (!t.passing()) t.comment(`user daemon:\n${out.slice(-4000)}`);
    });
    const d3 = { socket };
    const eps = await until("the user daemon registers the user's container", async () => {
      if (proc.exitCode !== null) throw new Error(`the user daemon exited with ${proc.exitCode}:\n${out}`);
      const r = await api(d3 as Daemon, '/api/v1/services/default/rlweb/endpoints');
      return r.status === 200 && r.body.length === 1 && r.body;
    });
    t.match(eps[0], { id: 'rlweb', owner: user.user, address: h1.address, port: 18301 }, 'its own containers keep their names as ids');
    const srv = h1.exec('dig', [`@${h1.address}`, '-p', '5353', '+short', '+time=1', '+tries=1', `_p80._tcp.${name}`, 'SRV'], 5000);
    t.match(srv, /^0 \d+ 18301 /, 'SRV carries the published port');
  });

  await t.test('the rootless container leaves on stop', async (t) => {
    user.run(['stop', '-t', '0', 'rlweb']);
    await until('only the root container left on host 2', () => srvPorts(h2, `_p80._tcp.${name}`).join() === '18302');
    t.pass('host 2 answers only the root container');
  });
});
