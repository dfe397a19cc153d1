#!/usr/bin/env node
// Memory and start time at 10,000 services × 5 endpoints (issue 16 item 4), no query load:
// the daemon starts with every service already known, from one of three places
//  - config: the config file's `services:` list (this node's own endpoints);
//  - api: the state directory's api-endpoints.json (API registrations of the previous run, this
//    node's own);
//  - snapshot: the state directory's `state` file (the persisted registry: the endpoints spread
//    over --nodes other hosts, gossip on, no member reachable: served from the file as stale);
// on the native DNS path and on the JS path (PODMAN_SWARM_DNS_NATIVE=0). RSS is read from
// /proc/<pid>/status every --sample-ms from spawn until READY and for --settle seconds after;
// reported: start → READY (spawn → the "ready" log line) and the daemon's CPU time (utime+stime)
// until then, which a loaded machine changes less, start → native table installed, peak
// RSS (VmHWM, the kernel's high-water mark, and the highest sample), settled RSS (the mean of
// the last second of the window, which on the native path starts once the table is in; no
// forced GC), and the V8 heap used, heap total and external
// memory at the end of the window (the daemon's own nodejs_* metrics), with the daemon's CPU
// time by then (the whole table's build included). A DNS query for the last
// service is asked right after READY: it must be answered (the services are served at once),
// with how long that took. Path `native-file`: the native path started after an earlier run with
// the same services left its answer table in $RUNTIME_DIRECTORY (src/native/table-file.ts).
//
//   npm run build && node bench/memory.mjs [--services 10000] [--endpoints 5] [--sources config,api,snapshot] [--paths native,native-file,js] [--nodes 100] [--settle 20] [--sample-ms 20] [--rounds 1] [--node-args="..."] [--env="K=V ..."] [--cli dist/cli.js] [--node PATH] [--heap-snapshot DIR] [--smaps]
// (--node-args=: extra node flags for the daemon, with "=", e.g. --node-args="--max-semi-space-size=1"; --env=: the daemon's extra environment, e.g. the units' --env="MALLOC_ARENA_MAX=1"; --cli: another build; --node: the daemon's Node.js binary, e.g. Debian 12's 18 (default: this one); --heap-snapshot: a heap snapshot of each daemon at the end of its window, as DIR/<source>-<path>.heapsnapshot; --smaps: where the settled RSS is, by kind of mapping, on stderr)
import './help.mjs';
import { argv } from 'zx';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as packet from 'dns-packet';
import { api, cpuMs, envArg, freePort, metricOf, sleep, statusKb, stopProcess } from './daemon.mjs';
import { apiFile, configFile, snapshotFile } from './services-data.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const SERVICES = Number(argv.services ?? 10000);
const ENDPOINTS = Number(argv.endpoints ?? 5);
const SOURCES = String(argv.sources ?? 'config,api,snapshot').split(',').filter(Boolean);
const PATHS = String(argv.paths ?? 'native,native-file,js').split(',').filter(Boolean);
const NODES = Number(argv.nodes ?? 100);
const SETTLE_S = Number(argv.settle ?? 20);
const SAMPLE_MS = Number(argv['sample-ms'] ?? 20);
const ROUNDS = Number(argv.rounds ?? 1);
const NODE_ARGS = String(argv['node-args'] ?? '').split(' ').filter(Boolean);
const EXTRA_ENV = envArg(argv.env);
const CLI = resolve(String(argv.cli ?? join(ROOT, 'dist', 'cli.js')));
const NODE = String(argv.node ?? process.execPath);
const SMAPS = Boolean(argv.smaps);
const HEAP_DIR = argv['heap-snapshot'] ? resolve(String(argv['heap-snapshot'])) : null;
const dir = mkdtempSync(join(tmpdir(), 'psdns-memory-'));
const procs = new Set();
process.on('exit', () => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

const files = {};
function prepare(source) {
  if (files[source]) return files[source];
  const t0 = performance.now();
  const shape = { services: SERVICES, endpoints: ENDPOINTS, nodes: NODES };
  const text = source === 'config' ? configFile(shape) : source === 'api' ? apiFile(shape) : snapshotFile(shape);
  const path = join(dir, `${source}.data`);
  writeFileSync(path, text);
  console.error(`${source}: ${(text.length / 1e6).toFixed(1)} MB generated in ${Math.round(performance.now() - t0)} ms`);
  return (files[source] = path);
}

function queryA(port, name, timeoutMs = 1000) {
  return new Promise((res) => {
    const sock = createSocket('udp4');
    const timer = setTimeout(() => (sock.close(), res(null)), timeoutMs);
    sock.on('message', (msg) => {
      clearTimeout(timer);
      sock.close();
      try {
        res((packet.decode(msg).answers ?? []).filter((a) => a.type === 'A').map((a) => a.data));
      } catch {
        res(null);
      }
    });
    sock.send(packet.encode({ id: 7, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name, type: 'A' }] }), port, '127.0.0.1');
  });
}

async function run(source, path) {
  const stateDir = join(dir, `state-${source}-${path}`);
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  const [dnsPort, apiPort, gossipPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const cfg = join(dir, 'empty.yaml');
  writeFileSync(cfg, '');
  const data = prepare(source);
  if (source === 'api') writeFileSync(join(stateDir, 'api-endpoints.json'), readFileSync(data));
  if (source === 'snapshot') writeFileSync(join(stateDir, 'state'), readFileSync(data));
  const args = [...NODE_ARGS, ...(HEAP_DIR ? [`--heapsnapshot-signal=SIGUSR2`, `--diagnostic-dir=${HEAP_DIR}`] : []), CLI, 'daemon', '--config', source === 'config' ? data : cfg, '--link', 'none', '--state-dir', stateDir,
    '--dns-listen', `127.0.0.1:${dnsPort}`, '--api-listen', `127.0.0.1:${apiPort}`, '--upstream-dns', '127.0.0.1:9',
    '--podman-socket', 'none', '--max-endpoints-per-node', '100000', '--log-level', 'info', '--start-grace', '0',
    ...(source === 'snapshot' ? ['--gossip-listen', `127.0.0.1:${gossipPort}`, '--advertise-address', '127.0.0.1'] : [])];
  const env = { ...process.env, ...EXTRA_ENV, ...(path === 'js' ? { PODMAN_SWARM_DNS_NATIVE: '0' } : {}) };
  if (path === 'native-file') {
    // A start after an earlier run with the same services: that run leaves its answer table in
    // $RUNTIME_DIRECTORY (as under systemd) and is stopped once the file is there.
    env.RUNTIME_DIRECTORY = join(stateDir, 'run');
    mkdirSync(env.RUNTIME_DIRECTORY);
    const table = join(env.RUNTIME_DIRECTORY, 'answers.table');
    const first = spawn(NODE, args, { stdio: 'ignore', env });
    procs.add(first);
    const limit = Date.now() + 300_000;
    // (With what it was compiled from at its end: a table the registry changed under has none.)
    const complete = () => existsSync(table) && readFileSync(table).subarray(-58, -56).toString() === 'f:';
    while (!complete()) {
      if (first.exitCode !== null || Date.now() > limit) throw new Error('the earlier run wrote no answer table');
      await sleep(100);
    }
    await stopProcess(first);
    procs.delete(first);
  }
  const t0 = performance.now();
  const proc = spawn(NODE, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  procs.add(proc);
  let readyAt = null;
  let readyCpu = null;
  let out = '';
  let err = '';
  // Only the last few KB are kept and searched: the daemon must never wait for this pipe.
  const onLine = (chunk) => {
    out = (out + chunk).slice(-8192);
    if (readyAt === null && /"msg":"ready: /.test(out)) {
      readyAt = performance.now() - t0;
      readyCpu = cpuMs(proc.pid);
    }
  };
  proc.stdout.on('data', onLine);
  proc.stderr.on('data', (c) => (err += c));
  const samples = [];
  const sample = () => {
    try {
      samples.push([performance.now() - t0, statusKb(proc.pid, 'VmRSS') / 1024]);
    } catch {
      /* not started yet, or gone */
    }
  };
  const sampler = setInterval(sample, SAMPLE_MS);
  try {
    const limit = Date.now() + 120_000;
    while (readyAt === null) {
      if (proc.exitCode !== null) throw new Error(`daemon exited (${proc.exitCode}): ${err}${out.slice(-2000)}`);
      if (Date.now() > limit) throw new Error(`not ready in 120 s: ${err}`);
      await sleep(5);
    }
    const lastName = `s${SERVICES - 1}.default.cluster.local`;
    const q0 = performance.now();
    const answer = await queryA(dnsPort, lastName, 5000);
    const served = answer?.length === ENDPOINTS ? `yes, ${Math.round(performance.now() - q0)} ms` : 'NO';
    // Native path: the settle window starts once the first whole table is installed (one build).
    let tableAt = null;
    const tableLimit = performance.now() + 180_000;
    while (path !== 'js' && tableAt === null && performance.now() < tableLimit) {
      const m = await api(apiPort, 'GET', '/metrics').catch(() => null);
      if (m && metricOf(m.text, 'podman_swarm_dns_native_table_builds_total') >= 1) tableAt = performance.now() - t0;
      else await sleep(100);
    }
    await sleep(SETTLE_S * 1000);
    const endCpu = cpuMs(proc.pid);
    const hwm = statusKb(proc.pid, 'VmHWM') / 1024;
    const metrics = (await api(apiPort, 'GET', '/metrics')).text;
    const last = samples.filter(([t]) => t >= samples[samples.length - 1][0] - 1000).map(([, r]) => r);
    const settled = last.reduce((a, b) => a + b, 0) / last.length;
    const peakSample = Math.max(...samples.map(([, r]) => r));
    const mb = (name) => metricOf(metrics, `podman_swarm_dns_${name}`) / 1048576;
    if (SMAPS) console.error(`${source}/${path}: ${smaps(proc.pid)}; V8 spaces used / size: ${heapSpaces(metrics)}`);
    // After the figures: writing the snapshot grows the process.
    if (HEAP_DIR) await heapSnapshot(proc, `${source}-${path}`);
    return {
      source, path, readyMs: readyAt, readyCpu, endCpu, tableMs: tableAt, served, hwm, peakSample, settled,
      heapUsed: mb('nodejs_heap_size_used_bytes'), heapTotal: mb('nodejs_heap_size_total_bytes'), external: mb('nodejs_external_memory_bytes'),
      services: metricOf(metrics, 'podman_swarm_dns_registry_services'),
    };
  } finally {
    clearInterval(sampler);
    await stopProcess(proc);
    procs.delete(proc);
  }
}

/**
 * Where the RSS is, from /proc/<pid>/smaps: the V8 heap (its mappings are named by nothing and
 * other threads' malloc arenas are the anonymous mappings 64 MB-aligned), malloc's
 * main heap ([heap]), the 64 MB arenas of other threads, file-backed pages (code), stacks.
 */
function smaps(pid) {
  const sums = new Map();
  let kind = null;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      // Other threads' malloc arenas start 64 MB-aligned (glibc's HEAP_MAX_SIZE).
      const arena = BigInt(`0x${head[1]}`) % (64n << 20n) === 0n;
      const name = head[4];
      kind = name === '[heap]' ? 'malloc main' : name.startsWith('[stack') ? 'stack' : name.startsWith('/') ? 'files' : name ? name : arena ? 'malloc arenas' : 'other anonymous (V8 heap, large mallocs)';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && kind) sums.set(kind, (sums.get(kind) ?? 0) + Number(rss[1]) / 1024);
  }
  return [...sums].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ') + ' MB';
}

/** Writes a heap snapshot of the daemon (SIGUSR2, --heapsnapshot-signal) as HEAP_DIR/<name>.heapsnapshot. */
async function heapSnapshot(proc, name) {
  mkdirSync(HEAP_DIR, { recursive: true });
  const before = new Set(readdirSync(HEAP_DIR));
  proc.kill('SIGUSR2');
  const limit = Date.now() + 120_000;
  for (;;) {
    const file = readdirSync(HEAP_DIR).find((f) => !before.has(f) && f.endsWith('.heapsnapshot'));
    // Node writes the file in place: it is whole once its size stops changing.
    if (file) {
      const size = statSync(join(HEAP_DIR, file)).size;
      await sleep(1000);
      if (size > 0 && statSync(join(HEAP_DIR, file)).size === size) return renameSync(join(HEAP_DIR, file), join(HEAP_DIR, `${name}.heapsnapshot`));
    }
    if (Date.now() > limit) throw new Error('no heap snapshot in 120 s');
    await sleep(200);
  }
}

const f0 = (x) => (x === null || Number.isNaN(x) ? '–' : String(Math.round(x)));
console.log(`${SERVICES} services × ${ENDPOINTS} endpoints, no query load; RSS sampled every ${SAMPLE_MS} ms, settled = mean of the last second of ${SETTLE_S} s after READY (native: after the table is in; no forced GC); ${NODE_ARGS.length ? `node ${NODE_ARGS.join(' ')}; ` : ''}${Object.keys(EXTRA_ENV).length ? `env ${argv.env}; ` : ''}load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
console.log('| source | path | start → READY (ms) | CPU until READY (ms) | → native table (ms) | answered at READY | peak RSS, VmHWM (MB) | peak sample (MB) | settled RSS (MB) | heap used (MB) | heap total (MB) | external (MB) | CPU at the end (ms) |');
console.log('|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|');
for (let r = 0; r < ROUNDS; r++) {
  for (const source of SOURCES) {
    for (const path of PATHS) {
      const x = await run(source, path);
      if (x.services !== SERVICES) console.error(`${source}/${path}: the daemon had ${x.services} services, not ${SERVICES}`);
      console.log(`| ${source} | ${path} | ${f0(x.readyMs)} | ${f0(x.readyCpu)} | ${f0(x.tableMs)} | ${x.served} | ${f0(x.hwm)} | ${f0(x.peakSample)} | ${f0(x.settled)} | ${f0(x.heapUsed)} | ${f0(x.heapTotal)} | ${f0(x.external)} | ${f0(x.endCpu)} |`);
    }
  }
}
console.log(`\nload average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

/** The V8 heap by space, "used / size" in MB, from the daemon's nodejs_heap_space_* metrics. */
function heapSpaces(metrics) {
  const of = (kind) => new Map([...metrics.matchAll(new RegExp(`^podman_swarm_dns_nodejs_heap_space_size_${kind}_bytes\\{space="(\\w+)"\\} (\\S+)`, 'gm'))].map((m) => [m[1], Number(m[2]) / 1048576]));
  const used = of('used');
  return [...of('total')].filter(([, t]) => t >= 0.05).map(([space, t]) => `${space} ${(used.get(space) ?? 0).toFixed(1)} / ${t.toFixed(1)}`).join(', ');
}
