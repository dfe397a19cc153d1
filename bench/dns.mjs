#!/usr/bin/env node
// DNS benchmark: dnsperf (saturating, 1000 in-zone names, loopback) against the daemon and, in the
// same run and interleaved, against reference servers answering the same names. Prints medians,
// ratios and answers per server CPU-second.
//
//   node bench/dns.mjs [--rounds 3] [--seconds 10] [--servers js,dnsmasq] [--clients 4] [--outstanding 200]
//
// Needs: dnsperf, dnsmasq (dnsmasq-base) from Debian; `npm run build` first. Run as root to raise
// net.core.rmem_max (the servers then get a large UDP receive buffer, as SPEC §15 asks).
import { $, argv, fs, path, os, sleep } from 'zx';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';

$.verbose = false;
const ROOT = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
const ROUNDS = Number(argv.rounds ?? 3);
const SECONDS = Number(argv.seconds ?? 10);
const CLIENTS = Number(argv.clients ?? 4);
const OUTSTANDING = Number(argv.outstanding ?? 200);
const NAMES = 1000;
const SERVERS = String(argv.servers ?? 'js,dnsmasq').split(',');

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'psdns-bench-'));
const children = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
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

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

if (process.getuid?.() === 0) {
  const cur = Number((await fs.readFile('/proc/sys/net/core/rmem_max', 'utf8')).trim());
  if (cur < 8 << 20) {
    await fs.writeFile('/proc/sys/net/core/rmem_max', String(8 << 20));
    process.on('exit', () => fs.writeFileSync('/proc/sys/net/core/rmem_max', String(cur)));
  }
}

function start(cmd, args, env = {}) {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '', ...env } });
  let out = '';
  p.stdout.on('data', (c) => (out += c));
  p.stderr.on('data', (c) => (out += c));
  children.push(p);
  return { p, out: () => out };
}

async function waitAnswer(port) {
  for (let i = 0; i < 200; i++) {
    const r = await $`dig +short +time=1 +tries=1 @127.0.0.1 -p ${port} ${names[1]}`.nothrow();
    if (r.stdout.trim() === ip(1)) return;
    await sleep(50);
  }
  throw new Error(`server on port ${port} does not answer`);
}

/** Servers under test: each starts, answers the same names, and reports its pid for CPU time. */
const SERVER_KINDS = {
  js: async (port) => {
    const apiPort = await freePort();
    return start(process.execPath, [
      path.join(ROOT, 'dist', 'cli.js'), 'daemon', '--config', path.join(work, 'config.yaml'), '--link', 'none',
      '--dns-listen', `127.0.0.1:${port}`, '--api-listen', `127.0.0.1:${apiPort}`, '--state-dir', path.join(work, `state-${port}`),
      '--upstream-dns', '127.0.0.1:9',
    ], { PODMAN_SWARM_DNS_NATIVE: '0' });
  },
  dnsmasq: async (port) =>
    start('dnsmasq', [
      '--keep-in-foreground', '--conf-file=/dev/null', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces',
      '--no-resolv', '--no-hosts', `--addn-hosts=${path.join(work, 'hosts')}`, '--local=/cluster.local/', '--cache-size=10000',
      '--user=root', `--pid-file=${path.join(work, `dnsmasq-${port}.pid`)}`,
    ]),
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

async function run(kind) {
  const port = await freePort();
  const server = await SERVER_KINDS[kind](port);
  await waitAnswer(port);
  // Warm up (JIT, caches), then measure.
  await $`dnsperf -s 127.0.0.1 -p ${port} -d ${path.join(work, 'queries')} -l 2 -c ${CLIENTS} -q ${OUTSTANDING}`.nothrow();
  const cpu0 = cpuSeconds(server.p.pid);
  const r = await $`dnsperf -s 127.0.0.1 -p ${port} -d ${path.join(work, 'queries')} -l ${SECONDS} -c ${CLIENTS} -q ${OUTSTANDING}`.nothrow();
  const cpu = cpuSeconds(server.p.pid) - cpu0;
  server.p.kill('SIGTERM');
  await new Promise((res) => server.p.once('exit', res));
  const out = r.stdout;
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const completed = Number(/Queries completed:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const latency = Number(/Average Latency \(s\):\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  if (!Number.isFinite(qps)) throw new Error(`dnsperf failed against ${kind}:\n${out}\n${r.stderr}\n${server.out()}`);
  return { kind, qps, completed, lost, latencyMs: latency * 1000, perCpuSecond: cpu > 0 ? completed / cpu : NaN };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

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
console.log(`\nDNS, ${NAMES} in-zone A names, dnsperf -c ${CLIENTS} -q ${OUTSTANDING} -l ${SECONDS}, ${ROUNDS} interleaved rounds, medians`);
console.log(`${os.cpus().length} cores (${cpuModel}), node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`);
console.log(`| server | QPS | answers per server CPU-second | avg latency (ms) | lost | QPS vs ${base} |`);
console.log('|---|---:|---:|---:|---:|---:|');
for (const k of SERVERS) {
  console.log(`| ${k} | ${med(k, 'qps').toFixed(0)} | ${med(k, 'perCpuSecond').toFixed(0)} | ${med(k, 'latencyMs').toFixed(3)} | ${med(k, 'lost')} | ${(med(k, 'qps') / med(base, 'qps')).toFixed(2)}× |`);
}
