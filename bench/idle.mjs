#!/usr/bin/env node
// An idle host (issue 16): a private Podman service with --containers labelled containers running
// (busybox httpd, a named port, the default tcp health check), the daemon watching it with
// --resync-interval 5s and gossip on loopback; then --minutes of nothing happening. Reports what
// moved meanwhile: registry index increments, gossip updates queued, native table builds, the
// local node's version, and the daemon's CPU time. The target is zero of the first three.
//
//   npm run build && sudo node bench/idle.mjs [--containers 20] [--minutes 10] [--resync 5s] [--dist DIR]
// (--dist: another build's dist/ to run, e.g. an older checkout; figures its metrics lack show as -)
import './help.mjs';
import { argv } from 'zx';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const DIST = resolve(argv.dist ?? join(ROOT, 'dist'));
const CONTAINERS = Number(argv.containers ?? 20);
const MINUTES = Number(argv.minutes ?? 10);
const RESYNC = String(argv.resync ?? '5s');
const P = `idle${process.pid % 10000}`;
const dir = mkdtempSync(join(tmpdir(), `${P}-`));
const env = { ...process.env, CONTAINERS_CONF: join(ROOT, 'test', 'fixtures', 'podman', 'containers.conf') };
const socket = join(dir, 'podman.sock');
const storage = ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--storage-driver', 'vfs', '--events-backend', 'file', '--tmpdir', join(dir, 'tmp')];
const remote = ['--remote', '--url', `unix://${socket}`];
const procs = new Set();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const podman = (args, viaService = true) => new Promise((res, rej) =>
  execFile('podman', [...(viaService ? remote : storage), ...args], { env, timeout: 120_000 }, (err, out, stderr) => (err ? rej(new Error(`podman ${args.join(' ')}: ${stderr || err.message}`)) : res(out))));

let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
  const names = Array.from({ length: CONTAINERS }, (_, i) => `${P}-c${i}`);
  await podman(['rm', '-f', '-t', '0', ...names], false).catch(() => undefined);
  await podman(['network', 'rm', '-f', `${P}-net`], false).catch(() => undefined);
  await sleep(1000);
  rmSync(dir, { recursive: true, force: true });
}
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => void cleanup().then(() => process.exit(130)));

const freePort = () => new Promise((res) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => res(port));
  });
});
const get = (port, path) => new Promise((res, rej) => {
  const req = request({ host: '127.0.0.1', port, path }, (r) => {
    let text = '';
    r.on('data', (c) => (text += c));
    r.on('end', () => res(text));
  });
  req.on('error', rej);
  req.end();
});

try {
  const service = spawn('podman', [...storage, 'system', 'service', '--time=0', `unix://${socket}`], { env, stdio: 'ignore' });
  procs.add(service);
  for (let i = 0; i < 150; i++) {
    if (await podman(['version']).then(() => true, () => false)) break;
    await sleep(100);
  }
  const bb = join(dir, 'bb');
  mkdirSync(join(bb, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(bb, 'bin', 'busybox'));
  for (const a of ['sh', 'httpd']) symlinkSync('busybox', join(bb, 'bin', a));
  await new Promise((res, rej) => execFile('tar', ['-C', bb, '-cf', join(dir, 'bb.tar'), '.'], (e) => (e ? rej(e) : res())));
  await podman(['import', join(dir, 'bb.tar'), `localhost/${P}:latest`]);
  await podman(['network', 'create', `${P}-net`]);
  for (let i = 0; i < CONTAINERS; i++) {
    await podman(['run', '-d', '--name', `${P}-c${i}`, '--network', `${P}-net`, '--label', 'podman-swarm.service=idle', '--label', 'podman-swarm.port.http=80/tcp',
      `localhost/${P}:latest`, 'httpd', '-f', '-p', '80']);
  }

  const [dnsPort, apiPort, gossipPort] = await Promise.all([freePort(), freePort(), freePort()]);
  writeFileSync(join(dir, 'config.yaml'), '');
  const d = spawn(process.execPath, [join(DIST, 'cli.js'), 'daemon', '--config', join(dir, 'config.yaml'), '--link', 'none', '--state-dir', join(dir, 'state'),
    '--dns-listen', `127.0.0.1:${dnsPort}`, '--api-listen', `127.0.0.1:${apiPort}`, '--upstream-dns', '127.0.0.1:9', '--podman-socket', socket,
    '--resync-interval', RESYNC, '--gossip-listen', `127.0.0.1:${gossipPort}`, '--advertise-address', '127.0.0.1', '--log-level', 'warn'], { stdio: 'ignore' });
  procs.add(d);
  const metric = async (name) => {
    const m = new RegExp(`^podman_swarm_dns_${name} (\\S+)$`, 'm').exec(await get(apiPort, '/metrics').catch(() => ''));
    return m ? Number(m[1]) : null;
  };
  const end = Date.now() + 120_000;
  while ((await metric('registry_endpoints')) !== CONTAINERS) {
    if (Date.now() > end) throw new Error('the containers never all registered');
    await sleep(200);
  }
  await sleep(15_000); // first health rounds and resyncs
  const cpu = () => {
    const s = readFileSync(`/proc/${d.pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  };
  const read = async () => ({
    index: await metric('registry_index'),
    updates: await metric('gossip_updates_queued_total'),
    builds: await metric('native_table_builds_total'),
    version: JSON.parse(await get(apiPort, '/api/v1/nodes')).find((n) => n.local)?.version ?? null,
    cpu: cpu(),
  });
  const a = await read();
  await sleep(MINUTES * 60_000);
  const b = await read();
  const diff = (k) => (a[k] === null || b[k] === null ? '-' : b[k] - a[k]);
  console.log(`${CONTAINERS} labelled containers, --resync-interval ${RESYNC}, ${MINUTES} min idle (${DIST})\n`);
  console.log('| registry index increments | gossip updates queued | native table builds | local node version changes | daemon CPU (ms) |');
  console.log('|---:|---:|---:|---:|---:|');
  console.log(`| ${diff('index')} | ${diff('updates')} | ${diff('builds')} | ${a.version === b.version ? 0 : 'changed'} | ${diff('cpu')} |`);
} finally {
  await cleanup();
}
