#!/usr/bin/env node
// API registrations: POST /api/v1/services/<ns>/<svc>/endpoints, one at a time over the unix
// socket, against a daemon whose state directory is on the disk under --dir (each 201 means the
// registration is on disk: since issue 16 one line of the registration journal, before that the
// whole registration file rewritten and fsynced with its directory). Reports
// registrations per second, the p50/p99 latency of a POST, and the p99/max latency of GET /healthz
// sent every 5 ms meanwhile on a second connection (what a POST costs everyone else: the time it
// holds the daemon's event loop). With --baseline <cli.js> the same
// rounds run, interleaved, against another build (e.g. main's dist/cli.js) as the reference.
//
//   node bench/registrations.mjs [--count 300] [--rounds 3] [--dir /var/tmp] [--baseline /path/to/dist/cli.js]
//
// Needs `npm run build` first. Runs the JS DNS path (PODMAN_SWARM_DNS_NATIVE=0): only the API is
// measured.
import './help.mjs';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const { values: a } = parseArgs({ options: { count: { type: 'string' }, rounds: { type: 'string' }, dir: { type: 'string' }, baseline: { type: 'string' } } });
const COUNT = Number(a.count ?? 300);
const ROUNDS = Number(a.rounds ?? 3);
const DIR = a.dir ?? '/var/tmp';
const builds = [['this build', join(ROOT, 'dist', 'cli.js')], ...(a.baseline ? [['baseline', a.baseline]] : [])];

function call(socketPath, method, path, body) {
  return new Promise((res, rej) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ socketPath, method, path, headers: data ? { 'content-type': 'application/json' } : {} }, (r) => {
      r.resume();
      r.on('end', () => res(r.statusCode));
    });
    req.on('error', rej);
    req.end(data);
  });
}

async function round(cli) {
  const dir = mkdtempSync(join(DIR, 'psdns-bench-reg-'));
  const sock = join(dir, 'api.sock');
  writeFileSync(join(dir, 'none.yaml'), '');
  const p = spawn(process.execPath, [cli, 'daemon', '--config', join(dir, 'none.yaml'), '--link', 'none', '--state-dir', join(dir, 'state'),
    '--dns-listen', '127.0.0.1:0', '--api-listen', `unix:${sock}`, '--upstream-dns', '127.0.0.1:9', '--podman-socket', 'none', '--log-level', 'warn'],
  { env: { ...process.env, PODMAN_SWARM_DNS_NATIVE: '0' }, stdio: 'ignore' });
  try {
    let ready = false;
    for (let i = 0; i < 400 && !ready; i++) {
      ready = (await call(sock, 'GET', '/readyz').catch(() => 0)) === 200;
      if (!ready) await new Promise((r) => setTimeout(r, 50));
    }
    if (!ready) throw new Error(`${cli}: the daemon did not start within 20 s`);
    const lat = [];
    const probes = [];
    let posting = true;
    const prober = (async () => {
      while (posting) {
        const s = performance.now();
        await call(sock, 'GET', '/healthz');
        probes.push(performance.now() - s);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const t0 = performance.now();
    for (let i = 0; i < COUNT; i++) {
      const s = performance.now();
      const code = await call(sock, 'POST', `/api/v1/services/default/svc${i % 20}/endpoints`, { id: `e${i}`, address: `10.2.${i >> 8}.${i & 255}`, ports: { http: '8080/tcp' }, health: 'none' });
      if (code !== 201) throw new Error(`POST ${i}: ${code}`);
      lat.push(performance.now() - s);
    }
    const secs = (performance.now() - t0) / 1000;
    posting = false;
    await prober;
    lat.sort((x, y) => x - y);
    probes.sort((x, y) => x - y);
    return { rate: COUNT / secs, p50: lat[Math.floor(lat.length * 0.5)], p99: lat[Math.floor(lat.length * 0.99)], hp99: probes[Math.floor(probes.length * 0.99)], hmax: probes.at(-1) };
  } finally {
    p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

const results = new Map(builds.map(([name]) => [name, []]));
for (let r = 0; r < ROUNDS; r++) for (const [name, cli] of builds) results.get(name).push(await round(cli));
const median = (xs) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)];
console.log(`${COUNT} registrations per round, ${ROUNDS} rounds, state directory under ${DIR}; medians`);
console.log('| build | registrations/s | p50 POST (ms) | p99 POST (ms) | p99 GET /healthz meanwhile (ms) | max GET /healthz (ms) |\n|---|---:|---:|---:|---:|---:|');
for (const [name, rs] of results) {
  const m = (k) => median(rs.map((x) => x[k])).toFixed(k === 'rate' ? 0 : 2);
  console.log(`| ${name} | ${m('rate')} | ${m('p50')} | ${m('p99')} | ${m('hp99')} | ${m('hmax')} |`);
}
