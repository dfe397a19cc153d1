#!/usr/bin/env node
// A DNS flood must not evict a node: 3 network namespaces on a bridge, each running the daemon
// (root, encrypted gossip, DNS on the host's address), host 1 serving a 360-endpoint service; a
// 4th namespace floods host 1 with dnsperf -Q <rate> for --seconds of queries that the native
// path hands to JS (ANY by default), at each --rates. Meanwhile, every 100 ms, from the 4th
// namespace: a DNS-over-TCP query to host 1 and (through its unix socket) host 1's API; every
// 500 ms every host's member list. Printed per rate: the flood's QPS answered, TCP DNS and API
// latency (p50 / max / answered), members seen suspect or dead anywhere, host 1's event-loop
// delay (max of its nodejs_eventloop_lag_max_seconds between scrapes) and what it shed.
//
//   npm run build && sudo node bench/flood.mjs [--rates 3000,20000] [--seconds 60] [--qtype ANY]
//     [--cli dist/cli.js]   (another build's cli.js: the "before" figures)
import './help.mjs';
import { argv } from 'zx';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pct, sleep, until } from './common.mjs';
import { netnsHosts } from './netns-hosts.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = resolve(argv.cli ?? join(ROOT, 'dist/cli.js'));
const RATES = String(argv.rates ?? '3000,20000').split(',').map(Number);
const SECONDS = Number(argv.seconds ?? 60);
const QTYPE = String(argv.qtype ?? 'ANY');
const id = randomBytes(2).toString('hex');
const P = `fl${id}`;
const subnet = `10.246.${parseInt(id, 16) % 250}`;
const dir = mkdtempSync(join(tmpdir(), `${P}-`));
const procs = new Set();
const net = netnsHosts(P, subnet, 4);
const { hosts } = net;
const [h1, , , client] = hosts;
const daemons = hosts.slice(0, 3);

function cleanup() {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  net.down();
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

net.up();
const run = (h, args) => {
  const p = spawn('nsenter', [`--net=/run/netns/${h.ns}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'], cwd: ROOT });
  procs.add(p);
  return p;
};
const key = join(dir, 'key');
writeFileSync(key, `${randomBytes(32).toString('base64')}\n`);

const BIG = `services:\n  - name: big\n    endpoints:\n${Array.from({ length: 360 }, (_, i) => `      - { address: 10.9.${i >> 7}.${(i & 127) + 1}, hostname: big-${i}, ports: { http: 80/tcp } }`).join('\n')}\n  - name: small\n    endpoints:\n      - { address: 10.0.0.1 }\n`;
for (const h of daemons) {
  const home = join(dir, `h${h.i}`);
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, 'c.yaml'), `log-level: warn\n${h.i === 1 ? BIG : ''}`);
  h.socket = join(home, 'api.sock');
  h.daemon = run(h, [process.execPath, CLI, 'daemon', '--config', join(home, 'c.yaml'), '--link', 'none',
    '--node-name', `host${h.i}`, '--state-dir', join(home, 'state'), '--dns-listen', `${h.address}:53`, '--api-listen', `unix:${h.socket}`,
    '--upstream-dns', '127.0.0.1:9', '--gossip-listen', '0.0.0.0:7946', '--advertise-address', h.address, '--gossip-key-file', key,
    '--podman-socket', 'none', ...(h.i === 1 ? [] : ['--join', `${h1.address}:7946`])]);
  h.daemon.stdout.resume();
  h.daemon.stderr.resume();
}

const api = (h, path, timeoutMs = 5000) => new Promise((res, rej) => {
  const req = request({ socketPath: h.socket, path, timeout: timeoutMs }, (r) => {
    let t = '';
    r.on('data', (c) => (t += c));
    r.on('end', () => res(t));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', rej);
  req.end();
});
const nodes = async (h) => JSON.parse(await api(h, '/api/v1/nodes'));
await until(async () => (await Promise.all(daemons.map(nodes))).every((l) => l.filter((n) => n.state === 'alive').length === 3));

// The TCP DNS prober, in the client namespace: one query per 100 ms on a new connection, each
// latency (ms, or -1 when unanswered within 2 s) on a line.
const PROBE = `
const net = require('node:net');
const q = Buffer.from('${tcpQuery('small.default.cluster.local')}', 'hex');
setInterval(() => {
  const t0 = process.hrtime.bigint();
  const s = net.connect(53, '${h1.address}');
  const done = (ok) => { if (s.done) return; s.done = true; clearTimeout(timer); s.destroy(); console.log(ok ? Number(process.hrtime.bigint() - t0) / 1e6 : -1); };
  const timer = setTimeout(() => done(false), 2000);
  s.on('connect', () => s.write(q));
  s.on('data', () => done(true));
  s.on('error', () => done(false));
}, 100);
`;
function tcpQuery(name) {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const msg = Buffer.concat([Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
  return Buffer.concat([Buffer.from([0, msg.length]), msg]).toString('hex');
}

const metric = (text, re) => [...text.matchAll(re)].reduce((s, m) => s + Number(m[1]), 0);

writeFileSync(join(dir, 'queries'), `big.default.cluster.local ${QTYPE}\n`);
const results = [];
for (const rate of RATES) {
  await sleep(3000);
  const tcp = [];
  const probe = run(client, [process.execPath, '-e', PROBE]);
  probe.stderr.resume();
  let buf = '';
  probe.stdout.on('data', (c) => {
    buf += c;
    const lines = buf.split('\n');
    buf = lines.pop();
    for (const l of lines) tcp.push(Number(l));
  });
  const apiLat = [];
  let apiFailed = 0;
  const notAlive = new Map();
  let lagMax = 0;
  let stop = false;
  const apiLoop = (async () => {
    while (!stop) {
      const t0 = performance.now();
      try {
        await api(h1, '/api/v1/status', 2000);
        apiLat.push(performance.now() - t0);
      } catch {
        apiFailed++;
      }
      await sleep(100);
    }
  })();
  const membersLoop = (async () => {
    while (!stop) {
      for (const h of daemons) {
        try {
          for (const n of await nodes(h)) if (n.state !== 'alive') notAlive.set(`${n.name} ${n.state} on host${h.i}`, (notAlive.get(`${n.name} ${n.state} on host${h.i}`) ?? 0) + 1);
        } catch { /* counted by the API loop */ }
      }
      try {
        lagMax = Math.max(lagMax, metric(await api(h1, '/metrics', 2000), /^podman_swarm_dns_nodejs_eventloop_lag_max_seconds (\S+)/gm));
      } catch { /* as above */ }
      await sleep(500);
    }
  })();
  const before = await api(h1, '/metrics');
  const perf = await new Promise((res) => {
    const p = run(client, ['dnsperf', '-s', h1.address, '-d', join(dir, 'queries'), '-l', String(SECONDS), '-Q', String(rate), '-c', '4', '-t', '1', '-q', '10000']);
    let out = '';
    p.stdout.on('data', (c) => (out += c));
    p.stderr.resume(); // a warning per lost query: unread, the pipe fills and dnsperf stops
    p.on('exit', () => res(out));
  });
  stop = true;
  await Promise.all([apiLoop, membersLoop]);
  probe.kill();
  const after = await api(h1, '/metrics');
  const shed = {};
  for (const m of after.matchAll(/dns_shed_total\{reason="(\w+)"\} (\S+)/g)) {
    const was = new RegExp(`dns_shed_total\\{reason="${m[1]}"\\} (\\S+)`).exec(before)?.[1] ?? 0;
    if (Number(m[2]) - Number(was) > 0) shed[m[1]] = Number(m[2]) - Number(was);
  }
  const answered = tcp.filter((x) => x >= 0);
  const r = {
    rate,
    qps: Number(/Queries per second:\s+([\d.]+)/.exec(perf)?.[1] ?? NaN),
    lost: /Queries lost:\s+(\d+ \([\d.]+%\))/.exec(perf)?.[1] ?? '?',
    tcp: `${pct(answered, 50).toFixed(1)} / ${Math.max(...answered).toFixed(1)} ms, ${answered.length}/${tcp.length}`,
    api: `${pct(apiLat, 50).toFixed(1)} / ${Math.max(...apiLat).toFixed(1)} ms, ${apiLat.length}/${apiLat.length + apiFailed}`,
    notAlive: [...notAlive].map(([k, n]) => `${k} ×${n}`).join('; ') || 'none',
    lagMs: (lagMax * 1000).toFixed(0),
    shed: JSON.stringify(shed),
  };
  results.push(r);
  console.log(JSON.stringify(r));
}
console.log(`\n| flood (${QTYPE}, ${SECONDS} s) | answered QPS | dnsperf lost | TCP DNS p50 / max, answered | API p50 / max, answered | not alive (observations) | event-loop delay max | shed |`);
console.log('|---|---|---|---|---|---|---|---|');
for (const r of results) console.log(`| ${r.rate} QPS | ${r.qps} | ${r.lost} | ${r.tcp} | ${r.api} | ${r.notAlive} | ${r.lagMs} ms | ${r.shed} |`);
process.exit(0);
