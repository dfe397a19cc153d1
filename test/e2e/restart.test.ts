import t, { type Test } from 'tap';
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { apiOverSocket, CLI, ROOT } from '../helpers/daemon.js';
import { createHosts, type Host } from '../helpers/hosts.js';
import { bookwormRootfs, bootMachine, nspawnUsable, type Machine } from '../helpers/nspawn.js';
import { installUnit } from '../helpers/unit.js';
import { waiter } from '../helpers/until.js';
import { keygen } from '../../src/commands/keygen.js';
import { allocateVips } from '../../src/lb/vip.js';
import { parseCidr } from '../../src/net/cidr.js';

const until = waiter(60_000);

// Restarts without losing a query, under a real systemd (Debian bookworm in systemd-nspawn,
// Debian's Node.js 18): a client inside the machine sends 500 queries a second (1 s timeout, one
// retry, bench/dns-stream.mjs) to the cluster DNS address while the daemon is restarted with
// `systemctl restart`, killed with `kill -9`, and (from its .deb) upgraded with `apt-get install`
// of a newer .deb. The listening sockets stay in systemd's descriptor store meanwhile; the new
// process answers them from the previous run's table before it has loaded the daemon, then
// serves them. Asserted: every answer the client gets holds the service's address (no NXDOMAIN,
// SERVFAIL or empty answer, before, during or after), the stream is answered again after each
// restart, the early table served, and the upgrade ran a try-restart, not a stop with a leave.
// Also asserted: every query is answered, in the client's time or after (none dropped). How many
// are answered in time depends on how long Node takes to start (over a second on a loaded
// machine): asserted (none lost) when the load average is at most the number of CPUs, otherwise
// printed with the load average; bench/RESULTS.md has the figures.
// A second host (a network namespace on the same bridge as the machine's, running the daemon as
// a plain process) is joined to the machine by encrypted gossip and resolves the machine's
// service from its own daemon all along, 50 queries a second: every answer there holds the
// service's address in every case (a restart is not a leave; a rejoin slower than the failure
// detector is covered by --dead-grace), and only the real `systemctl stop` at the end withdraws
// it, as a leave.

const skip = nspawnUsable();
if (skip || !existsSync(CLI)) {
  t.comment(`skipped: ${skip ?? 'dist/cli.js is not built (npm run build)'}`);
  process.exit(0);
}

const UNIT = 'podman-swarm-dns';
/** This checkout's bench/ in the machine (the stream client). */
const BENCH = '/opt/podman-swarm-dns/bench';
const show = (m: Machine, prop: string): string => m.exec('systemctl', 'show', '-p', prop, '--value', UNIT).trim();

interface StreamResult {
  sent: number;
  lost: number;
  late: number;
  unanswered: number;
  tail_answered: boolean;
  answered: number;
  rcodes: Record<string, number>;
  empty: number;
  unexpected: number;
  retried: number;
  max_latency_ms: number;
  max_gap_ms: number;
  gap_end: number;
}

/** A unit timestamp (CLOCK_MONOTONIC µs, as systemd keeps them) as epoch ms; the machine shares this kernel's clock. */
function epochMs(m: Machine, prop: string): number {
  const mono = Number(show(m, `${prop}Monotonic`));
  return Date.now() - (Number(process.hrtime.bigint() / 1000n) - mono) / 1000;
}

/** The other host: its own daemon, joined to the machine's by gossip. */
interface Peer {
  host: Host;
  dir: string;
  socket: string;
  logs: () => string;
}

const SERVICE = 'web.default.cluster.local';
const STREAM = join(ROOT, 'bench/dns-stream.mjs');

/**
 * Two hosts on one bridge: the machine boots in the first one's network namespace; the second
 * runs this checkout's daemon (the host's Node.js) with the same gossip key, joined to the first.
 * Returns the machine's config lines for the cluster and the peer, started once `startPeer` runs.
 */
function twoHosts(t: Test): { h1: Host; startPeer: () => Peer; machineConfig: string; key: string } {
  const { hosts, dir } = createHosts(t, 2, 'i18');
  const [h1, h2] = hosts as [Host, Host];
  const key = `${keygen()}\n`;
  writeFileSync(join(dir, 'gossip.key'), key, { mode: 0o600 });
  const startPeer = (): Peer => {
    const home = join(dir, 'peer');
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, 'none.yaml'), '');
    const socket = join(home, 'api.sock');
    const proc: ChildProcess = h2.spawn(process.execPath, [
      CLI, 'daemon', '--config', join(home, 'none.yaml'), '--link', 'none', '--node-name', 'peer',
      '--state-dir', join(home, 'state'), '--dns-listen', `${h2.address}:53`, '--api-listen', `unix:${socket}`,
      '--upstream-dns', '127.0.0.1:9', '--gossip-listen', '0.0.0.0:7946', '--advertise-address', h2.address,
      '--gossip-key-file', join(dir, 'gossip.key'), '--podman-socket', 'none', '--join', `${h1.address}:7946`,
    ]);
    let out = '';
    proc.stdout!.on('data', (c: Buffer) => (out += c));
    proc.stderr!.on('data', (c: Buffer) => (out += c));
    return { host: h2, dir: home, socket, logs: () => out };
  };
  const machineConfig = `advertise-address: ${h1.address}\ngossip-key-file: /etc/podman-swarm-dns/gossip.key\n`;
  return { h1, startPeer, machineConfig, key };
}

/** The peer's answer for the machine's service (dig, one try). */
const peerAnswer = (p: Peer): string[] =>
  p.host.exec('dig', [`@${p.host.address}`, '+short', '+time=1', '+tries=1', SERVICE, 'A'], 5000).split('\n').filter(Boolean);

/** Writes the cluster config (key and service) into the machine. */
function configure(m: Machine, cluster: { machineConfig: string; key: string }): void {
  mkdirSync(join(m.root, 'etc/podman-swarm-dns'), { recursive: true });
  writeFileSync(join(m.root, 'etc/podman-swarm-dns/gossip.key'), cluster.key, { mode: 0o600 });
  writeFileSync(join(m.root, 'etc/podman-swarm-dns/config.yaml'), cluster.machineConfig + CONFIG);
}

/** The peer resolves the machine's service (gossip joined and the service learnt). */
async function peerJoined(t: Test, p: Peer): Promise<void> {
  await until('the other host to answer the machine\'s service', () => peerAnswer(p).includes('10.0.0.7'));
  t.pass('the other host resolves the machine\'s service through gossip');
}

/** The peer's own query stream (50/s) against its daemon, for as long as the machine's. */
function peerStream(p: Peer, label: string, seconds: number): Promise<StreamResult> {
  const out = join(p.dir, `stream-${label}.json`);
  const c = p.host.spawn(process.execPath, [STREAM, '--server', p.host.address, '--name', SERVICE, '--expect', '10.0.0.7',
    '--rate', '50', '--seconds', String(seconds), '--timeout', '1000', '--retries', '1', '--late', '5000', '--out', out]);
  return new Promise((resolve, reject) => c.on('exit', (code) =>
    existsSync(out) ? resolve(JSON.parse(readFileSync(out, 'utf8')) as StreamResult) : reject(new Error(`the other host's stream exited with ${code}`))));
}

/** Runs the query stream in the machine (a transient unit), does `action` once it runs, returns the counts. */
async function during(m: Machine, label: string, action: () => void, seconds = 15, peer?: Peer): Promise<{ here: StreamResult; there?: StreamResult }> {
  const out = `/run/stream-${label}.json`;
  const started = `/run/stream-${label}.started`;
  m.exec('systemd-run', '--unit', `stream-${label}`, '--collect', '/usr/bin/node', `${BENCH}/dns-stream.mjs`,
    '--server', '10.223.0.10', '--name', 'web.default.cluster.local', '--expect', '10.0.0.7',
    '--rate', '500', '--seconds', String(seconds), '--timeout', '1000', '--retries', '1', '--late', '30000', '--out', out, '--started', started);
  await until(`the ${label} stream to start`, () => existsSync(join(m.root, started)));
  const there = peer ? peerStream(peer, label, seconds) : undefined;
  await new Promise((r) => setTimeout(r, 1000));
  action();
  const file = await until(`the ${label} stream to finish`, () => (existsSync(join(m.root, out)) ? join(m.root, out) : undefined), (seconds + 60) * 1000);
  return { here: JSON.parse(readFileSync(file, 'utf8')) as StreamResult, there: await there };
}

/** One case: a new process, every answer right, the counts printed with where the client's longest wait went. */
async function restartCase(t: Test, m: Machine, label: string, action: () => void, seconds = 15, peer?: Peer): Promise<StreamResult> {
  const pid = show(m, 'MainPID');
  const loadBefore = loadavg()[0]!;
  const { here: r, there } = await during(m, label, action, seconds, peer);
  t.not(show(m, 'MainPID'), pid, `${label}: a new process`);
  t.ok(r.answered > 0 && r.tail_answered, `${label}: answered again after it (the last queries of the stream)`);
  t.same(r.rcodes, { NOERROR: r.answered + r.late }, `${label}: all NOERROR (no NXDOMAIN, no SERVFAIL)`);
  t.equal(r.empty + r.unexpected, 0, `${label}: every answer holds the service's address`);
  // Not one query dropped: the kernel kept what came while no process served, and the new one
  // answered all of it (in the client's time or after; how many in time depends on the load).
  t.equal(r.unanswered, 0, `${label}: every query answered`);
  // In the client's time too (none lost), where the machine is not overloaded: Node's start is
  // then well under the client's 1 s timeout + one retry. Under a heavier load only printed.
  const load = Math.max(loadBefore, loadavg()[0]!);
  if (load <= cpus().length) t.equal(r.lost, 0, `${label}: none lost (answered within the client's timeout and retry; load ${load.toFixed(1)})`);
  const exec = epochMs(m, 'ExecMainStartTimestamp');
  // Node's own start: the entry point serves the stored sockets this long after the process started.
  const early = [...m.exec('journalctl', '-u', UNIT, '--no-pager', '-o', 'cat').matchAll(/answered from the previous run's table (\d+) ms after the process started/g)].at(-1)?.[1] ?? '?';
  t.comment(`${label}: ${JSON.stringify(r)}; exec of the new process → first reply after the gap: ${Math.round(r.gap_end - exec)} ms (early table served ${early} ms after Node started); gap ${r.max_gap_ms} ms; load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  if (there && peer) {
    // The other host never stopped answering the machine's service: no leave, no death.
    t.same(there.rcodes, { NOERROR: there.answered + there.late }, `${label}, other host: all NOERROR (no NXDOMAIN)`);
    t.equal(there.empty + there.unexpected, 0, `${label}, other host: every answer holds the machine's service address`);
    t.equal(there.unanswered, 0, `${label}, other host: every query answered`);
    t.notMatch(peer.logs(), /its endpoints are withdrawn/, `${label}, other host: the machine's endpoints were never withdrawn`);
    // Found dead (a rejoin slower than the suspicion time, on a busy machine) is kept for --dead-grace.
    const deaths = peer.logs().match(/member \S+ \(.*\) is dead/g)?.length ?? 0;
    t.comment(`${label}, other host: ${JSON.stringify(there)}; found the machine dead ${deaths} times so far`);
  }
  return r;
}

const CONFIG = 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.7\n';

t.test('systemctl restart and kill -9 under a steady query stream: stored sockets served, never a wrong answer', async (t) => {
  const cluster = twoHosts(t);
  const m = await bootMachine(t, { rootfs: bookwormRootfs(), prefix: 'i18rs', netns: cluster.h1.ns, bindRo: [[ROOT, '/opt/podman-swarm-dns']] });
  installUnit(m);
  configure(m, cluster);
  m.exec('systemctl', 'start', UNIT);
  const peer = cluster.startPeer();
  await peerJoined(t, peer);

  await restartCase(t, m, 'restart', () => m.exec('systemctl', 'restart', '--no-block', UNIT), 15, peer);
  await restartCase(t, m, 'kill9', () => m.exec('kill', '-9', show(m, 'MainPID')), 15, peer);
  const journal = m.exec('journalctl', '-u', UNIT, '--no-pager', '-o', 'cat');
  t.match(journal, /systemd passed \d+ stored sockets? from the previous run/, 'the new process served the stored sockets');
  t.notMatch(journal, /sockets are not kept across restarts/);
  t.match(journal, /answered from the previous run's table \d+ ms after the process started, on \d+ stored DNS sockets?/, 'the new process answered from the stored table before it had loaded');
  t.notMatch(journal, /could not write the answer table/);

  // A real stop is a leave: the other host withdraws the machine's endpoints on the leave message
  // (not after failure detection declares it dead).
  m.exec('systemctl', 'stop', UNIT);
  await until('the other host to withdraw the stopped host\'s service', () => !peerAnswer(peer).includes('10.0.0.7'));
  t.pass('systemctl stop: the other host withdrew the service');
  const nodes = (await apiOverSocket(peer, 'GET', '/api/v1/nodes')).body as Array<{ name: string; state: string }>;
  t.equal(nodes.find((n) => n.name !== 'peer')?.state, 'left', 'the other host lists the machine as left (a leave, not a death found by probes)');
  t.notMatch(peer.logs(), /is dead: its endpoints are withdrawn/, 'never withdrawn as dead');
});

t.test('apt-get install of a newer .deb under a steady query stream: try-restart, not a leave; never a wrong answer', async (t) => {
  if (spawnSync('sh', ['-c', 'command -v dpkg-deb']).status !== 0) return void t.comment('skipped: dpkg-deb is not installed');
  // Two packages of this checkout: as built, and the same with a higher version.
  const work = mkdtempSync(join(tmpdir(), 'psdns-i18-deb-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const old = execFileSync(process.execPath, [join(ROOT, 'packaging/deb.mjs'), `--out=${work}`], { encoding: 'utf8' }).trim().split('\n').at(-1)!;
  execFileSync('dpkg-deb', ['-R', old, join(work, 'tree')]);
  const control = join(work, 'tree/DEBIAN/control');
  writeFileSync(control, readFileSync(control, 'utf8').replace(/^Version: (.*)$/m, 'Version: $1+upgrade1'));
  execFileSync('dpkg-deb', ['-b', join(work, 'tree'), join(work, 'newer.deb')], { stdio: 'ignore' });
  rmSync(join(work, 'tree'), { recursive: true, force: true });

  const cluster = twoHosts(t);
  const m = await bootMachine(t, { rootfs: bookwormRootfs(), prefix: 'i18up', netns: cluster.h1.ns, bindRo: [[work, '/mnt/debs'], [join(ROOT, 'bench'), BENCH]] });
  const apt = (deb: string): string => m.exec('env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-q', '--no-install-recommends',
    '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold', deb);
  apt(`/mnt/debs/${basename(old)}`);
  m.exec('ip', 'link', 'add', 'pswarm0', 'type', 'veth', 'peer', 'name', 'pswarm0p');
  m.exec('ip', 'link', 'set', 'pswarm0p', 'up');
  configure(m, cluster);
  m.exec('systemctl', 'enable', '--now', UNIT);
  const peer = cluster.startPeer();
  await peerJoined(t, peer);

  let out = '';
  await restartCase(t, m, 'upgrade', () => (out = apt('/mnt/debs/newer.deb')), 40, peer);
  t.match(out, /Setting up podman-swarm-dns \(.*\+upgrade1\)/, 'the newer package was installed');
  const journal = m.exec('journalctl', '-u', UNIT, '--no-pager', '-o', 'cat');
  // postinst's try-restart of an active unit is queued as a restart job.
  t.match(journal, /systemd is running a (try-)?restart job for the unit: a restart, not a leave/, 'the maintainer scripts restart it (try-restart), no leave');
  t.notMatch(journal, /leaving the cluster/);
  t.match(journal, /answered from the previous run's table \d+ ms after the process started/, 'the new version answered from the stored table before it had loaded');
});

t.test('VIP sockets in the descriptor store: connections and datagrams sent during systemctl restart and kill -9 are relayed', async (t) => {
  // The load balancer's listeners on a service VIP stay in systemd's store like the DNS sockets:
  // while no process serves, the kernel queues new connections and datagrams on them, and the
  // next process relays them. Without that, each connection attempt in the gap is refused.
  const m = await bootMachine(t, { rootfs: bookwormRootfs(), prefix: 'i18vip', bindRo: [[ROOT, '/opt/podman-swarm-dns']] });
  installUnit(m);
  const vip = allocateVips(['default/echo'], parseCidr('10.223.0.0/16')!).get('default/echo')!;
  mkdirSync(join(m.root, 'etc/podman-swarm-dns'), { recursive: true });
  writeFileSync(join(m.root, 'etc/podman-swarm-dns/config.yaml'),
    'services:\n  - name: echo\n    mode: vip\n    endpoints:\n      - address: 127.0.0.1\n        ports: { t: 7001/tcp, u: 7002/udp }\n');
  m.exec('systemd-run', '--unit', 'echo-endpoints', '/usr/bin/node', `${BENCH}/vip-stream.mjs`, 'serve', '--tcp', '7001', '--udp', '7002');
  m.exec('systemctl', 'start', UNIT);
  for (const [label, action] of [
    ['restart', () => m.exec('systemctl', 'restart', '--no-block', UNIT)],
    ['kill9', () => m.exec('kill', '-9', show(m, 'MainPID'))],
  ] as const) {
    const pid = show(m, 'MainPID');
    const out = `/run/vip-${label}.json`;
    const started = `/run/vip-${label}.started`;
    m.exec('systemd-run', '--unit', `vip-${label}`, '--collect', '/usr/bin/node', `${BENCH}/vip-stream.mjs`, 'stream',
      '--host', vip, '--tcp', '7001', '--udp', '7002', '--rate', '20', '--seconds', '10', '--late', '30000', '--out', out, '--started', started);
    await until(`the ${label} VIP stream to start`, () => existsSync(join(m.root, started)));
    await new Promise((r) => setTimeout(r, 1000));
    action();
    const file = await until(`the ${label} VIP stream to finish`, () => (existsSync(join(m.root, out)) ? join(m.root, out) : undefined), 90_000);
    const r = JSON.parse(readFileSync(file, 'utf8')) as { connections: number; echoed: number; refused: number; failed: number; datagrams: number; answered: number };
    t.not(show(m, 'MainPID'), pid, `${label}: a new process`);
    t.comment(`${label}: ${JSON.stringify(r)}; load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    t.equal(r.refused, 0, `${label}: no connection attempt refused (the VIP socket listened all along)`);
    // The one connection or datagram the old process had in hand when it stopped may be lost
    // with it (its relay state dies with the process); everything sent in the gap is relayed.
    t.ok(r.failed <= 1 && r.echoed >= r.connections - 1, `${label}: every connection relayed (${r.echoed} of ${r.connections})`);
    t.ok(r.answered >= r.datagrams - 1, `${label}: every datagram answered, none resent (${r.answered} of ${r.datagrams})`);
  }
  const journal = m.exec('journalctl', '-u', UNIT, '--no-pager', '-o', 'cat');
  t.match(journal, /systemd passed \d+ stored sockets from the previous run/);
  t.notMatch(journal, /closed the stored socket lb-/, 'the VIP sockets were all served, none closed as stale');
  t.notMatch(journal, /load balancer: cannot listen on/, 'no VIP socket bound anew');
});
