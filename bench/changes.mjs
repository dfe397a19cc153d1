#!/usr/bin/env node
// The cost of one change on the real daemon, as the registry grows (issue 16 item 6):
//  - one daemon with N services in its config file (one endpoint each), then --changes
//    single-endpoint changes through the API (an endpoint registered in a different service each
//    time): the daemon's CPU time per change (utime+stime from /proc/<pid>/stat over all the
//    changes, minus the same daemon's CPU over an equally long idle window), and change → answer
//    latency (POST sent → the new address answered over UDP, polled every ms);
//  - three daemons on loopback joined by gossip, the N services on the first (the owner): bytes
//    sent per change by the owner and by each of the others (podman_swarm_dns_gossip_bytes_sent_total,
//    minus an idle window of the same length), each change waited for on the third daemon's DNS.
//
//   npm run build && node bench/changes.mjs [--sizes 1000,10000] [--changes 50] [--gossip-sizes 1000,10000] [--pause-ms 300] [--grace-wait-ms 6000] [--cpu-prof DIR]
// (--cpu-prof: the single daemons run with node --cpu-prof and write their profiles into DIR)
import './help.mjs';
import { argv } from 'zx';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as packet from 'dns-packet';
import { api as daemonApi, cpuTicks, freePort, metricOf, sleep, statusKb, stopProcess } from './daemon.mjs';
import { writePlot } from './plot.mjs';
import { changesPlot } from './plots.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const SIZES = String(argv.sizes ?? '1000,10000').split(',').filter(Boolean).map(Number);
const GOSSIP_SIZES = String(argv['gossip-sizes'] ?? '1000,10000').split(',').filter(Boolean).map(Number);
const CHANGES = Number(argv.changes ?? 50);
const PAUSE_MS = Number(argv['pause-ms'] ?? 300);
/** How long after READY the changes start at the earliest (0: while the start grace may still end). */
const GRACE_WAIT_MS = Number(argv['grace-wait-ms'] ?? 6000);
const PROFILE = argv['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', resolve(String(argv['cpu-prof']))] : [];
const TICK_MS = 1000 / 100; // USER_HZ
const dir = mkdtempSync(join(tmpdir(), 'psdns-changes-'));
const procs = new Set();
process.on('exit', () => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

function config(n) {
  const lines = ['services:'];
  for (let i = 0; i < n; i++) lines.push(`  - name: s${i}`, '    endpoints:', `      - {address: 10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}, hostname: h${i}}`);
  return `${lines.join('\n')}\n`;
}

async function startDaemon(name, { services = 0, join: seeds = [], node = [] } = {}) {
  const d = join(dir, name);
  const [dnsPort, apiPort, gossipPort] = await Promise.all([freePort(), freePort(), freePort()]);
  rmSync(d, { recursive: true, force: true });
  const cfg = join(dir, `${name}.yaml`);
  writeFileSync(cfg, config(services));
  const args = [join(ROOT, 'dist', 'cli.js'), 'daemon', '--config', cfg, '--link', 'none', '--state-dir', d,
    '--dns-listen', `127.0.0.1:${dnsPort}`, '--api-listen', `127.0.0.1:${apiPort}`, '--upstream-dns', '127.0.0.1:9',
    '--podman-socket', 'none', '--max-endpoints-per-node', '100000', '--gossip-listen', `127.0.0.1:${gossipPort}`, '--advertise-address', '127.0.0.1', '--log-level', 'warn',
    ...seeds.flatMap((s) => ['--join', s])];
  const proc = spawn(process.execPath, [...node, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (c) => (err += c));
  procs.add(proc);
  const daemon = { name, proc, dnsPort, apiPort, gossip: `127.0.0.1:${gossipPort}`, pid: proc.pid, err: () => err, stateDir: d };
  const end = Date.now() + 120_000;
  while (Date.now() < end) {
    if (proc.exitCode !== null) throw new Error(`${name} exited: ${err}`);
    const r = await api(daemon, 'GET', '/readyz').catch(() => null);
    if (r?.status === 200) {
      daemon.readyAt = Date.now();
      // API writes over TCP need the daemon's token (by default <state-dir>/api-token).
      daemon.token = readFileSync(join(d, 'api-token'), 'utf8').trim();
      return daemon;
    }
    await sleep(50);
  }
  throw new Error(`${name} not ready: ${err}`);
}

async function stopDaemon(d) {
  await stopProcess(d.proc, 5000);
  procs.delete(d.proc);
}

const api = (d, method, path, body) => daemonApi(d.apiPort, method, path, { body, token: d.token });
const metric = async (d, name) => metricOf((await api(d, 'GET', '/metrics')).text, name);

/** Waits until the daemon burns no CPU for `quietMs` (start work and first table done). */
async function settle(d, quietMs = 1000, maxMs = 120_000) {
  const end = Date.now() + maxMs;
  let last = cpuTicks(d.pid);
  while (Date.now() < end) {
    await sleep(quietMs);
    const now = cpuTicks(d.pid);
    if (now - last <= 1) return;
    last = now;
  }
}

const sock = createSocket('udp4');
sock.bind(0, '127.0.0.1');
let qid = 1;
const waiting = new Map();
sock.on('message', (msg) => {
  const id = msg.readUInt16BE(0);
  const w = waiting.get(id);
  if (w) w(msg);
});

function queryA(port, name, timeoutMs = 200) {
  const id = qid = (qid + 1) & 0xffff;
  return new Promise((res) => {
    const timer = setTimeout(() => (waiting.delete(id), res([])), timeoutMs);
    waiting.set(id, (msg) => {
      clearTimeout(timer);
      waiting.delete(id);
      try {
        res((packet.decode(msg).answers ?? []).filter((a) => a.type === 'A').map((a) => a.data));
      } catch {
        res([]);
      }
    });
    sock.send(packet.encode({ id, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name, type: 'A' }] }), port, '127.0.0.1');
  });
}

/** Queries until `address` is answered: the number of queries it took, or 0 when it never was. */
async function answered(port, name, address, maxMs = 30_000) {
  const end = Date.now() + maxMs;
  for (let n = 1; Date.now() < end; n++) {
    if ((await queryA(port, name)).includes(address)) return n;
    await sleep(1);
  }
  return 0;
}

/**
 * One change: an endpoint registered in service `s<k>`. Resolves with ms until `watch` answers
 * it, and where they went: POST sent → 201 received (`response`), split by the daemon's
 * Server-Timing header (read, wait, save, apply; `http` = the rest: connection, headers, the
 * answer's way back), then 201 → answered (`poll`).
 */
async function change(owner, watch, n, i) {
  const k = (i * 7919) % n;
  const address = `10.200.${i >> 8}.${i & 255}`;
  const t0 = performance.now();
  const r = await api(owner, 'POST', `/api/v1/services/default/s${k}/endpoints`, { id: `bench${i}`, address });
  const t1 = performance.now();
  if (r.status !== 201) throw new Error(`register: ${r.status} ${r.text}`);
  const queries = await answered(watch.dnsPort, `s${k}.default.cluster.local`, address);
  if (!queries) throw new Error(`change ${i} never answered by ${watch.name}`);
  const t2 = performance.now();
  const phases = Object.fromEntries(String(r.timing ?? '').split(',').map((p) => /^\s*(\w+);dur=([\d.]+)/.exec(p)).filter(Boolean).map((m) => [m[1], Number(m[2])]));
  const inDaemon = Object.values(phases).reduce((a, b) => a + b, 0);
  return { total: t2 - t0, phases: { ...phases, http: t1 - t0 - inDaemon, poll: t2 - t1 }, queries };
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const f1 = (x) => (Math.round(x * 10) / 10).toFixed(1);

async function single(n) {
  const d = await startDaemon(`single-${n}`, { services: n, node: PROFILE });
  try {
    // The start grace (--start-grace, 5 s by default without peers) ends with a whole table,
    // ~1 s of slices at 10,000 services; a change meanwhile waits for it. Measured after it.
    await sleep(Math.max(0, d.readyAt + GRACE_WAIT_MS - Date.now()));
    await settle(d);
    const rss = statusKb(d.pid, 'VmRSS') / 1024;
    const latencies = [];
    const phases = {};
    let slowest = null;
    const tables = () => Promise.all(['builds', 'sliced_turns'].map((m) => metric(d, `podman_swarm_dns_native_table_${m}_total`)));
    const tables0 = await tables();
    const c0 = cpuTicks(d.pid);
    const t0 = performance.now();
    for (let i = 0; i < CHANGES; i++) {
      const c = await change(d, d, n, i);
      if (c.total > Math.max(0, ...latencies)) slowest = c;
      latencies.push(c.total);
      for (const [k, v] of Object.entries(c.phases)) (phases[k] ??= []).push(v);
      await sleep(PAUSE_MS);
    }
    const busyMs = performance.now() - t0;
    const c1 = cpuTicks(d.pid);
    const tables1 = await tables();
    await settle(d, 500);
    const i0 = cpuTicks(d.pid);
    await sleep(busyMs);
    const idle = cpuTicks(d.pid) - i0;
    return { n, cpu: ((c1 - c0 - idle) * TICK_MS) / CHANGES, idleMs: idle * TICK_MS, p50: pct(latencies, 50), p90: pct(latencies, 90), max: Math.max(...latencies), rss, phases, slowest, tables: tables1.map((x, j) => x - tables0[j]) };
  } finally {
    await stopDaemon(d);
  }
}

async function gossip(n) {
  const owner = await startDaemon(`owner-${n}`, { services: n });
  const others = [];
  try {
    others.push(await startDaemon(`peer1-${n}`, { join: [owner.gossip] }));
    others.push(await startDaemon(`peer2-${n}`, { join: [owner.gossip] }));
    const all = [owner, ...others];
    const end = Date.now() + 180_000;
    for (const d of all) {
      while ((await metric(d, 'podman_swarm_dns_registry_services')) < n || (await metric(d, 'podman_swarm_dns_registry_nodes')) < 3) {
        if (Date.now() > end) throw new Error(`${d.name} never converged`);
        await sleep(200);
      }
    }
    for (const d of all) await settle(d);
    const bytes = () => Promise.all(all.map((d) => metric(d, 'podman_swarm_dns_gossip_bytes_sent_total')));
    const w0 = await Promise.all(others.map((d) => metric(d, 'podman_swarm_dns_gossip_states_merged_total')));
    const b0 = await bytes();
    const t0 = performance.now();
    for (let i = 0; i < CHANGES; i++) {
      await change(owner, others[1], n, i);
      await sleep(PAUSE_MS);
    }
    const busyMs = performance.now() - t0;
    const b1 = await bytes();
    const i0 = await bytes();
    await sleep(busyMs);
    const i1 = await bytes();
    const per = all.map((_, j) => (b1[j] - b0[j] - (i1[j] - i0[j])) / CHANGES);
    // Whole states merged by the two others over the changes and the idle window (none before deltas: NaN).
    const wholes = (await Promise.all(others.map((d) => metric(d, 'podman_swarm_dns_gossip_states_merged_total')))).map((x, j) => x - w0[j]);
    return { n, owner: per[0], others: per.slice(1), idle: all.map((_, j) => ((i1[j] - i0[j]) / busyMs) * 1000), wholes };
  } finally {
    for (const d of [owner, ...others]) await stopDaemon(d);
  }
}

console.log(`changes: ${CHANGES}, pause between changes ${PAUSE_MS} ms, one endpoint per service in the config file\n`);
console.log('| services | daemon CPU per change (ms) | change → answer p50 (ms) | p90 | max | idle CPU over the same window (ms) | RSS settled (MB) |');
console.log('|---:|---:|---:|---:|---:|---:|---:|');
const singles = [];
for (const n of SIZES) {
  const r = await single(n);
  singles.push([n, r]);
  console.log(`| ${n} | ${f1(r.cpu)} | ${f1(r.p50)} | ${f1(r.p90)} | ${f1(r.max)} | ${r.idleMs} | ${Math.round(r.rss)} |`);
}
const names = [...new Set(singles.flatMap(([, r]) => Object.keys(r.phases)))];
console.log(`\nwhere change → answer goes, p50 and p90 of each part (ms): the daemon's Server-Timing (read the body, wait for earlier writes, save to the state directory, apply: registry, table patch, delta), http = the rest of POST → 201, poll = 201 → the new address answered\n`);
console.log(`| services | ${names.join(' | ')} |`);
console.log(`|---:|${names.map(() => '---:').join('|')}|`);
for (const [n, r] of singles) console.log(`| ${n} | ${names.map((k) => (r.phases[k] ? `${f1(pct(r.phases[k], 50))} / ${f1(pct(r.phases[k], 90))}` : '')).join(' | ')} |`);
for (const [n, r] of singles) {
  console.log(`\nslowest change at ${n}: ${f1(r.slowest.total)} ms = ${Object.entries(r.slowest.phases).map(([k, v]) => `${k} ${f1(v)}`).join(', ')}; answered at query ${r.slowest.queries}`);
  console.log(`table updates over the changes at ${n}: ${r.tables[0]} (patches and whole tables), turns a job went on in: ${r.tables[1]}`);
}
const latency = ['p50', 'p90', 'max'].map((k) => ({ name: k, points: singles.map(([n, r]) => [n, r[k]]) }));
console.log(`\nChart: ${writePlot('change-answer', changesPlot(`API change → new address answered in DNS (${new Date().toISOString().slice(0, 10)})`, latency))}`);
if (GOSSIP_SIZES.length) {
  console.log('\nthree daemons on loopback, the services on the owner; gossip bytes sent per change (idle traffic subtracted)\n');
  console.log('| services | owner (bytes/change) | peer 1 | peer 2 | idle bytes/s (owner, peer 1, peer 2) | whole states merged by peers 1, 2 |');
  console.log('|---:|---:|---:|---:|---|---|');
  for (const n of GOSSIP_SIZES) {
    const r = await gossip(n);
    console.log(`| ${n} | ${Math.round(r.owner)} | ${Math.round(r.others[0])} | ${Math.round(r.others[1])} | ${r.idle.map((x) => Math.round(x)).join(', ')} | ${r.wholes.join(', ')} |`);
  }
}
sock.close();
