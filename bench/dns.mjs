#!/usr/bin/env node
// DNS benchmark: dnsperf (saturating, 1000 in-zone names, loopback) against the daemon and, in the
// same run and interleaved, against reference servers answering the same names. Prints medians,
// ratios and answers per server CPU-second; then the latency at 50% of each server's peak.
//
// With --outside 1000,100000: names outside the zone instead, answered from a warm cache. A knot
// instance is the authoritative upstream of N names (TTL 1 day); the daemon, dnsmasq and unbound
// (--servers native,dnsmasq,unbound by default) forward to it as caching forwarders, each with a
// cache big enough for all N. Each server is started afresh per round and warmed by asking every
// name twice (dnsperf -n 1, twice) before the measured run, so the run is answered from the cache.
//
//   node bench/dns.mjs [--rounds 3] [--seconds 10] [--servers native,js,knot,dnsmasq,aardvark] [--outside N,...]
//                      [--clients 4] [--client-threads 2] [--outstanding 200] [--native-threads 0]
//                      [--p99-seconds 5] [--p99-runs 3] [--p99-load 0.5] [--p99-outstanding 5000]
//                      [--p99-pin CLIENT_CPUS:SERVER_CPUS] [--plot dns]
//
// Needs: dnsperf, knot, dnsmasq-base, aardvark-dns, podman, runc, busybox-static from Debian;
// cargo (builds bench/udp-latency); root (aardvark runs on a Podman network the script creates;
// net.core.rmem_max and rmem_default are raised to 8 MB for the run, so that every server gets a
// large UDP receive buffer, as SPEC §15 asks — the daemon asks for one, dnsmasq takes the
// default); `npm run build` first (it builds the native addon). The first server is the
// reference of the ratio columns. A server name may carry environment for experiments:
// `native+THREADS=1` (the daemon's --dns-threads), `knot+AFFINITY=1` (knot's socket-affinity),
// `native+CLI=/path/to/other/dist/cli.js` (another build of the daemon: before/after in one run).
// `native+QUERYLOG=all` (--query-log all into a file in the work directory),
// `js+NODE_OPTIONS=--max-semi-space-size=1` (node or V8 flags for the daemon; js takes environment too).
//
// Peak: dnsperf -c 4 -T 2 -q 200, the same for every server. -T 2 (two sending and two receiving
// threads, one pair per core) because one pair (-T 1) is the bottleneck itself: knot and the
// daemon answer more with -T 2, dnsmasq the same; -T 4 is no better (bench/RESULTS.md). -q 200 because more
// outstanding queries only make knot and dnsmasq drop (they keep up to ~200 in their buffer).
//
// Latency: after the rounds, native and knot (and native at knot's rate) are each started afresh
// --p99-runs times and offered --p99-load × their median peak, measured two ways on the same
// instance (see latencyAt): bench/udp-latency, an open-loop client timing each query from its
// sendmmsg() to the kernel's receive timestamp of the answer (the figure to judge), and dnsperf -Q
// -v for comparison. The medians are also drawn in bench/plots/<--plot>.svg. --p99-pin runs the clients and the server on separate CPUs (taskset; the
// peak is then measured that way on the same instance).
import './help.mjs';
import { $, argv, fs, path, os, sleep } from 'zx';
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { writePlot } from './plot.mjs';
import { dnsPlot } from './plots.mjs';

$.verbose = false;
const ROOT = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
const ROUNDS = Number(argv.rounds ?? 3);
const SECONDS = Number(argv.seconds ?? 10);
const CLIENTS = Number(argv.clients ?? 4);
const OUTSTANDING = Number(argv.outstanding ?? 200);
const CLIENT_THREADS = Number(argv['client-threads'] ?? 2);
const NAMES = 1000;
const OUTSIDE = argv.outside ? String(argv.outside).split(',').map(Number) : [];
const SERVERS = String(argv.servers ?? (OUTSIDE.length ? 'native,dnsmasq,unbound' : 'native,js,knot,dnsmasq,aardvark')).split(',');
/** Forwarding runs (--outside): the upstream every server forwards to, and the cache size each gets. */
const fwd = { upstream: '127.0.0.1:9', cacheSize: 10_000 };
const NATIVE_THREADS = Number(argv['native-threads'] ?? 0);
const P99_SECONDS = Number(argv['p99-seconds'] ?? 5);
const P99_LOAD = Number(argv['p99-load'] ?? 0.5); // fraction of the median peak; SPEC §15 asks 50%
const P99_RUNS = Number(argv['p99-runs'] ?? 3);
// dnsperf -Q's outstanding cap in the latency runs: high enough never to bind (at 200k QPS, -q 200
// would stop sending whenever latency passes 1 ms and so hide exactly the tail being measured).
const P99_OUTSTANDING = Number(argv['p99-outstanding'] ?? 5000);
const LATENCY_CLIENT = path.join(ROOT, 'bench', 'udp-latency', 'target', 'release', 'udp-latency');
const [PIN_CLIENT, PIN_SERVER] = argv['p99-pin'] ? String(argv['p99-pin']).split(':') : ['', ''];
const AARDVARK_RUN = '/run/containers/networks/aardvark-dns'; // rootful netavark's, whatever --root says

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'f5bench-'));
const children = [];
/** Synchronous clean-ups run at exit before the work directory goes (the Podman network). */
const atExit = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  for (const f of atExit.reverse()) {
    try {
      f();
    } catch (e) {
      console.error(`cleanup: ${e.message}`);
    }
  }
  fs.rmSync(work, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const ip = (i) => `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const names = Array.from({ length: NAMES }, (_, i) => `svc${i}.default.cluster.local`);

// The same 1000 names for every server.
const config = ['log-level: warn', 'services:', ...names.flatMap((_, i) => [`  - name: svc${i}`, '    endpoints:', `      - address: ${ip(i)}`])].join('\n');
await fs.writeFile(path.join(work, 'config.yaml'), `${config}\n`);
await fs.writeFile(path.join(work, 'hosts'), names.map((n, i) => `${ip(i)} ${n}`).join('\n') + '\n');
// dnsperf reads the file in order and loops: shuffle so that no server benefits from locality.
const shuffled = names.map((n) => [Math.random(), n]).sort((a, b) => a[0] - b[0]).map(([, n]) => `${n} A`);
await fs.writeFile(path.join(work, 'queries'), shuffled.join('\n') + '\n');
// aardvark-dns answers container names (`<name>.dns.podman`): the same 1000 names in its form.
await fs.writeFile(path.join(work, 'queries-aardvark'), shuffled.map((l) => l.replace('.default.cluster.local', '.dns.podman')).join('\n') + '\n');
// knot: the same names as an authoritative zone.
await fs.writeFile(path.join(work, 'cluster.local.zone'), [
  '$ORIGIN cluster.local.', '$TTL 5', '@ SOA ns.dns hostmaster 1 7200 1800 86400 5', '@ NS ns.dns', 'ns.dns A 10.223.0.10',
  ...names.map((n, i) => `${n}. A ${ip(i)}`),
].join('\n') + '\n');

/**
 * A Podman network for aardvark-dns, created once: private Podman storage (vfs, the test
 * containers.conf), a DNS-enabled bridge network with a unique name, and one busybox container on
 * it, so that netavark brings up the bridge and starts (or reloads) aardvark-dns on the gateway.
 * Starting 1000 containers would take minutes and gigabytes here, so the 1000 names are added the
 * way netavark adds a container: one line each in the network's aardvark config file, then SIGHUP.
 * The gateway address is listed as a container too: dnsperf on the host sends from it, and
 * aardvark answers a container's name only to a container of the same network.
 * At exit the file is restored (reload), the container and the network removed.
 */
let podmanNet;
function podmanNetwork() {
  podmanNet ??= (async () => {
    const P = `f5b${process.pid % 100000}`;
    const dir = path.join(work, 'podman');
    const env = { ...process.env, CONTAINERS_CONF: path.join(ROOT, 'test', 'fixtures', 'podman', 'containers.conf') };
    const storage = ['--root', `${dir}/root`, '--runroot', `${dir}/runroot`, '--storage-driver', 'vfs', '--events-backend', 'file', '--tmpdir', `${dir}/tmp`];
    const podman = (args) => $({ env })`podman ${storage} ${args}`;
    const podmanSync = (args) => execFileSync('podman', [...storage, ...args], { env, stdio: 'ignore', timeout: 60_000 });
    const net = `${P}-net`;
    const ctr = `${P}-c`;
    await fs.mkdirp(`${dir}/bb/bin`);
    await fs.copy('/bin/busybox', `${dir}/bb/bin/busybox`);
    await fs.symlink('busybox', `${dir}/bb/bin/sleep`);
    await $`tar -C ${dir}/bb -cf ${dir}/bb.tar .`;
    await podman(['import', `${dir}/bb.tar`, 'localhost/f5bb:latest']);
    atExit.push(() => podmanSync(['network', 'rm', '-f', net]));
    await podman(['network', 'create', net]);
    atExit.push(() => podmanSync(['rm', '-f', '-t', '0', ctr]));
    await podman(['run', '-d', '--name', ctr, '--network', net, 'localhost/f5bb:latest', 'sleep', '100000']);
    const info = JSON.parse((await podman(['network', 'inspect', net])).stdout)[0];
    if (!info.dns_enabled) throw new Error(`network ${net} has DNS disabled`);
    const gateway = info.subnets[0].gateway;
    const file = path.join(AARDVARK_RUN, net);
    const aardvarkPid = () => Number(fs.readFileSync(path.join(AARDVARK_RUN, 'aardvark.pid'), 'utf8').trim());
    const original = await fs.readFile(file, 'utf8');
    // netavark's format: first line the listen addresses; then `<id> <ipv4s> <ipv6s> <names>`.
    const id = (i) => `f5${i.toString(16).padStart(62, '0')}`;
    const entries = [`${id(0xffffff)} ${gateway}  ${P}-client`, ...names.map((_, i) => `${id(i)} ${ip(i)}  svc${i}`)];
    atExit.push(() => {
      if (fs.existsSync(file)) fs.writeFileSync(file, original);
      process.kill(aardvarkPid(), 'SIGHUP');
    });
    await fs.writeFile(file, original.replace(/\n?$/, '\n') + entries.join('\n') + '\n');
    process.kill(aardvarkPid(), 'SIGHUP');
    return { gateway, aardvarkPid };
  })();
  return podmanNet;
}

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// A large UDP receive buffer for every server (SPEC §15): rmem_max for those that ask for one
// (the daemon asks for 8 MB), rmem_default for those that do not (dnsmasq) — else the C servers
// drop part of dnsperf's opening burst and each lost query holds one of the -q slots to the end.
if (process.getuid?.() === 0) {
  for (const f of ['rmem_max', 'rmem_default']) {
    const file = `/proc/sys/net/core/${f}`;
    const cur = Number((await fs.readFile(file, 'utf8')).trim());
    if (cur < 8 << 20) {
      await fs.writeFile(file, String(8 << 20));
      process.on('exit', () => fs.writeFileSync(file, String(cur)));
    }
  }
}
if (P99_SECONDS > 0 && P99_RUNS > 0) {
  await $`cargo build --release --offline --quiet --manifest-path ${path.join(ROOT, 'bench', 'udp-latency', 'Cargo.toml')}`;
}

/** CPU list the next started server is pinned to (taskset -c), or '' for none. */
let serverCpus = '';
function start(cmd, args, env = {}) {
  if (serverCpus) [cmd, args] = ['taskset', ['-c', serverCpus, cmd, ...args]];
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '', ...env } });
  let out = '';
  p.stdout.on('data', (c) => (out += c));
  p.stderr.on('data', (c) => (out += c));
  children.push(p);
  return { p, out: () => out };
}

async function waitAnswer(addr, port, kind) {
  const name = kind === 'aardvark' ? 'svc1.dns.podman' : OUTSIDE.length ? outsideName(1) : names[1];
  for (let i = 0; i < 200; i++) {
    const r = await $`dig +short +time=1 +tries=1 @${addr} -p ${port} ${name}`.nothrow();
    if (r.stdout.trim() === ip(1)) return;
    await sleep(50);
  }
  throw new Error(`server on port ${port} does not answer`);
}

const daemon = async (port, env) => {
  const apiPort = await freePort();
  return withApi(apiPort, start(process.execPath, [
    env.CLI ?? path.join(ROOT, 'dist', 'cli.js'), 'daemon', '--config', path.join(work, 'config.yaml'), '--link', 'none',
    '--dns-listen', `127.0.0.1:${port}`, '--api-listen', `127.0.0.1:${apiPort}`, '--state-dir', path.join(work, `state-${port}`),
    '--upstream-dns', fwd.upstream, '--cache-size', String(fwd.cacheSize), '--dns-threads', String(env.THREADS ?? NATIVE_THREADS), '--podman-socket', 'none',
    // `native+QUERYLOG=sample:100`: the query log on, into a file (what it costs).
    ...(env.QUERYLOG ? ['--query-log', env.QUERYLOG, '--query-log-file', path.join(work, `query-log-${port}`)] : []),
  ], env));
};

/** The daemon's own latency histogram (receive → send, per batch on the native path). */
const withApi = (apiPort, server) => ({
  ...server,
  async histogram() {
    const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
    const h = {};
    for (const m of text.matchAll(/dns_query_duration_seconds_bucket\{le="([^"]+)",path="native"\} (\d+)/g)) h[m[1]] = Number(m[2]);
    return h;
  },
});

/** Servers under test: each starts, answers the same names, and reports its pid for CPU time. */
const SERVER_KINDS = {
  native: (port, env) => daemon(port, { PODMAN_SWARM_DNS_NATIVE: '1', ...env }),
  knot: async (port, env) => {
    const dir = path.join(work, `knot-${port}`);
    await fs.mkdirp(dir);
    await fs.writeFile(path.join(dir, 'knot.conf'), [
      'server:', `    rundir: "${dir}"`, `    listen: 127.0.0.1@${port}`, '    udp-max-payload: 1232',
      // `knot+AFFINITY=1`: knot's own steering of queries to the worker of the receiving CPU.
      ...(env.AFFINITY ? ['    socket-affinity: on'] : []),
      'control:', `    listen: "${dir}/knot.sock"`,
      'database:', `    storage: "${dir}"`,
      'log:', '  - target: stderr', '    any: warning',
      'zone:', '  - domain: cluster.local', `    file: "${path.join(work, 'cluster.local.zone')}"`, '    journal-content: none', '    zonefile-sync: -1',
    ].join('\n') + '\n');
    return start('knotd', ['-c', path.join(dir, 'knot.conf')]);
  },
  // aardvark-dns as Podman runs it: the instance netavark starts for a network the script creates
  // (see podmanNetwork below), on the network's gateway, port 53. It keeps running across rounds;
  // only its CPU time is sampled.
  aardvark: async () => {
    const net = await podmanNetwork();
    const p = { pid: net.aardvarkPid(), kill: () => {}, once: (_ev, cb) => cb() };
    return { p, out: () => '', addr: net.gateway, port: 53 };
  },
  js: async (port, env) => {
    const apiPort = await freePort();
    return start(process.execPath, [
      path.join(ROOT, 'dist', 'cli.js'), 'daemon', '--config', path.join(work, 'config.yaml'), '--link', 'none',
      '--dns-listen', `127.0.0.1:${port}`, '--api-listen', `127.0.0.1:${apiPort}`, '--state-dir', path.join(work, `state-${port}`),
      '--upstream-dns', fwd.upstream, '--cache-size', String(fwd.cacheSize),
    ], { PODMAN_SWARM_DNS_NATIVE: '0', ...env });
  },
  dnsmasq: async (port) =>
    start('dnsmasq', [
      '--keep-in-foreground', '--conf-file=/dev/null', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces',
      '--no-resolv', '--no-hosts', `--addn-hosts=${path.join(work, 'hosts')}`, '--local=/cluster.local/', `--cache-size=${fwd.cacheSize}`,
      `--server=${fwd.upstream.replace(':', '#')}`, '--user=root', `--pid-file=${path.join(work, `dnsmasq-${port}.pid`)}`,
    ]),
  // unbound as a caching forwarder (no validation: nothing to validate against), one thread per
  // core like the daemon, caches sized for every name.
  unbound: async (port) => {
    const dir = path.join(work, `unbound-${port}`);
    await fs.mkdirp(dir);
    const [upHost, upPort] = fwd.upstream.split(':');
    await fs.writeFile(path.join(dir, 'unbound.conf'), [
      'server:', `    directory: "${dir}"`, '    chroot: ""', '    username: ""', `    pidfile: "${dir}/unbound.pid"`,
      '    do-daemonize: no', '    use-syslog: no', '    logfile: ""', '    verbosity: 0',
      '    interface: 127.0.0.1', `    port: ${port}`, '    do-ip6: no', `    num-threads: ${os.cpus().length}`, '    so-reuseport: yes', '    so-rcvbuf: 8m',
      '    module-config: "iterator"', '    do-not-query-localhost: no', '    qname-minimisation: no', '    prefetch: no',
      '    msg-cache-size: 256m', '    rrset-cache-size: 512m', '    access-control: 127.0.0.0/8 allow',
      // test. is one of unbound's built-in NXDOMAIN zones: let it forward.
      '    local-zone: "test." nodefault',
      'remote-control:', '    control-enable: no',
      'forward-zone:', '    name: "."', `    forward-addr: ${upHost}@${upPort}`,
    ].join('\n') + '\n');
    return start('unbound', ['-d', '-c', path.join(dir, 'unbound.conf')]);
  },
};

function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime + stime, in clock ticks (USER_HZ, 100 on Linux).
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

const queriesOf = (kind) => (fwd.queries ? fwd.queries : path.join(work, kind === 'aardvark' ? 'queries-aardvark' : 'queries'));

/** `native+KEY=VALUE+...`: a server kind with extra environment (experiments on the daemon). */
function startServer(name, port) {
  const [kind, ...vars] = name.split('+');
  const env = Object.fromEntries(vars.map((v) => [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)]));
  return SERVER_KINDS[kind](port, env);
}
const kindOf = (name) => name.split('+')[0];

/** dnsperf's arguments against `server` for `seconds`, with the client settings of the peak runs. */
const dnsperfArgs = (server, seconds, outstanding = OUTSTANDING) =>
  ['-s', server.addr, '-p', server.port, '-d', queriesOf(server.kind), '-l', seconds, '-c', CLIENTS, '-T', CLIENT_THREADS, '-q', outstanding].map(String);

/** A fresh server that answers and is warmed up (JIT, caches); `client`: a command prefix for dnsperf. */
async function startWarm(name, client = []) {
  const free = await freePort();
  const server = { addr: '127.0.0.1', port: free, kind: kindOf(name), ...(await startServer(name, free)) };
  await waitAnswer(server.addr, server.port, server.kind);
  if (fwd.queries) {
    // Every name asked twice (the first pass fills the cache; the second catches what it lost).
    for (let pass = 0; pass < 2; pass++) await $`${client} dnsperf ${dnsperfArgs(server, 600)} -n 1`.nothrow();
  } else {
    await $`${client} dnsperf ${dnsperfArgs(server, 2)}`.nothrow();
  }
  return server;
}

async function stop(server) {
  server.p.kill('SIGTERM');
  await new Promise((res) => server.p.once('exit', res));
}

async function run(name) {
  const server = await startWarm(name);
  const { kind } = server;
  const cpu0 = cpuSeconds(server.p.pid);
  const r = await $`dnsperf ${dnsperfArgs(server, SECONDS)}`.nothrow();
  const cpu = cpuSeconds(server.p.pid) - cpu0;
  await stop(server);
  const out = r.stdout;
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const completed = Number(/Queries completed:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const latency = Number(/Average Latency \(s\):\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  if (!Number.isFinite(qps)) throw new Error(`dnsperf failed against ${kind}:\n${out}\n${r.stderr}\n${server.out()}`);
  return { kind: name, qps, completed, lost, latencyMs: latency * 1000, perCpuSecond: cpu > 0 ? completed / cpu : NaN };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** ROUNDS interleaved rounds over SERVERS; prints the table titled `what`. */
async function rounds(what) {
  const results = Object.fromEntries(SERVERS.map((k) => [k, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const kind of SERVERS) {
      const r = await run(kind);
      results[kind].push(r);
      console.error(`round ${round} ${kind.padEnd(8)} ${r.qps.toFixed(0).padStart(8)} qps  ${r.perCpuSecond.toFixed(0).padStart(8)} answers/cpu-s  lost ${r.lost}  avg ${r.latencyMs.toFixed(3)} ms`);
    }
  }
  const base = SERVERS[0];
  const med = (k, f) => median(results[k].map((r) => r[f]));
  const cpuModel = (await fs.readFile('/proc/cpuinfo', 'utf8')).match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown cpu';
  console.log(`\nDNS, ${what}, dnsperf -c ${CLIENTS} -T ${CLIENT_THREADS} -q ${OUTSTANDING} -l ${SECONDS}, ${ROUNDS} interleaved rounds, medians`);
  console.log(`${os.cpus().length} cores (${cpuModel}), node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`);
  console.log(`| server | QPS | answers per server CPU-second | avg latency (ms) | lost | ${base} QPS ÷ this | ${base} per-CPU ÷ this |`);
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const k of SERVERS) {
    console.log(`| ${k} | ${med(k, 'qps').toFixed(0)} | ${med(k, 'perCpuSecond').toFixed(0)} | ${med(k, 'latencyMs').toFixed(3)} | ${med(k, 'lost')} | ${(med(base, 'qps') / med(k, 'qps')).toFixed(2)}× | ${(med(base, 'perCpuSecond') / med(k, 'perCpuSecond')).toFixed(2)}× |`);
  }
  return { results, med };
}

function outsideName(i) {
  return `host${i}.outside.test`;
}

if (OUTSIDE.length) {
  // The upstream: knot, authoritative for outside.test, the largest N names, TTL one day.
  const most = Math.max(...OUTSIDE);
  const dir = path.join(work, 'upstream');
  await fs.mkdirp(dir);
  await fs.writeFile(path.join(dir, 'outside.test.zone'), [
    '$ORIGIN outside.test.', '$TTL 86400', '@ SOA ns hostmaster 1 7200 1800 86400 3600', '@ NS ns', 'ns A 10.223.0.10',
    ...Array.from({ length: most }, (_, i) => `${outsideName(i)}. A ${ip(i)}`),
  ].join('\n') + '\n');
  const upPort = await freePort();
  await fs.writeFile(path.join(dir, 'knot.conf'), [
    'server:', `    rundir: "${dir}"`, `    listen: 127.0.0.1@${upPort}`, 'control:', `    listen: "${dir}/knot.sock"`,
    'database:', `    storage: "${dir}"`, 'log:', '  - target: stderr', '    any: warning',
    'zone:', '  - domain: outside.test', `    file: "${path.join(dir, 'outside.test.zone')}"`, '    journal-content: none', '    zonefile-sync: -1',
  ].join('\n') + '\n');
  start('knotd', ['-c', path.join(dir, 'knot.conf')]);
  fwd.upstream = `127.0.0.1:${upPort}`;
  await waitAnswer('127.0.0.1', upPort, 'knot');
  for (const n of OUTSIDE) {
    fwd.cacheSize = Math.max(10_000, 2 * n);
    fwd.queries = path.join(work, `queries-outside-${n}`);
    const shuffledOutside = Array.from({ length: n }, (_, i) => [Math.random(), `${outsideName(i)} A`]).sort((a, b) => a[0] - b[0]).map(([, l]) => l);
    await fs.writeFile(fwd.queries, shuffledOutside.join('\n') + '\n');
    await rounds(`${n} distinct outside A names from a warm cache (caching forwarders in front of the same knot upstream)`);
  }
  process.exit(0);
}

const { results, med } = await rounds(`${NAMES} in-zone A names`);
const chart = writePlot(String(argv.plot ?? 'dns'), dnsPlot(`DNS: ${NAMES} in-zone A names, ${os.cpus().length} cores (${new Date().toISOString().slice(0, 10)})`, SERVERS.map((k) => ({ server: k, qps: med(k, 'qps'), perCpu: med(k, 'perCpuSecond') }))));
console.log(`\nChart: ${path.relative(ROOT, chart)}`);

/** Percentile q of sorted latencies. */
const pct = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

/**
 * Latency at `rate` QPS, measured two ways on the same server instance, one after the other:
 * - dnsperf -Q with -v (per-query lines `> NOERROR name A 0.000123`), the closed loop of the peak
 *   runs capped at `rate`: at most -q queries outstanding, each timed when dnsperf's receiving
 *   thread reads the answer (so its own waits for a CPU and its logging count);
 * - bench/udp-latency, open loop at `rate` (a slow answer does not slow the sending), each query
 *   timed from a clock read before the sendmmsg() that sends it (one per socket per burst) to the kernel's receive timestamp of the answer;
 *   unanswered queries rank above every answer.
 */
async function latencyAt(name, rate) {
  const client = PIN_CLIENT ? ['taskset', '-c', PIN_CLIENT] : [];
  serverCpus = PIN_SERVER;
  const server = await startWarm(name, client);
  serverCpus = '';
  const { addr, port, kind } = server;
  let peak = null;
  if (rate === null) {
    // Pinned: the peak of this placement, on this instance, with the settings of the rounds.
    const r = await $`${client} dnsperf ${dnsperfArgs(server, SECONDS)}`.nothrow();
    peak = Number(/Queries per second:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? NaN);
    rate = peak * P99_LOAD;
  }
  const h0 = server.histogram ? await server.histogram().catch(() => null) : null;
  // The per-query lines (~100k a second) go to a file, not through a pipe into this process: the
  // reader would compete for the 2 cores with the server and dnsperf, and a full pipe stalls
  // dnsperf, whose stalls count as latency.
  const log = path.join(work, `p99-${kind}.txt`);
  await $`${client} dnsperf ${dnsperfArgs(server, P99_SECONDS, P99_OUTSTANDING)} -Q ${Math.round(rate)} -v > ${log}`.nothrow();
  const h1 = server.histogram ? await server.histogram().catch(() => null) : null;
  const open = JSON.parse((await $`${client} ${LATENCY_CLIENT} ${addr}:${port} ${queriesOf(kind)} ${Math.round(rate)} ${P99_SECONDS} ${CLIENT_THREADS} ${Math.max(1, CLIENTS / CLIENT_THREADS)}`).stdout);
  await stop(server);
  const lat = [];
  for (const line of (await fs.readFile(log, 'utf8')).split('\n')) {
    const m = /^> \S+ \S+ \S+ ([\d.]+)$/.exec(line.trim());
    if (m) lat.push(Number(m[1]) * 1000);
  }
  await fs.rm(log);
  lat.sort((a, b) => a - b);
  // Share of the dnsperf run's answers the daemon itself sent within 1 ms of receiving them.
  const d = h0 && h1 && h1['+Inf'] > h0['+Inf'] ? (100 * (h1['0.001'] - h0['0.001'])) / (h1['+Inf'] - h0['+Inf']) : NaN;
  return {
    peak,
    rate,
    dnsperf: { n: lat.length, p50: pct(lat, 0.5), p99: pct(lat, 0.99), p999: pct(lat, 0.999) },
    open: { n: open.sent, expected: Math.round(rate) * P99_SECONDS, noTs: open.no_kernel_timestamp, lost: open.lost, p50: open.p50 ?? Infinity, p99: open.p99 ?? Infinity, p999: open.p999 ?? Infinity, cpu: open.cpu_s / P99_SECONDS },
    inDaemon: d,
  };
}

const p99Kinds = SERVERS.filter((k) => kindOf(k) === 'native' || kindOf(k) === 'knot');
if (p99Kinds.length > 0 && P99_SECONDS > 0 && P99_RUNS > 0) {
  const f = (x) => (Number.isFinite(x) ? x.toFixed(3) : '∞');
  // Each server at P99_LOAD of its own median peak; and, when both are measured, the native path
  // also at knot's rate (the same offered load for both).
  const rows = p99Kinds.map((k) => ({ label: k, kind: k, rate: PIN_CLIENT ? null : med(k, 'qps') * P99_LOAD }));
  if (!PIN_CLIENT && results.native && results.knot) rows.push({ label: "native at knot's rate", kind: 'native', rate: med('knot', 'qps') * P99_LOAD });
  const lat = new Map(rows.map((r) => [r, []]));
  for (let run = 1; run <= P99_RUNS; run++) {
    for (const row of rows) {
      const l = await latencyAt(row.kind, row.rate);
      lat.get(row).push(l);
      console.error(`latency ${run} ${row.label.padEnd(8)} ${l.peak ? `peak ${l.peak.toFixed(0)} ` : ''}rate ${l.rate.toFixed(0)} dnsperf p50/p99/p99.9 ${f(l.dnsperf.p50)} / ${f(l.dnsperf.p99)} / ${f(l.dnsperf.p999)} ms; open loop ${f(l.open.p50)} / ${f(l.open.p99)} / ${f(l.open.p999)} ms, lost ${l.open.lost}, sent ${l.open.n}/${l.open.expected}, no kernel timestamp ${l.open.noTs}, client CPU ${l.open.cpu.toFixed(2)}`);
    }
  }
  const pin = PIN_CLIENT ? `; clients on CPU ${PIN_CLIENT}, server on CPU ${PIN_SERVER} (taskset), peak measured so` : '';
  console.log(`\nLatency at ${P99_LOAD * 100}% of each server's median peak QPS, ${P99_SECONDS} s per measurement, ${P99_RUNS} runs (a fresh server each), medians, p99 with [min–max]${pin}:\n`);
  console.log('| server | rate (QPS) | open loop (udp-latency): p50 (ms) | p99 (ms) | p99.9 (ms) | lost | client CPU | dnsperf -Q -q ' + P99_OUTSTANDING + ' -v: p50 (ms) | p99 (ms) | p99.9 (ms) | daemon sent ≤ 1 ms after receipt |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) {
    const runs = lat.get(row);
    const m = (side, q) => median(runs.map((r) => r[side][q]));
    const spread = (side) => {
      const xs = runs.map((r) => r[side].p99);
      return `${f(m(side, 'p99'))} [${f(Math.min(...xs))}–${f(Math.max(...xs))}]`;
    };
    const inD = runs.map((r) => r.inDaemon).filter(Number.isFinite);
    console.log(`| ${row.label} | ${median(runs.map((r) => r.rate)).toFixed(0)} | ${f(m('open', 'p50'))} | ${spread('open')} | ${f(m('open', 'p999'))} | ${runs.map((r) => r.open.lost).join('/')} | ${m('open', 'cpu').toFixed(2)} | ${f(m('dnsperf', 'p50'))} | ${spread('dnsperf')} | ${f(m('dnsperf', 'p999'))} | ${inD.length ? `${median(inD).toFixed(3)}%` : ''} |`);
  }
}
