#!/usr/bin/env node
// Propagation and failure detection between simulated hosts (SPEC §15): 3 network namespaces on
// a bridge, each running the daemon (root, encrypted gossip, DNS on the host's address).
//  - propagation: an endpoint registered through host 1's API → answered by host 3's DNS
//    (bench/dns-watch.mjs polls host 3 every 2 ms), --runs times, p50/p99;
//  - host killed: SIGKILL of host 1's daemon → its endpoint gone from the answers of hosts 2 and 3
//    (the later of the two), --kills times; host 1 is restarted (same state dir) between runs.
//
//   npm run build && sudo node bench/gossip-hosts.mjs [--runs 20] [--kills 10]
import { argv } from 'zx';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';

const ROOT = resolve(import.meta.dirname, '..');
const RUNS = Number(argv.runs ?? 20);
const KILLS = Number(argv.kills ?? 10);
const id = randomBytes(2).toString('hex');
const P = `g4b${id}`;
const subnet = `10.245.${parseInt(id, 16) % 250}`;
const dir = mkdtempSync(join(tmpdir(), `${P}-`));
const procs = new Set();
const ip = (...a) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });
const hosts = [1, 2, 3].map((i) => ({ i, ns: `${P}-${i}`, veth: `${P}v${i}`, address: `${subnet}.${10 + i}` }));

function cleanup() {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  for (const h of hosts) {
    try { ip('netns', 'del', h.ns); } catch { /* gone */ }
    try { ip('link', 'del', h.veth); } catch { /* gone */ }
  }
  try { ip('link', 'del', `${P}br`); } catch { /* gone */ }
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

ip('link', 'add', `${P}br`, 'type', 'bridge');
ip('link', 'set', `${P}br`, 'up');
for (const h of hosts) {
  ip('netns', 'add', h.ns);
  ip('link', 'add', h.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns);
  ip('link', 'set', h.veth, 'master', `${P}br`, 'up');
  ip('-n', h.ns, 'link', 'set', 'lo', 'up');
  ip('-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0');
  ip('-n', h.ns, 'link', 'set', 'eth0', 'up');
}
const run = (h, args, opts = {}) => {
  const p = spawn('nsenter', [`--net=/run/netns/${h.ns}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'], cwd: ROOT, ...opts });
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
    ...(h.i === 1 ? [] : ['--join', `${hosts[0].address}:7946`])]);
  h.daemon.stdout.resume();
  h.daemon.stderr.resume();
}

const api = (h, method, path, body) => new Promise((res, rej) => {
  const data = body === undefined ? undefined : JSON.stringify(body);
  const req = request({ socketPath: h.socket, path, method, headers: data ? { 'content-type': 'application/json' } : {} }, (r) => {
    let t = '';
    r.on('data', (c) => (t += c));
    r.on('end', () => res({ status: r.statusCode, body: t ? JSON.parse(t) : null }));
  });
  req.on('error', rej);
  req.end(data);
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(check, ms = 60_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error('timed out');
}

function watcher(h) {
  const p = run(h, [process.execPath, join(ROOT, 'bench/dns-watch.mjs'), h.address]);
  const waits = new Map();
  createInterface({ input: p.stdout }).on('line', (l) => {
    const [name, at] = l.split(' ');
    waits.get(name)?.(Number(at));
    waits.delete(name);
  });
  return (name, mode) => new Promise((res) => {
    waits.set(name, res);
    p.stdin.write(`${name} ${mode}\n`);
  });
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

for (const h of hosts) startDaemon(h);
await until(async () => (await Promise.all(hosts.map((h) => api(h, 'GET', '/api/v1/nodes')))).every((r) => r.body.filter((n) => n.state === 'alive').length === 3));
const [h1, h2, h3] = hosts;
const w2 = watcher(h2);
const w3 = watcher(h3);
await sleep(500);

// Propagation
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

// Host killed (SIGKILL), then restarted from its state directory for the next run.
const kills = [];
for (let k = 0; k < KILLS; k++) {
  const name = 'svc0.default.cluster.local';
  await until(async () => (await api(h2, 'GET', '/api/v1/nodes')).body.filter((n) => n.state === 'alive').length === 3 && (await api(h3, 'GET', '/api/v1/services/default/svc0')).status === 200);
  await sleep(1000 + Math.random() * 1000);
  const gone = Promise.all([w2(name, 'down'), w3(name, 'down')]);
  await sleep(20);
  const t0 = Date.now();
  h1.daemon.kill('SIGKILL');
  const [a, b] = await gone;
  kills.push(Math.max(a, b) - t0);
  startDaemon(h1);
}

console.log(`| measurement | runs | p50 | p99 | max | target (SPEC §15) |`);
console.log(`|---|---:|---:|---:|---:|---|`);
console.log(`| registration on host 1 → answer on host 3 (ms) | ${prop.length} | ${pct(prop, 50)} | ${pct(prop, 99)} | ${Math.max(...prop)} | p50 < 500, p99 < 1000 |`);
console.log(`| host 1 killed → endpoint gone on hosts 2 and 3 (ms) | ${kills.length} | ${pct(kills, 50)} | ${pct(kills, 99)} | ${Math.max(...kills)} | < 6000 |`);
console.error(`propagation: ${prop.join(' ')}\nkill: ${kills.join(' ')}`);
process.exit(0);
