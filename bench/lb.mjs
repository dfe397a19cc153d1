#!/usr/bin/env node
// Load-balancer benchmark (SPEC §15, issue 6): the same backends reached directly, through the
// daemon's VIP (by default twice: one daemon with the addon's native relay, one with the JS
// proxy, PODMAN_SWARM_DNS_NATIVE_RELAY=0) and through HAProxy (mode tcp), interleaved:
//   bulk     iperf3, one stream, client → server          (Gbit/s)
//   connect  wrk, a new connection per request, to nginx   (requests/s)
//   keep     wrk, keep-alive, to nginx                     (requests/s)
// and, asked for with --cases (HAProxy has no UDP: direct and the two VIPs only):
//   udp-rate  dnsperf -c 4 -T 2 -q 200 to knot, a UDP session per dnsperf socket (queries/s)
//   udp-bulk  iperf3 -u -b 0 -l 1400, one stream; what the server received  (Gbit/s)
// While a VIP runs, a probe asks that daemon's DNS every 50 ms and counts answers.
//
//   node bench/lb.mjs [--rounds 3] [--seconds 8] [--connections 50] [--wrk-threads 1]
//        [--cases bulk,connect,keep,udp-rate,udp-bulk] [--targets direct,vip,vip-js,haproxy]
//        [--ref-addon FILE] [--pin]
// --pin: the load generators and backends run on CPU 0 (taskset), the daemons and HAProxy on
// CPU 1, in every target alike, so "direct" is the limit of the endpoints on one CPU and a
// proxy is measured with a CPU of its own (as on a host with cores to spare) rather than taking
// CPU from the endpoints (on a 2-core machine, direct UDP's two ends fill both cores).
// Targets: direct, vip (native relay, a thread per core), vip1 (one relay thread), vip-shared
// (a thread per core sharing one listening socket), vip-js, haproxy (nbthread 1), haproxy2
// (nbthread 2), vip-ref (the native relay of another build of the addon, --ref-addon FILE, e.g.
// main's: a before/after comparison in the same run). Ratios are against haproxy2 when it runs,
// else haproxy.
//
// Needs: `npm run build`; haproxy iperf3 wrk nginx-light (and for UDP dnsperf knot) from Debian (installed with apt-get when
// missing and running as root). The VIP is in 127.68.0.0/16 so no link or root is needed;
// the path (loopback delivery to a local address) is the one pswarm0 gives. The JS-proxy daemon
// uses 127.69.0.0/16 (same ports, other VIPs). `npm run build:native` first for the relay.
import './help.mjs';
import { $, argv, fs, path, os, sleep } from 'zx';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { writePlot } from './plot.mjs';
import { lbPlot } from './plots.mjs';

$.verbose = false;
const ROOT = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
const ROUNDS = Number(argv.rounds ?? 3);
const SECONDS = Number(argv.seconds ?? 8);
const CONNS = Number(argv.connections ?? 50);
const WRK_THREADS = Number(argv['wrk-threads'] ?? 1);
const CASES = String(argv.cases ?? 'bulk,connect,keep').split(',');
const TARGETS = String(argv.targets ?? 'direct,vip,vip-js,haproxy').split(',');
const REF_ADDON = argv['ref-addon'] ? path.resolve(String(argv['ref-addon'])) : null;
const EXTRA = argv['daemon-args'] ? String(argv['daemon-args']).split(' ') : [];
// --haproxy-smart: HAProxy's options that save an ACK per connection (delayed ACK on the
// accepted and the server socket), off by default in its TCP mode.
const SMART = Boolean(argv['haproxy-smart']);
const PIN = Boolean(argv.pin);
/** The command line that runs `cmd` on the CPUs of its role when --pin is given. */
const pinned = (role, cmd, args) => (PIN ? ['taskset', ['-c', role === 'proxy' ? '1' : '0', cmd, ...args]] : [cmd, args]);

const UDP_CASES = ['udp-rate', 'udp-bulk'];
const LOAD_BEFORE = os.loadavg().map((x) => x.toFixed(1)).join(' ');
const need = { haproxy: 'haproxy', iperf3: 'iperf3', wrk: 'wrk', nginx: 'nginx-light', ...(CASES.includes('udp-rate') ? { dnsperf: 'dnsperf', knotd: 'knot' } : {}) };
const { spawnSync } = await import('node:child_process');
const missing = Object.entries(need).filter(([bin]) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0);
if (missing.length) {
  if (process.getuid?.() !== 0) {
    console.error(`missing: ${missing.map(([b]) => b).join(', ')}; install with: apt-get install -y ${missing.map(([, p]) => p).join(' ')}`);
    process.exit(2);
  }
  await $`apt-get install -y --no-install-recommends ${missing.map(([, p]) => p)}`;
}

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'psdns-lb-bench-'));
const children = [];
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
});
/** Stops the servers and waits for them (so none is left behind as a zombie), then exits. */
async function shutdown(code) {
  // SIGTERM, not SIGKILL: nginx's master then takes its workers down with it.
  await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => {
    c.once('exit', r);
    c.kill('SIGTERM');
    setTimeout(() => c.kill('SIGKILL'), 3000).unref();
  }))));
  process.exit(code);
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => void shutdown(130));

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function start(cmd, args, env = {}, role = 'endpoint') {
  const p = spawn(...pinned(role, cmd, args), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '', ...env } });
  let out = '';
  p.stdout.on('data', (c) => (out += c));
  p.stderr.on('data', (c) => (out += c));
  children.push(p);
  return { p, out: () => out };
}

async function waitPort(host, port) {
  for (let i = 0; i < 200; i++) {
    const ok = await awaitConnect(host, port).catch(() => false);
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${host}:${port}:\n${children.map((c) => c.spawnargs.join(' ') + ': ' + c.exitCode).join('\n')}`);
}
async function awaitConnect(host, port) {
  const { connect } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = connect({ host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', reject);
  });
}

// Backends: iperf3 server and nginx (one worker, a 612-byte page like nginx's default).
const iperfPort = await freePort();
start('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(iperfPort)]);
const httpPort = await freePort();
await fs.mkdir(path.join(work, 'www'));
await fs.writeFile(path.join(work, 'www', 'index.html'), 'x'.repeat(612));
await fs.writeFile(path.join(work, 'nginx.conf'), `
daemon off; worker_processes 1; pid ${work}/nginx.pid; error_log ${work}/nginx.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; client_body_temp_path ${work}; proxy_temp_path ${work};
  fastcgi_temp_path ${work}; uwsgi_temp_path ${work}; scgi_temp_path ${work};
  server { listen 127.0.0.1:${httpPort} backlog=4096; root ${work}/www; } }
`);
start('nginx', ['-c', path.join(work, 'nginx.conf'), '-p', work]);

// The UDP request/response backend: knot, authoritative for one name, and dnsperf's query file.
const dnsBackendPort = await freePort();
if (CASES.includes('udp-rate')) {
  const dir = path.join(work, 'knot');
  await fs.mkdirp(dir);
  // mkdtemp's directory is 0700; knotd (as root here) still could not write its PID file there.
  await fs.chmod(work, 0o755);
  await fs.writeFile(path.join(dir, 'bench.test.zone'), '$ORIGIN bench.test.\n$TTL 3600\n@ SOA ns hostmaster 1 7200 1800 86400 3600\n@ NS ns\nns A 10.0.0.1\nwww A 10.0.0.2\n');
  await fs.writeFile(path.join(dir, 'knot.conf'), [
    'server:', `    rundir: "${dir}"`, `    listen: 127.0.0.1@${dnsBackendPort}`, 'control:', `    listen: "${dir}/knot.sock"`,
    'database:', `    storage: "${dir}"`, 'log:', '  - target: stderr', '    any: warning',
    'zone:', '  - domain: bench.test', `    file: "${path.join(dir, 'bench.test.zone')}"`, '    journal-content: none', '    zonefile-sync: -1',
  ].join('\n') + '\n');
  await fs.writeFile(path.join(work, 'queries'), 'www.bench.test A\n');
  const knot = start('knotd', ['-c', path.join(dir, 'knot.conf')]);
  knot.p.once('exit', (code) => console.error(`knotd exited (${code}): ${knot.out()}`));
}

// HAProxy, L4 (mode tcp) like the daemon's proxy: `haproxy` with one thread, `haproxy2` with
// two (nbthread 2, against the relay's thread per core).
async function startHaproxy(name, threads) {
  const ports = { iperf: await freePort(), http: await freePort() };
  await fs.writeFile(path.join(work, `${name}.cfg`), `
global
  nbthread ${threads}
  maxconn 8000
defaults
  mode tcp${SMART ? '\n  option tcp-smart-accept\n  option tcp-smart-connect' : ''}
  timeout connect 3s
  timeout client 1h
  timeout server 1h
listen iperf
  bind 127.0.0.1:${ports.iperf}
  server s1 127.0.0.1:${iperfPort}
listen web
  bind 127.0.0.1:${ports.http}
  server s1 127.0.0.1:${httpPort}
`);
  const pid = start('haproxy', ['-f', path.join(work, `${name}.cfg`), '-db'], {}, 'proxy').p.pid;
  return { bulk: ['127.0.0.1', ports.iperf], http: ['127.0.0.1', ports.http], pid };
}

// The daemons, with the two backends as vip-mode services.
await fs.writeFile(path.join(work, 'config.yaml'), [
  'log-level: warn',
  'services:',
  '  - { name: iperf, mode: vip, endpoints: [{ address: 127.0.0.1, ports: { data: ' + iperfPort + '/tcp, datau: ' + iperfPort + '/udp } }] }',
  '  - { name: knot, mode: vip, endpoints: [{ address: 127.0.0.1, ports: { dns: ' + dnsBackendPort + '/udp } }] }',
  '  - { name: web, mode: vip, endpoints: [{ address: 127.0.0.1, ports: { http: ' + httpPort + '/tcp } }] }',
  '',
].join('\n'));
async function startDaemon(name, cidr, env, args = []) {
  const dnsPort = await freePort();
  const apiPort = await freePort();
  const d = start(process.execPath, [
    path.join(ROOT, 'dist', 'cli.js'), 'daemon', '--config', path.join(work, 'config.yaml'), '--link', 'none',
    '--service-cidr', cidr, '--dns-listen', `127.0.0.1:${dnsPort}`, '--api-listen', `127.0.0.1:${apiPort}`,
    '--state-dir', path.join(work, `state-${name}`), '--upstream-dns', '127.0.0.1:9', ...EXTRA, ...args,
  ], env, 'proxy');
  async function vipOf(svc) {
    for (let i = 0; i < 200; i++) {
      try {
        const r = await fetch(`http://127.0.0.1:${apiPort}/api/v1/services/default/${svc}`);
        if (r.ok) {
          const v = (await r.json()).vip;
          if (v) return v;
        }
      } catch { /* not up yet */ }
      await sleep(50);
    }
    throw new Error(`no VIP for ${svc}:\n${d.out()}`);
  }
  return { d, dnsPort, iperf: await vipOf('iperf'), web: await vipOf('web'), knot: await vipOf('knot') };
}
async function daemonTarget(name, cidr, env, args = []) {
  const d = await startDaemon(name, cidr, env, args);
  return { bulk: [d.iperf, iperfPort], http: [d.web, httpPort], udp: [d.knot, dnsBackendPort], pid: d.d.p.pid, dns: d.dnsPort };
}
// Each target is started only when asked for. vip: the native relay, a thread per core (an
// SO_REUSEPORT listener each); vip1: one thread; vip-shared: a thread per core sharing one
// listening socket (EPOLLEXCLUSIVE); vip-nospin: the relay threads never poll before they sleep;
// vip-js: the JS proxy.
const MAKE = {
  direct: async () => ({ bulk: ['127.0.0.1', iperfPort], http: ['127.0.0.1', httpPort], udp: ['127.0.0.1', dnsBackendPort], pid: null }),
  vip: () => daemonTarget('native', '127.68.0.0/16', {}),
  'vip-js': () => daemonTarget('js', '127.69.0.0/16', { PODMAN_SWARM_DNS_NATIVE_RELAY: '0' }),
  vip1: () => daemonTarget('native1', '127.70.0.0/16', {}, ['--lb-threads', '1']),
  'vip-shared': () => daemonTarget('shared', '127.71.0.0/16', { PODMAN_SWARM_DNS_RELAY_SHARED: '1' }),
  'vip-nospin': () => daemonTarget('nospin', '127.72.0.0/16', { PODMAN_SWARM_DNS_RELAY_SPIN_US: '0' }),
  'vip-ref': () => {
    if (!REF_ADDON) throw new Error('target vip-ref needs --ref-addon FILE (an addon built from another commit)');
    return daemonTarget('ref', '127.73.0.0/16', { PODMAN_SWARM_DNS_NATIVE_ADDON: REF_ADDON });
  },
  haproxy: () => startHaproxy('haproxy', 1),
  haproxy2: () => startHaproxy('haproxy2', 2),
};
const targets = {};
for (const t of TARGETS) {
  if (!MAKE[t]) throw new Error(`unknown target ${t}: one of ${Object.keys(MAKE).join(', ')}`);
  targets[t] = await MAKE[t]();
}
for (const t of Object.values(targets)) {
  await waitPort(...t.bulk);
  await waitPort(...t.http);
}

function cpuSeconds(pid) {
  if (!pid) return NaN;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Asks the daemon's DNS every 50 ms while a VIP case runs: the DNS path must keep answering. */
function dnsProbe(dnsPort) {
  const s = createSocket('udp4');
  let sent = 0;
  let answered = 0;
  const q = Buffer.from('abcd01000001000000000000037765620764656661756c7407636c7573746572056c6f63616c0000010001', 'hex');
  s.on('message', () => answered++);
  const timer = setInterval(() => {
    sent++;
    s.send(q, dnsPort, '127.0.0.1');
  }, 50);
  return async () => {
    clearInterval(timer);
    await sleep(200);
    s.close();
    return { sent, answered };
  };
}

async function measure(kind, target) {
  const t = targets[target];
  if (kind === 'udp-rate') {
    const r = await $`${pinned('endpoint', 'dnsperf', []).flat()} -s ${t.udp[0]} -p ${t.udp[1]} -d ${path.join(work, 'queries')} -c 4 -T 2 -q 200 -l ${SECONDS}`.nothrow();
    const qps = Number(/Queries per second:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? NaN);
    if (!(qps > 0)) console.error(`  ${target} udp-rate: ${r.stdout}${r.stderr}`);
    const lost = /Queries lost:\s+(\d+) \(([\d.]+)%\)/.exec(r.stdout);
    if (lost && Number(lost[1]) > 0) console.error(`  ${target} udp-rate: ${lost[1]} queries lost (${lost[2]} %)`);
    return qps;
  }
  if (kind === 'udp-bulk') {
    const r = await $`${pinned('endpoint', 'iperf3', []).flat()} -u -b 0 -l 1400 -c ${t.bulk[0]} -p ${t.bulk[1]} -t ${SECONDS} -O 1 -J`.nothrow();
    return JSON.parse(r.stdout).end?.sum_received?.bits_per_second / 1e9;
  }
  if (kind === 'bulk') {
    const r = await $`${pinned('endpoint', 'iperf3', []).flat()} -c ${t.bulk[0]} -p ${t.bulk[1]} -t ${SECONDS} -O 1 -J`.nothrow();
    const j = JSON.parse(r.stdout);
    return j.end.sum_received.bits_per_second / 1e9;
  }
  const url = `http://${t.http[0]}:${t.http[1]}/`;
  const args = ['-t', String(WRK_THREADS), '-c', String(CONNS), '-d', `${SECONDS}s`];
  if (kind === 'connect') args.push('-H', 'Connection: close');
  const r = await $`${pinned('endpoint', 'wrk', []).flat()} ${args} ${url}`.nothrow();
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? NaN);
  const errors = /Socket errors: (.*)/.exec(r.stdout)?.[1];
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(r.stdout)?.[1];
  if (errors || non2xx) console.error(`  ${target} ${kind}: socket errors ${errors ?? 0}, non-2xx ${non2xx ?? 0}`);
  return rps;
}

const unit = { bulk: 'Gbit/s', connect: 'req/s', keep: 'req/s', 'udp-rate': 'q/s', 'udp-bulk': 'Gbit/s' };
const bits = (kind) => kind === 'bulk' || kind === 'udp-bulk';
const results = {};
const cpu = {};
const probes = [];
for (let round = 1; round <= ROUNDS; round++) {
  for (const kind of CASES) {
    for (const target of TARGETS) {
      if (UDP_CASES.includes(kind) && !targets[target].udp) continue;
      const stop = targets[target].dns ? dnsProbe(targets[target].dns) : null;
      const c0 = cpuSeconds(targets[target].pid);
      const v = await measure(kind, target);
      const c1 = cpuSeconds(targets[target].pid);
      if (stop) probes.push(await stop());
      ((results[kind] ??= {})[target] ??= []).push(v);
      ((cpu[kind] ??= {})[target] ??= []).push((c1 - c0) / SECONDS);
      console.error(`round ${round} ${kind.padEnd(7)} ${target.padEnd(8)} ${v.toFixed(bits(kind) ? 2 : 0).padStart(9)} ${unit[kind]}  proxy cpu ${((c1 - c0) / SECONDS * 100).toFixed(0)}%`);
      await sleep(300);
    }
  }
}

const median = (xs) => {
  const s = [...xs].filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const cpuModel = (await fs.readFile('/proc/cpuinfo', 'utf8')).match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown cpu';
const haproxyVersion = (await $`haproxy -v`.nothrow()).stdout.split('\n')[0];
console.log(`\nLoad balancer, loopback, ${ROUNDS} interleaved rounds of ${SECONDS} s, medians (min–max); wrk -t${WRK_THREADS} -c${CONNS}${PIN ? "; pinned: endpoints on CPU 0, proxies on CPU 1" : ""}; load average before: ${LOAD_BEFORE}, after: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
console.log(`${os.cpus().length} cores (${cpuModel}), node ${process.version}, ${haproxyVersion}, ${new Date().toISOString().slice(0, 10)}\n`);
// TCP: every target's rate, each proxy's rate against the reference HAProxy (haproxy2 when it
// ran, else haproxy), and what each proxy pays per unit: CPU-seconds per request (µs) or per
// gigabit (ms), less sensitive than the rates to what else the shared machine runs.
const NAMES = { direct: 'direct', vip: 'VIP, native relay', 'vip-nospin': 'VIP, relay without polling', vip1: 'VIP, relay 1 thread', 'vip-shared': 'VIP, relay shared socket', 'vip-js': 'VIP, JS proxy', 'vip-ref': 'VIP, reference addon', haproxy: 'HAProxy', haproxy2: 'HAProxy nbthread 2' };
const shown = TARGETS;
const proxies = shown.filter((t) => t !== 'direct');
const ref = shown.includes('haproxy2') ? 'haproxy2' : 'haproxy';
const vsRef = proxies.filter((t) => t !== ref && shown.includes(ref));
const tcpCases = CASES.filter((k) => !UDP_CASES.includes(k));
if (tcpCases.length) {
  console.log(`| case | ${shown.map((t) => NAMES[t]).join(' | ')} | ${vsRef.map((t) => `${t} / ${ref}`).join(' | ')} | proxy CPU per unit: ${proxies.join(' / ')} |`);
  console.log(`|---|${shown.map(() => '---:').join('|')}|${vsRef.map(() => '---:').join('|')}|---:|`);
}
const fmt = (kind, xs) => (xs ? `${median(xs).toFixed(kind === 'bulk' ? 2 : 0)} (${Math.min(...xs).toFixed(kind === 'bulk' ? 1 : 0)}–${Math.max(...xs).toFixed(kind === 'bulk' ? 1 : 0)})` : '-');
const CASE_NAMES = { bulk: 'bulk TCP, Gbit/s', connect: 'new connections, req/s', keep: 'keep-alive, req/s' };
const chartRows = [];
for (const kind of tcpCases) {
  const r = results[kind];
  chartRows.push({ case: CASE_NAMES[kind] ?? kind, values: ['direct', 'vip', 'vip-js', 'haproxy'].map((t) => (r[t] ? median(r[t]) : NaN)) });
  const c = cpu[kind];
  const ratio = (t) => (r[t] && r[ref] ? `${(median(r[t]) / median(r[ref])).toFixed(2)}×` : '-');
  const per = (t) => (c[t] ? (median(c[t].map((x, i) => x / r[t][i])) * (kind === 'bulk' ? 1e3 : 1e6)).toFixed(1) : '-');
  const perText = `${proxies.map(per).join(' / ')} ${kind === 'bulk' ? 'ms per Gbit' : 'µs per request'}`;
  const name = kind === 'bulk' ? 'bulk TCP (iperf3, 1 stream), Gbit/s' : kind === 'connect' ? `new connections (wrk -t${WRK_THREADS}, Connection: close), req/s` : `keep-alive requests (wrk -t${WRK_THREADS}), req/s`;
  console.log(`| ${name} | ${shown.map((t) => fmt(kind, r[t])).join(' | ')} | ${vsRef.map(ratio).join(' | ')} | ${perText} |`);
}
// UDP: against direct (the limit) and between the two VIPs; CPU per query or per Gbit.
const udpCases = CASES.filter((k) => UDP_CASES.includes(k));
if (udpCases.length) {
  // Every target that has UDP (HAProxy has none), each proxy against direct, native against JS
  // and against the reference addon.
  const udpShown = shown.filter((t) => targets[t].udp);
  const udpProxies = udpShown.filter((t) => t !== 'direct');
  const vsDirect = udpShown.includes('direct') ? udpProxies : [];
  const pairs = [...vsDirect.map((t) => [t, 'direct']), ...['vip-js', 'vip-ref'].filter((t) => udpShown.includes('vip') && udpShown.includes(t)).map((t) => ['vip', t])];
  console.log(`\n| UDP case | ${udpShown.map((t) => NAMES[t]).join(' | ')} | ${pairs.map(([a, b]) => `${a} / ${b}`).join(' | ')} | proxy CPU: ${udpProxies.join(' / ')} | proxy CPU per unit: ${udpProxies.join(' / ')} |`);
  console.log(`|---|${udpShown.map(() => '---:').join('|')}|${pairs.map(() => '---:').join('|')}|---:|---:|`);
  for (const kind of udpCases) {
    const r = results[kind];
    const c = cpu[kind];
    const d = (x) => (bits(kind) ? x.toFixed(2) : x.toFixed(0));
    const fmtU = (xs) => (xs ? `${d(median(xs))} (${d(Math.min(...xs))}–${d(Math.max(...xs))})` : '-');
    const ratio = (a, b) => (r[a] && r[b] ? `${(median(r[a]) / median(r[b])).toFixed(2)}×` : '-');
    const per = (t) => (c[t] ? (median(c[t].map((x, i) => x / r[t][i])) * (bits(kind) ? 1e3 : 1e6)).toFixed(1) : '-');
    const name = kind === 'udp-rate' ? 'request/response (dnsperf -c 4 -T 2 -q 200, knot), q/s' : 'bulk UDP (iperf3 -u -b 0 -l 1400, received), Gbit/s';
    const cpuText = udpProxies.map((t) => (c[t] ? `${(median(c[t]) * 100).toFixed(0)}%` : '-')).join(' / ');
    console.log(`| ${name} | ${udpShown.map((t) => fmtU(r[t])).join(' | ')} | ${pairs.map(([a, b]) => ratio(a, b)).join(' | ')} | ${cpuText} | ${udpProxies.map(per).join(' / ')} ${bits(kind) ? 'ms per Gbit' : 'µs per query'} |`);
  }
}
const sent = probes.reduce((a, p) => a + p.sent, 0);
const answered = probes.reduce((a, p) => a + p.answered, 0);
console.log(`\nDNS probe during the VIP runs (a query every 50 ms): ${answered} of ${sent} answered.`);
if (chartRows.length && ['direct', 'vip', 'vip-js', 'haproxy'].every((t) => shown.includes(t))) console.log(`Chart: bench/plots/${path.basename(writePlot('lb', lbPlot(`Load balancer vs HAProxy, same backend (${new Date().toISOString().slice(0, 10)})`, chartRows)))}`);
// The servers' pipes would keep the event loop alive: stop them and leave.
await shutdown(0);
