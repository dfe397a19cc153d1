#!/usr/bin/env node
// Restart benchmark (SPEC §16 "kill -9: DNS answers again within 2 s"): the daemon under a real
// systemd (Debian bookworm in systemd-nspawn, Debian's Node.js 18, this checkout's dist), killed
// with SIGKILL N times. For each kill: time until systemd has the new main process active
// (READY=1 received) and until `dig @10.223.0.10` answers again. Reference, same machine, same
// run: the bare start of Debian's node (`node -e 0`) and the daemon's own start → READY.
// "dig answers" is polled from the kill on, not only once systemd has READY=1: with the DNS
// sockets in systemd's store, the new process answers from the previous run's table before it
// has loaded the daemon (src/systemd/early-dns.ts).
//
// --variants base,nice,direct: the rounds take turns among unit variants (a drop-in each, so all
// see the same load): base = the unit as shipped; nice = Nice=-10; direct = ExecStart without
// the notify-socket-exec wrapper (the native addon sends sd_notify itself).
//
//   sudo node bench/systemd-restart.mjs [--rounds 10] [--variants base]
//
// Needs root, systemd-nspawn, debootstrap (the rootfs is cached: test/helpers/bookworm-rootfs.sh),
// `npm run build` first.
import './help.mjs';
import { argv, fs, path } from 'zx';
import { execFileSync, spawn, spawnSync } from 'node:child_process';

const ROOT = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
const ROUNDS = Number(argv.rounds ?? 10);
const DROPINS = {
  base: '',
  nice: '[Service]\nNice=-10\n',
  direct: '[Service]\nExecStart=\nExecStart=/usr/bin/podman-swarm-dns daemon\n',
};
const VARIANTS = String(argv.variants ?? 'base').split(',');
for (const v of VARIANTS) if (!(v in DROPINS)) throw new Error(`unknown variant ${v} (expected ${Object.keys(DROPINS).join(', ')})`);
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

const dropin = `${root}/etc/systemd/system/podman-swarm-dns.service.d/bench.conf`;
fs.mkdirSync(path.dirname(dropin), { recursive: true });
const results = new Map(VARIANTS.map((v) => [v, { toReady: [], toDns: [], daemonStart: [] }]));
const nodeStart = [];
for (let i = 0; i < ROUNDS * VARIANTS.length; i++) {
  const variant = VARIANTS[i % VARIANTS.length];
  const { toReady, toDns, daemonStart } = results.get(variant);
  // The drop-in applies to the next exec: the process killed below was started under the one before.
  fs.writeFileSync(dropin, DROPINS[variant]);
  run('systemctl', 'daemon-reload');
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
    if (!dns && answers()) dns = performance.now() - t0;
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
console.log(`\n${ROUNDS} kills per variant, ${new Date().toISOString().slice(0, 10)}, Node (in the container) ${run('node', '--version').stdout.trim()}, systemd ${run('systemctl', '--version').stdout.split('\n')[0]}, load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
console.log('| variant | measure | median (ms) | max (ms) |\n|---|---|---:|---:|');
for (const [v, { toReady, toDns, daemonStart }] of results) {
  console.log(`| ${v} | kill -9 → dig @10.223.0.10 answers | ${f(median(toDns))} | ${f(max(toDns))} |`);
  console.log(`| ${v} | kill -9 → systemd has the new process READY | ${f(median(toReady))} | ${f(max(toReady))} |`);
  console.log(`| ${v} | daemon exec → READY=1 (systemd timestamps) | ${f(median(daemonStart))} | ${f(max(daemonStart))} |`);
}
console.log(`| all | reference: \`node -e 0\` (Debian Node 18) | ${f(median(nodeStart))} | ${f(max(nodeStart))} |`);
console.log(`| RestartSec (fixed, in the unit) | 100 | 100 |`);
process.exit(0);
