#!/usr/bin/env node
// The etcd registry beside gossip, in one run on the same simulated hosts: 3 network namespaces on
// a bridge, an etcd member on each (one three-member cluster), and on each host TWO daemons at
// once — one with gossip (encrypted, DNS on port 53), one with --registry etcd (DNS on port 5300).
//  - propagation: an endpoint registered through host 1's API → answered by host 3's DNS
//    (bench/dns-watch.mjs polls every 2 ms), --runs rounds; each round registers on the gossip
//    daemon and then on the etcd daemon (alternating which goes first), p50/p99 for each;
//  - traffic per change: the daemons' own counters over the rounds, all three hosts summed, minus
//    what the same daemons use idle over as long (gossip probes, etcd lease renewals), per change.
//    etcd: request bodies sent and answers and watch messages received by the daemons (the etcd
//    members' raft traffic among themselves is not counted); gossip: UDP and TCP bytes sent.
//  - host killed: SIGKILL of host 1's two daemons → its endpoint gone on host 3, for each
//    (the etcd figure follows --etcd-lease-ttl, default 5 s; gossip's its failure detector), --kills times.
//
//   npm run build && sudo node bench/etcd.mjs [--runs 20] [--kills 5] [--lease-ttl 5s]
import './help.mjs';
import { argv } from 'zx';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { api, dnsWatcher, pct, sleep, until } from './common.mjs';
import { netnsHosts } from './netns-hosts.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const RUNS = Number(argv.runs ?? 20);
const KILLS = Number(argv.kills ?? 5);
const TTL = String(argv['lease-ttl'] ?? '5s');
const id = randomBytes(2).toString('hex');
const P = `e20b${id}`;
const subnet = `10.246.${parseInt(id, 16) % 250}`;
const dir = mkdtempSync(join(tmpdir(), `${P}-`));
const procs = new Set();
const net = netnsHosts(P, subnet, 3);
const { hosts } = net;
process.on('exit', () => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  net.down();
  rmSync(dir, { recursive: true, force: true });
});
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));
net.up();

const run = (h, args) => {
  const p = spawn('nsenter', [`--net=/run/netns/${h.ns}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'], cwd: ROOT });
  procs.add(p);
  p.stdout.resume();
  p.stderr.resume();
  return p;
};

// The etcd members.
const initial = hosts.map((h) => `e${h.i}=http://${h.address}:2380`).join(',');
for (const h of hosts) {
  run(h, ['etcd', '--name', `e${h.i}`, '--data-dir', join(dir, `etcd${h.i}`), '--listen-client-urls', `http://${h.address}:2379`,
    '--advertise-client-urls', `http://${h.address}:2379`, '--listen-peer-urls', `http://${h.address}:2380`,
    '--initial-advertise-peer-urls', `http://${h.address}:2380`, '--initial-cluster', initial, '--initial-cluster-token', P, '--log-level', 'error']);
}
for (const h of hosts) {
  await until(async () => (execFileSync('nsenter', [`--net=/run/netns/${h.ns}`, 'etcdctl', '--endpoints', `http://${h.address}:2379`, 'endpoint', 'health'], { stdio: 'ignore' }), true));
}

const key = join(dir, 'key');
writeFileSync(key, `${randomBytes(32).toString('base64')}\n`);
const KINDS = {
  gossip: { dnsPort: 53, args: (h) => ['--gossip-listen', '0.0.0.0:7946', '--gossip-key-file', key, ...(h.i === 1 ? [] : ['--join', `${hosts[0].address}:7946`])] },
  etcd: { dnsPort: 5300, args: (h) => ['--registry', 'etcd', '--etcd-lease-ttl', TTL, '--etcd-endpoints', [h, ...hosts.filter((x) => x !== h)].map((x) => `http://${x.address}:2379`).join(',')] },
};

function startDaemon(h, kind) {
  const home = join(dir, `h${h.i}-${kind}`);
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, 'c.yaml'), 'log-level: warn\n');
  const d = { socket: join(home, 'api.sock') };
  d.proc = run(h, [process.execPath, join(ROOT, 'dist/cli.js'), 'daemon', '--config', join(home, 'c.yaml'), '--link', 'none',
    '--node-name', `host${h.i}`, '--state-dir', join(home, 'state'), '--dns-listen', `${h.address}:${KINDS[kind].dnsPort}`, '--api-listen', `unix:${d.socket}`,
    '--upstream-dns', '127.0.0.1:9', '--advertise-address', h.address, '--podman-socket', 'none', ...KINDS[kind].args(h)]);
  h[kind] = d;
}

/** The sum of the named counters over the three hosts' daemons of one kind. */
async function counters(kind, names) {
  let sum = 0;
  for (const h of hosts) {
    const text = (await api(h[kind], 'GET', '/metrics')).body;
    for (const line of text.split('\n')) if (names.some((n) => line.startsWith(`podman_swarm_dns_${n} `))) sum += Number(line.split(' ')[1]);
  }
  return sum;
}
const TRAFFIC = { gossip: ['gossip_bytes_sent_total'], etcd: ['etcd_bytes_sent_total', 'etcd_bytes_received_total'] };


for (const h of hosts) for (const kind of Object.keys(KINDS)) startDaemon(h, kind);
await until(async () => (await Promise.all(hosts.map((h) => api(h.gossip, 'GET', '/api/v1/nodes')))).every((r) => r.body.filter((n) => n.state === 'alive').length === 3));
await until(async () => (await Promise.all(hosts.map((h) => api(h.etcd, 'GET', '/api/v1/status')))).every((r) => r.body.etcd?.state === 'synced'));
const [h1, , h3] = hosts;
const watch = { gossip: dnsWatcher(run, h3, 53), etcd: dnsWatcher(run, h3, 5300) };
await sleep(1000);

const load = () => execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).split(' ').slice(0, 3).join(' ');
const loadBefore = load();
const before = { gossip: await counters('gossip', TRAFFIC.gossip), etcd: await counters('etcd', TRAFFIC.etcd) };
const started = Date.now();
const prop = { gossip: [], etcd: [] };
for (let r = 0; r < RUNS; r++) {
  for (const kind of r % 2 ? ['etcd', 'gossip'] : ['gossip', 'etcd']) {
    const name = `svc${r}.default.cluster.local`;
    const answered = watch[kind](name, 'up');
    await sleep(20); // the watcher is polling before the registration starts
    const t0 = Date.now();
    const res = await api(h1[kind], 'POST', `/api/v1/services/default/svc${r}/endpoints`, { id: 'e', address: h1.address, ports: { http: '8080/tcp' }, health: 'none' });
    if (res.status !== 201) throw new Error(`registration failed: ${JSON.stringify(res.body)}`);
    prop[kind].push((await answered) - t0);
    await sleep(200 + Math.random() * 300);
  }
}
const busyMs = Date.now() - started;
const after = { gossip: await counters('gossip', TRAFFIC.gossip), etcd: await counters('etcd', TRAFFIC.etcd) };
// Idle for as long as the rounds took: what the same daemons send with nothing changing.
await sleep(busyMs);
const idle = { gossip: (await counters('gossip', TRAFFIC.gossip)) - after.gossip, etcd: (await counters('etcd', TRAFFIC.etcd)) - after.etcd };
const perChange = (kind) => Math.round((after[kind] - before[kind] - idle[kind]) / RUNS);

// Host 1's daemons killed; both restarted (same state dirs) between runs.
const kills = { gossip: [], etcd: [] };
for (let k = 0; k < KILLS; k++) {
  const name = 'svc0.default.cluster.local';
  await until(async () => (await api(h3.gossip, 'GET', '/api/v1/nodes')).body.filter((n) => n.state === 'alive').length === 3
    && (await api(h3.gossip, 'GET', '/api/v1/services/default/svc0')).status === 200 && (await api(h3.etcd, 'GET', '/api/v1/services/default/svc0')).status === 200);
  await sleep(1000 + Math.random() * 1000);
  const gone = { gossip: watch.gossip(name, 'down'), etcd: watch.etcd(name, 'down') };
  await sleep(20);
  const t0 = Date.now();
  h1.gossip.proc.kill('SIGKILL');
  h1.etcd.proc.kill('SIGKILL');
  for (const kind of Object.keys(KINDS)) kills[kind].push((await gone[kind]) - t0);
  for (const kind of Object.keys(KINDS)) startDaemon(h1, kind);
}

const row = (what, xs) => `| ${what} | ${xs.length} | ${pct(xs, 50)} | ${pct(xs, 99)} | ${Math.max(...xs)} |`;
console.log(`load average before the rounds: ${loadBefore}; after: ${load()}; etcd lease TTL ${TTL}\n`);
console.log('| measurement | runs | p50 | p99 | max |');
console.log('|---|---:|---:|---:|---:|');
console.log(row('gossip: API registration on host 1 → answer on host 3 (ms)', prop.gossip));
console.log(row('etcd: API registration on host 1 → answer on host 3 (ms)', prop.etcd));
console.log(row('gossip: host 1 killed → endpoint gone on host 3 (ms)', kills.gossip));
console.log(row(`etcd: host 1 killed → endpoint gone on host 3 (ms, lease TTL ${TTL})`, kills.etcd));
console.log('\n| traffic per change, 3 hosts summed | bytes | idle, bytes/s (3 hosts) |');
console.log('|---|---:|---:|');
console.log(`| gossip: UDP + TCP bytes sent | ${perChange('gossip')} | ${Math.round(idle.gossip / (busyMs / 1000))} |`);
console.log(`| etcd: request bodies sent + answers and watch messages received | ${perChange('etcd')} | ${Math.round(idle.etcd / (busyMs / 1000))} |`);
console.error(`gossip: ${prop.gossip.join(' ')}\netcd: ${prop.etcd.join(' ')}\nkills gossip: ${kills.gossip.join(' ')}\nkills etcd: ${kills.etcd.join(' ')}`);
process.exit(0);
