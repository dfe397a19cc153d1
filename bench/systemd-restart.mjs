#!/usr/bin/env node
// Restart benchmark (SPEC §16 "kill -9: DNS answers again within 2 s"): the daemon under a real
// systemd (Debian bookworm in systemd-nspawn, Debian's Node.js 18, this checkout's dist), killed
// with SIGKILL N times. For each kill: time until systemd has the new main process active
// (READY=1 received) and until `dig @10.223.0.10` answers again. Reference, same machine, same
// run: the bare start of Debian's node (`node -e 0`) and the daemon's own start → READY.
//
//   sudo node bench/systemd-restart.mjs [--rounds 10]
//
// Needs root, systemd-nspawn, debootstrap (the rootfs is cached: test/helpers/bookworm-rootfs.sh),
// `npm run build` first.
import './help.mjs';
import { argv, fs, path } from 'zx';
import { execFileSync, spawn, spawnSync } from 'node:child_process';

const ROOT = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
const ROUNDS = Number(argv.rounds ?? 10);
const NAME = `s7bench-${process.pid}`;

const rootfs = execFileSync(path.join(ROOT, 'test/helpers/bookworm-rootfs.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
const nspawn = spawn('systemd-nspawn', ['-q', '-D', rootfs, '-b', '--machine', NAME, '--register=no', '--keep-unit', '--private-network', '--volatile=overlay',
  '--console=pipe', `--bind-ro=${ROOT}:/opt/podman-swarm-dns`], { stdio: 'ignore' });
const cleanup = () => {
  nspawn.kill('SIGTERM');
  fs.rmSync(`/run/systemd/nspawn/propagate/${NAME}`, { recursive: true, force: true });
};
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let leader = 0;
while (!leader) {
  await sleep(50);
  const c = fs.existsSync(`/proc/${nspawn.pid}/task/${nspawn.pid}/children`) ? fs.readFileSync(`/proc/${nspawn.pid}/task/${nspawn.pid}/children`, 'utf8').trim() : '';
  if (c) leader = Number(c.split(' ')[0]);
}
const run = (...cmd) => spawnSync('nsenter', ['-t', String(leader), '-m', '-u', '-i', '-n', '-p', '-C', '--', ...cmd], { encoding: 'utf8' });
while (!/^(running|degraded)/.test(run('systemctl', 'is-system-running', '--wait').stdout)) await sleep(100);

const root = `/proc/${leader}/root`;
fs.mkdirSync(`${root}/usr/lib/podman-swarm-dns`, { recursive: true });
fs.copyFileSync(`${ROOT}/systemd/notify-socket-exec`, `${root}/usr/lib/podman-swarm-dns/notify-socket-exec`);
fs.chmodSync(`${root}/usr/lib/podman-swarm-dns/notify-socket-exec`, 0o755);
fs.writeFileSync(`${root}/usr/bin/podman-swarm-dns`, '#!/bin/sh\nexec /usr/bin/node /opt/podman-swarm-dns/dist/cli.js "$@"\n', { mode: 0o755 });
fs.copyFileSync(`${ROOT}/systemd/podman-swarm-dns.service`, `${root}/etc/systemd/system/podman-swarm-dns.service`);
fs.mkdirSync(`${root}/etc/podman-swarm-dns`, { recursive: true });
fs.writeFileSync(`${root}/etc/podman-swarm-dns/config.yaml`, 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.7\n');
run('ip', 'link', 'add', 'pswarm0', 'type', 'veth', 'peer', 'name', 'pswarm0p');
run('ip', 'link', 'set', 'pswarm0p', 'up');
run('systemctl', 'daemon-reload');
run('systemctl', 'start', 'podman-swarm-dns');

const show = (p) => run('systemctl', 'show', '-p', p, '--value', 'podman-swarm-dns').stdout.trim();
const answers = () => /10\.0\.0\.7/.test(run('dig', '+short', '+time=1', '+tries=1', '@10.223.0.10', 'web.default.cluster.local').stdout);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const max = (xs) => Math.max(...xs);

const toReady = [];
const toDns = [];
const nodeStart = [];
const daemonStart = [];
for (let i = 0; i < ROUNDS; i++) {
  // Each kill counts against StartLimitBurst (5 in 10 s): clear the counter between rounds.
  run('systemctl', 'reset-failed', 'podman-swarm-dns');
  const pid = show('MainPID');
  const t0 = performance.now();
  run('kill', '-9', pid);
  let ready = 0;
  let dns = 0;
  while (!ready || !dns) {
    if (performance.now() - t0 > 30_000) throw new Error(`round ${i}: no restart within 30 s:\n${run('systemctl', 'status', '--no-pager', 'podman-swarm-dns').stdout}`);
    if (!ready && show('ActiveState') === 'active' && !['0', pid].includes(show('MainPID'))) ready = performance.now() - t0;
    if (ready && !dns && answers()) dns = performance.now() - t0;
    await sleep(10);
  }
  toReady.push(ready);
  toDns.push(dns);
  // Reference: what the restart would cost if the daemon did nothing but start Node.
  const n0 = performance.now();
  run('node', '-e', '0');
  nodeStart.push(performance.now() - n0);
  // The daemon's own exec → READY, from systemd's timestamps (µs, monotonic).
  const t = (p) => Number(show(p));
  daemonStart.push((t('ActiveEnterTimestampMonotonic') - t('ExecMainStartTimestampMonotonic')) / 1000);
  await sleep(1000); // let the start burst settle (and stay under StartLimitBurst)
}
const f = (x) => `${Math.round(x)}`;
console.log(`\n${ROUNDS} kills, ${new Date().toISOString().slice(0, 10)}, Node (in the container) ${run('node', '--version').stdout.trim()}, systemd ${run('systemctl', '--version').stdout.split('\n')[0]}\n`);
console.log('| measure | median (ms) | max (ms) |\n|---|---:|---:|');
console.log(`| kill -9 → systemd has the new process READY | ${f(median(toReady))} | ${f(max(toReady))} |`);
console.log(`| kill -9 → dig @10.223.0.10 answers | ${f(median(toDns))} | ${f(max(toDns))} |`);
console.log(`| daemon exec → READY=1 (systemd timestamps) | ${f(median(daemonStart))} | ${f(max(daemonStart))} |`);
console.log(`| reference: \`node -e 0\` (Debian Node 18) | ${f(median(nodeStart))} | ${f(max(nodeStart))} |`);
console.log(`| RestartSec (fixed, in the unit) | 100 | 100 |`);
process.exit(0);
