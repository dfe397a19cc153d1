#!/usr/bin/env node
// Podman start → DNS answer. A private `podman system service` (own storage, vfs) and the daemon
// watching it; each round runs a labelled container, then polls the daemon's DNS (UDP, in-process
// client, every 2 ms) from the moment `podman run -d` returns until the container's address is
// answered. Also prints the daemon's own figure, event received → registry updated (inspect
// included), from its debug log. Stops and removes each container and checks it leaves DNS.
//
//   sudo node bench/podman-start.mjs [--rounds 10]
//
// Needs: root, podman, runc, busybox-static; `npm run build` first.
import './help.mjs';
import { $, argv, fs, path, os, sleep } from 'zx';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import * as packet from 'dns-packet';

$.verbose = false;
const ROOT = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
const ROUNDS = Number(argv.rounds ?? 10);
const P = `p3b${process.pid % 10000}`;
const work = await fs.mkdtemp(path.join(os.tmpdir(), `${P}-`));
const env = { ...process.env, CONTAINERS_CONF: path.join(ROOT, 'test/fixtures/podman/containers.conf') };
const storage = ['--root', `${work}/root`, '--runroot', `${work}/runroot`, '--storage-driver', 'vfs', '--events-backend', 'file', '--tmpdir', `${work}/tmp`];
const sock = `${work}/podman.sock`;
const remote = ['--remote', '--url', `unix://${sock}`];
const children = [];
const podman = (args) => $({ env })`podman ${remote} ${args}`;

async function cleanup() {
  await $({ env, nothrow: true })`podman ${storage} rm -f -t 0 --filter label=bench=${P}`;
  await $({ env, nothrow: true })`podman ${storage} network rm -f ${P}-net`;
  for (const c of children) c.kill('SIGKILL');
  // conmon's `podman container cleanup` may still run with our --root and recreate it: twice.
  fs.rmSync(work, { recursive: true, force: true });
  await sleep(1500);
  fs.rmSync(work, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => cleanup().then(() => process.exit(130)));

function start(cmd, args) {
  const c = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  c.stdout.on('data', (d) => (out += d));
  c.stderr.on('data', (d) => (out += d));
  children.push(c);
  return { c, out: () => out };
}

function ask(port, name) {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => (s.close(), resolve([])), 500);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve((packet.decode(m).answers ?? []).map((a) => a.data));
    });
    s.send(packet.encode({ id: 1, type: 'query', questions: [{ name, type: 'A' }] }), port, '127.0.0.1');
  });
}

const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

try {
  start('podman', [...storage, 'system', 'service', '--time=0', `unix://${sock}`]);
  for (let i = 0; i < 100 && !(await $({ env, nothrow: true })`podman ${remote} version`).ok; i++) await sleep(100);
  await fs.mkdirp(`${work}/bb/bin`);
  await fs.copy('/bin/busybox', `${work}/bb/bin/busybox`);
  for (const a of ['sh', 'httpd']) await fs.symlink('busybox', `${work}/bb/bin/${a}`);
  await $`tar -C ${work}/bb -cf ${work}/bb.tar .`;
  await podman(['import', `${work}/bb.tar`, 'localhost/psdns-bb:latest']);
  await podman(['network', 'create', `${P}-net`]);
  const port = 20000 + (process.pid % 20000);
  const d = start(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'daemon', '--link', 'none', '--state-dir', `${work}/state`,
    '--dns-listen', `127.0.0.1:${port}`, '--api-listen', `unix:${work}/api.sock`, '--upstream-dns', '127.0.0.1:9',
    '--podman-socket', sock, '--log-level', 'debug', '--health-interval', '1h']);
  for (let i = 0; i < 100 && !/connected to Podman/.test(d.out()); i++) await sleep(100);

  const run = [], answer = [], gone = [];
  for (let r = 0; r < ROUNDS; r++) {
    const name = `${P}-c${r}`;
    const t0 = performance.now();
    await podman(['run', '-d', '--name', name, '--network', `${P}-net`, '--label', `bench=${P}`, '--label', `podman-swarm.service=bench${r}`, 'localhost/psdns-bb', 'httpd', '-f', '-p', '80']);
    const t1 = performance.now();
    while ((await ask(port, `bench${r}.default.cluster.local`)).length === 0) await sleep(2);
    const t2 = performance.now();
    run.push(t1 - t0);
    answer.push(t2 - t1);
    await podman(['rm', '-f', '-t', '0', name]);
    const t3 = performance.now();
    while ((await ask(port, `bench${r}.default.cluster.local`)).length > 0) await sleep(2);
    gone.push(performance.now() - t3);
  }
  const applied = [...d.out().matchAll(/Podman start event applied to the registry in ([\d.]+) ms/g)].map((m) => Number(m[1]));
  const row = (what, xs) => `| ${what} | ${xs.length} | ${pct(xs, 50).toFixed(1)} | ${pct(xs, 90).toFixed(1)} | ${Math.max(...xs).toFixed(1)} |`;
  console.log(`Podman ${(await podman(['version', '--format', '{{.Server.Version}}'])).stdout.trim()}, ${os.cpus().length} cores, Node ${process.version}\n`);
  console.log('| interval (ms) | n | p50 | p90 | max |\n|---|---:|---:|---:|---:|');
  console.log(row('`podman run -d` itself', run));
  console.log(row('`podman run -d` returned → answered in DNS', answer));
  console.log(row('start event received → registry updated (daemon log)', applied));
  console.log(row('`podman rm -f` returned → gone from DNS', gone));
} finally {
  await cleanup();
}
