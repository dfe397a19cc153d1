#!/usr/bin/env node
// Propagation and failure detection between simulated hosts (SPEC §15): 3 network namespaces on
// a bridge, each running the daemon (root, encrypted gossip, DNS on the host's address). Host 1
// also runs its own Podman (private storage, network config and service socket, in its own mount
// namespace as test/helpers/hosts.ts sets it up) watched by its daemon.
//  - container propagation: `podman run -d` of a labelled container with a published port on
//    host 1 returned → answered by host 3's DNS (bench/dns-watch.mjs polls host 3 every 2 ms),
//    --runs times, p50/p99. This is what users see; it includes Podman's event delay.
//  - API propagation: an endpoint registered through host 1's API → answered by host 3's DNS,
//    --runs times: the same path without Podman, i.e. the gossip part alone;
//  - host gone: host 1's link cut → its endpoint gone from the answers of hosts 2 and 3 (the
//    later of the two), --kills times; the link is restored between runs.
//
//   npm run build && sudo node bench/gossip-hosts.mjs [--runs 20] [--kills 10]
// (without podman, runc or busybox-static the container row is skipped)
import './help.mjs';
import { argv } from 'zx';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { api, dnsWatcher, pct, sleep, until } from './common.mjs';
import { netnsHosts } from './netns-hosts.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const RUNS = Number(argv.runs ?? 20);
const KILLS = Number(argv.kills ?? 10);
const id = randomBytes(2).toString('hex');
const P = `h4b${id}`;
const withPodman = ['/usr/bin/podman', '/usr/sbin/runc', '/bin/busybox'].every((p) => existsSync(p));
const subnet = `10.245.${parseInt(id, 16) % 250}`;
const dir = mkdtempSync(join(tmpdir(), `${P}-`));
const procs = new Set();
const net = netnsHosts(P, subnet, 3);
const { hosts } = net;

function cleanup() {
  if (podmanRemove) try { podmanRemove(); } catch { /* best effort */ }
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  if (mountNs) {
    try { execFileSync('umount', [mountNs]); } catch { /* gone */ }
    try { execFileSync('umount', [join(dir, 'ns')]); } catch { /* gone */ }
  }
  net.down();
  rmSync(dir, { recursive: true, force: true });
}
let podmanRemove = null;
let mountNs = null;
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

net.up();
// Host 1's private mount namespace: /run/containers/networks is its own (rootful Podman keeps
// network state there whatever --root says), as test/helpers/hosts.ts does for the e2e test.
if (withPodman) {
  mkdirSync(join(dir, 'ns'));
  execFileSync('mount', ['--bind', join(dir, 'ns'), join(dir, 'ns')]);
  execFileSync('mount', ['--make-private', join(dir, 'ns')]);
  mountNs = join(dir, 'ns', 'mnt-1');
  mkdirSync(join(dir, 'netrun1'));
  mkdirSync('/run/containers/networks', { recursive: true });
  writeFileSync(mountNs, '');
  execFileSync('unshare', [`--mount=${mountNs}`, '--propagation', 'slave', 'mount', '--bind', join(dir, 'netrun1'), '/run/containers/networks']);
  hosts[0].mountNs = mountNs;
}
const run = (h, args, opts = {}) => {
  const p = spawn('nsenter', [`--net=/run/netns/${h.ns}`, ...(h.mountNs ? [`--mount=${h.mountNs}`] : []), ...args], { stdio: ['pipe', 'pipe', 'pipe'], cwd: ROOT, ...opts });
  procs.add(p);
  return p;
};
const key = join(dir, 'key');
writeFileSync(key, `${randomBytes(32).toString('base64')}\n`);

function startDaemon(h) {
  const home = join(dir, `h${h.i}`);
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, 'c.yaml'), 'log-level: warn\n');
  h.socket = join(home, 'api.sock');
  h.daemon = run(h, [process.execPath, join(ROOT, 'dist/cli.js'), 'daemon', '--config', join(home, 'c.yaml'), '--link', 'none',
    '--node-name', `host${h.i}`, '--state-dir', join(home, 'state'), '--dns-listen', `${h.address}:53`, '--api-listen', `unix:${h.socket}`,
    '--upstream-dns', '127.0.0.1:9', '--gossip-listen', '0.0.0.0:7946', '--advertise-address', h.address, '--gossip-key-file', key,
    '--podman-socket', h.podmanSocket ?? 'none', ...(h.i === 1 ? [] : ['--join', `${hosts[0].address}:7946`])]);
  h.daemon.stdout.resume();
  h.daemon.stderr.resume();
}




// Host 1's Podman: a service on its own socket and storage, the busybox image (TESTING.md), as
// hostPodman() in test/e2e/cluster-hosts.test.ts.
const CONTAINERS_CONF = join(ROOT, 'test', 'fixtures', 'podman', 'containers.conf');
const IMAGE = 'localhost/psdns-bb:latest';
let podman = null;
if (withPodman) {
  const pd = join(dir, 'podman1');
  mkdirSync(pd);
  const socket = join(pd, 'podman.sock');
  const storage = ['--root', join(pd, 'root'), '--runroot', join(pd, 'runroot'), '--tmpdir', join(pd, 'tmp'),
    '--network-config-dir', join(pd, 'net'), '--storage-driver', 'vfs', '--events-backend', 'file'];
  const env = { ...process.env, CONTAINERS_CONF };
  const service = run(hosts[0], ['env', `CONTAINERS_CONF=${CONTAINERS_CONF}`, 'podman', ...storage, 'system', 'service', '--time=0', `unix://${socket}`]);
  service.stdout.resume();
  service.stderr.resume();
  const containers = [];
  podman = (args) => execFileSync('podman', ['--remote', '--url', `unix://${socket}`, ...args], { encoding: 'utf8', timeout: 60_000, env, stdio: ['ignore', 'pipe', 'pipe'] });
  podmanRemove = () => { if (containers.length) podman(['rm', '-f', '-t', '0', ...containers]); };
  podman.track = (name) => containers.push(name);
  await until(async () => (podman(['version', '--format', '{{.Server.Version}}']), true), 20_000);
  const bb = join(pd, 'bb');
  mkdirSync(join(bb, 'bin'), { recursive: true });
  mkdirSync(join(bb, 'tmp'), { recursive: true });
  copyFileSync('/bin/busybox', join(bb, 'bin', 'busybox'));
  for (const a of ['sh', 'httpd']) symlinkSync('busybox', join(bb, 'bin', a));
  execFileSync('tar', ['-C', bb, '-cf', join(pd, 'bb.tar'), '.']);
  podman(['import', join(pd, 'bb.tar'), IMAGE]);
  hosts[0].podmanSocket = socket;
}

for (const h of hosts) startDaemon(h);
await until(async () => (await Promise.all(hosts.map((h) => api(h, 'GET', '/api/v1/nodes')))).every((r) => r.body.filter((n) => n.state === 'alive').length === 3));
const [h1, h2, h3] = hosts;
const w2 = dnsWatcher(run, h2);
const w3 = dnsWatcher(run, h3);
await sleep(500);

// Container propagation: `podman run -d` returned → host 3 answers. `run -d` returns once the
// container has started; the daemon learns it from Podman's event stream, so the answer can come
// before the CLI returns (a negative figure); the figure from the CLI's start is kept too.
const cprop = [];
const cpropFromStart = [];
if (podman) {
  for (let r = 0; r < RUNS; r++) {
    const svc = `ctr${r}`;
    const answered = w3(`${svc}.default.cluster.local`, 'up');
    await sleep(20);
    const name = `${P}-c${r}`;
    podman.track(name);
    const started = Date.now();
    await new Promise((res, rej) => execFile('podman', ['--remote', '--url', `unix://${hosts[0].podmanSocket}`, 'run', '-d', '--name', name,
      '--label', `podman-swarm.service=${svc}`, '-p', `${8100 + r}:80`, IMAGE, 'httpd', '-f', '-p', '80'],
    { env: { ...process.env, CONTAINERS_CONF }, timeout: 60_000 }, (err) => (err ? rej(err) : res())));
    const t0 = Date.now();
    const at = await answered;
    cprop.push(at - t0);
    cpropFromStart.push(at - started);
    await sleep(200 + Math.random() * 300);
  }
}

// API propagation
const prop = [];
for (let r = 0; r < RUNS; r++) {
  const name = `svc${r}.default.cluster.local`;
  const answered = w3(name, 'up');
  await sleep(20); // the watcher is polling before the registration starts
  const t0 = Date.now();
  const res = await api(h1, 'POST', `/api/v1/services/default/svc${r}/endpoints`, { id: 'e', address: h1.address, ports: { http: '8080/tcp' }, health: 'none' });
  if (res.status !== 201) throw new Error(`registration failed: ${JSON.stringify(res.body)}`);
  prop.push((await answered) - t0);
  await sleep(200 + Math.random() * 300);
}

// Host gone: its link cut, as a host powered off looks to the others (a daemon killed on a host
// that is still there keeps its endpoints for --dead-grace: it is being restarted), then the
// link restored for the next run.
const kills = [];
for (let k = 0; k < KILLS; k++) {
  const name = 'svc0.default.cluster.local';
  await until(async () => (await api(h2, 'GET', '/api/v1/nodes')).body.filter((n) => n.state === 'alive').length === 3 && (await api(h3, 'GET', '/api/v1/services/default/svc0')).status === 200);
  await sleep(1000 + Math.random() * 1000);
  const gone = Promise.all([w2(name, 'down'), w3(name, 'down')]);
  await sleep(20);
  const t0 = Date.now();
  execFileSync('ip', ['-n', h1.ns, 'link', 'set', 'eth0', 'down']);
  const [a, b] = await gone;
  kills.push(Math.max(a, b) - t0);
  execFileSync('ip', ['-n', h1.ns, 'link', 'set', 'eth0', 'up']);
}

console.log(`| measurement | runs | p50 | p99 | max | target (SPEC §15) |`);
console.log(`|---|---:|---:|---:|---:|---|`);
if (cprop.length) {
  console.log(`| \`podman run -d\` returned on host 1 → answer on host 3 (ms) | ${cprop.length} | ${pct(cprop, 50)} | ${pct(cprop, 99)} | ${Math.max(...cprop)} | p50 < 500, p99 < 1000 |`);
  console.log(`| \`podman run -d\` invoked on host 1 → answer on host 3 (ms) | ${cpropFromStart.length} | ${pct(cpropFromStart, 50)} | ${pct(cpropFromStart, 99)} | ${Math.max(...cpropFromStart)} | (information) |`);
}
console.log(`| API registration on host 1 → answer on host 3 (ms) | ${prop.length} | ${pct(prop, 50)} | ${pct(prop, 99)} | ${Math.max(...prop)} | p50 < 500, p99 < 1000 |`);
console.log(`| host 1's link cut → endpoint gone on hosts 2 and 3 (ms) | ${kills.length} | ${pct(kills, 50)} | ${pct(kills, 99)} | ${Math.max(...kills)} | < 6000 |`);
console.error(`container (from return): ${cprop.join(' ')}\ncontainer (from invocation): ${cpropFromStart.join(' ')}\nAPI propagation: ${prop.join(' ')}\nlink cut: ${kills.join(' ')}`);
process.exit(0);
