import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import type { ChildProcess } from 'node:child_process';
import { CLI } from '../helpers/daemon.js';
import { createHosts, type Host } from '../helpers/hosts.js';
import { isRoot } from '../helpers/netns.js';
import { keygen } from '../../src/commands/keygen.js';
import { CONTAINERS_CONF, hasPodman, IMAGE } from '../helpers/podman.js';
import { copyFileSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

// Three simulated hosts (network namespaces on a bridge), each running the daemon as root with
// an encrypted gossip key, DNS on its own address. An endpoint registered through the API on
// host 1 (an HTTP server there) is answered on hosts 2 and 3 and reachable from host 3; cutting
// host 1's link withdraws it, restoring the link brings it back; a fourth host with the wrong key
// stays out. Host 1 also runs its own Podman: a labelled container with a published port there is
// answered on hosts 2 and 3 with host 1's address and the published port, and reachable.

if (!isRoot) {
  t.comment('skipped: needs root (run by .ci/run as root)');
  process.exit(0);
}

interface Daemon {
  host: Host;
  proc: ChildProcess;
  socket: string;
  logs: () => string;
}

function startDaemon(host: Host, dir: string, key: string, seeds: string[], podmanSocket = 'none'): Daemon {
  const home = join(dir, `h${host.index}`);
  mkdirSync(home, { recursive: true });
  const socket = join(home, 'api.sock');
  const proc = host.spawn(process.execPath, [
    CLI, 'daemon', '--config', join(home, 'none.yaml'), '--link', 'none', '--node-name', `host${host.index}`,
    '--state-dir', join(home, 'state'), '--dns-listen', `${host.address}:53`, '--api-listen', `unix:${socket}`,
    '--upstream-dns', '127.0.0.1:9', '--gossip-listen', '0.0.0.0:7946', '--advertise-address', host.address,
    '--gossip-key-file', key, '--podman-socket', podmanSocket, ...(seeds.length ? ["--join", seeds.join(",")] : []),
  ]);
  writeFileSync(join(home, 'none.yaml'), '');
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c));
  proc.stderr!.on('data', (c: Buffer) => (out += c));
  return { host, proc, socket, logs: () => out };
}

function api(d: Daemon, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ socketPath: d.socket, path, method, headers: data ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await Promise.resolve().then(check).catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

const dig = (from: Host, server: Host, name: string, type = 'A'): string[] =>
  from.exec('dig', [`@${server.address}`, '+short', '+time=1', '+tries=1', name, type], 5000).split('\n').filter(Boolean);

t.test('three hosts: cross-host answers, reachability, link cut and restore, wrong key', async (t) => {
  const withPodman = hasPodman();
  if (!withPodman) t.comment('podman, runc or busybox-static missing: the container part is skipped');
  const { hosts, dir, cut, restore } = createHosts(t, 4, 'g4', withPodman ? [1] : []);
  const [h1, h2, h3, h4] = hosts as [Host, Host, Host, Host];
  const podman = withPodman ? await hostPodman(t, h1, join(dir, 'podman1')) : null;
  const key = join(dir, 'gossip.key');
  writeFileSync(key, `${keygen()}\n`);
  const wrong = join(dir, 'wrong.key');
  writeFileSync(wrong, `${keygen()}\n`);
  const seed = `${h1.address}:7946`;
  const d1 = startDaemon(h1, dir, key, [], podman?.socket);
  const d2 = startDaemon(h2, dir, key, [seed]);
  const d3 = startDaemon(h3, dir, key, [seed]);
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

  await t.test("a labelled container with a published port on host 1: host 1's address and the port elsewhere", { skip: !podman }, async (t) => {
    await podman!.run(['run', '-d', '--name', podman!.container, '--label', 'podman-swarm.service=web2', '-p', '8081:80', IMAGE,
      'sh', '-c', 'echo hello from a container on host 1 > /tmp/index.html && exec httpd -f -p 80 -h /tmp']);
    for (const h of [h2, h3]) await until(`web2 on host${h.index}`, () => dig(h, h, 'web2.default.cluster.local').includes(h1.address));
    t.same(dig(h2, h2, 'web2.default.cluster.local'), [h1.address], 'host 2: A = host 1 address');
    const srv = dig(h3, h3, '_p80._tcp.web2.default.cluster.local', 'SRV');
    t.match(srv[0], /^0 10 8081 /, 'host 3: SRV port = the published port');
    t.equal(h3.exec('curl', ['-s', '--max-time', '5', `http://${h1.address}:8081/`]), 'hello from a container on host 1\n', 'curl from host 3 reaches the container');
    const own = dig(h1, h1, 'web2.default.cluster.local');
    t.equal(own.length, 1);
    t.not(own[0], h1.address, 'host 1 itself answers the container IP');
  });

  await t.test('cutting host 1 off for 30 s withdraws its endpoints; restoring brings them back', async (t) => {
    cut(h1);
    const cutAt = Date.now();
    for (const h of [h2, h3]) await until(`web gone on host${h.index}`, () => dig(h, h, 'web.default.cluster.local').length === 0, 30_000);
    const members = (await api(d2, 'GET', '/api/v1/nodes')).body;
    t.equal(members.find((n: any) => n.name === 'host1')?.state, 'dead', 'host 2 declares host 1 dead');
    t.pass('web withdrawn on hosts 2 and 3');
    await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - cutAt))));
    restore(h1);
    for (const h of [h2, h3]) await until(`web back on host${h.index}`, () => dig(h, h, 'web.default.cluster.local').includes(h1.address), 90_000);
    t.pass('web answered again on hosts 2 and 3');
    t.match(d2.logs(), /member host1 \(.*\) is alive/);
  });

  await t.test('a host with the wrong gossip key cannot join, and the logs say why', async (t) => {
    const d4 = startDaemon(h4, dir, wrong, [seed]);
    await until('host 4 logs the refusal', () => /could not join .*authentication failed/.test(d4.logs()), 30_000);
    t.match(d1.logs(), /rejected gossip from .*authentication failed: wrong gossip key/);
    const members = (await api(d1, 'GET', '/api/v1/nodes')).body;
    t.notOk(members.some((n: any) => n.name === 'host4'), 'host 4 is not a member');
    t.same(dig(h4, h4, 'web.default.cluster.local'), [], 'and learns nothing');
  });

  for (const d of [d1, d2, d3]) d.proc.kill('SIGTERM');
});

/** A Podman private to a simulated host: its own storage, network config and service socket. */
async function hostPodman(t: { teardown(fn: () => unknown): void }, h: Host, dir: string) {
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, 'podman.sock');
  const storage = ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--tmpdir', join(dir, 'tmp'),
    '--network-config-dir', join(dir, 'net'), '--storage-driver', 'vfs', '--events-backend', 'file'];
  const service = h.spawn('env', [`CONTAINERS_CONF=${CONTAINERS_CONF}`, 'podman', ...storage, 'system', 'service', '--time=0', `unix://${socket}`]);
  service.stdout!.resume();
  service.stderr!.resume();
  const container = `g4web-${Math.random().toString(16).slice(2, 8)}`;
  const run = (args: string[]) => execFileSync('podman', ['--remote', '--url', `unix://${socket}`, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, CONTAINERS_CONF } });
  t.teardown(() => {
    try { run(['rm', '-f', '-t', '0', container]); } catch { /* not created */ }
    service.kill('SIGKILL');
  });
  await until('podman service', () => (run(['version', '--format', '{{.Server.Version}}']), true), 20_000);
  const bb = join(dir, 'bb');
  mkdirSync(join(bb, 'bin'), { recursive: true });
  mkdirSync(join(bb, 'tmp'), { recursive: true });
  copyFileSync('/bin/busybox', join(bb, 'bin', 'busybox'));
  for (const a of ['sh', 'httpd', 'echo']) symlinkSync('busybox', join(bb, 'bin', a));
  execFileSync('tar', ['-C', bb, '-cf', join(dir, 'bb.tar'), '.']);
  run(['import', join(dir, 'bb.tar'), IMAGE]);
  return { socket, container, run: async (args: string[]) => run(args) };
}
