#!/usr/bin/env node
// Where a daemon's CPU goes from spawn to READY (issue 16 item 4). The daemon starts as in
// memory.mjs (the services in the state file, the API registrations or the config file; no
// member reachable; native or JS path) under V8's sampling profiler (--cpu-prof), is stopped once
// its ready line is out (path native-file: the native path after an earlier run with the same
// services left its answer table in $RUNTIME_DIRECTORY, as memory.mjs does), and the samples until READY are summed by function: self time, then
// inclusive time (a function's own samples and those of everything it called). READY is the
// first sample in limitHeapGrowth, which the daemon calls right after its ready line.
// Node's own boot before the profiler starts (~0.1 s CPU) is not in the profile; the profiler
// itself adds CPU: compare shares here. With --no-profile, the builds given to --cli (a comma
// list) are started --rounds times each, alternating, without the profiler: start → READY and
// the CPU until READY, their medians and ranges per build (same-run ratios hold under load).
//
//   npm run build && node bench/start-profile.mjs [--source snapshot|api|config] [--path native|native-file|js] [--services 10000] [--endpoints 5] [--nodes 100] [--cli dist/cli.js] [--node-args="..."] [--node PATH] [--env="K=V ..."] [--interval-us 200] [--top 30] [--keep DIR]
//   node bench/start-profile.mjs --no-profile [--rounds 5] --cli <build>,<build>... [--state-format 2,1...] [--source ...] [--path ...] [--node-args="..."] [--reload [--reload-after 8000]]
// (--reload: each daemon also gets a SIGHUP --reload-after ms after READY, timed to its "reloaded" log line, the file unchanged, with the longest wait for an API /healthz answer meanwhile (requests one after the other); --state-format: per build, the format of the state file it is given; 1 for builds before format 2; --node-args=: extra node flags for the daemon, e.g. the unit's --node-args="--max-semi-space-size=1"; --keep: the .cpuprofile is kept in DIR, for Chrome's DevTools; --node: the daemon's Node.js binary, e.g. Debian 12's 18; --env=: the daemon's extra environment, e.g. its LD_LIBRARY_PATH)
import './help.mjs';
import { argv } from 'zx';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { cpuMs, envArg, freePort, sleep, stopProcess } from './daemon.mjs';
import { SNAPSHOT_FORMAT } from '../dist/state/snapshot.js';
import { apiFile, configFile, snapshotFile } from './services-data.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const SOURCE = String(argv.source ?? 'snapshot');
const PATH = String(argv.path ?? 'native');
const shape = { services: Number(argv.services ?? 10000), endpoints: Number(argv.endpoints ?? 5), nodes: Number(argv.nodes ?? 100) };
const CLIS = String(argv.cli ?? join(ROOT, 'dist', 'cli.js')).split(',').map((c) => resolve(c));
const FORMATS = argv['state-format'] === undefined ? CLIS.map(() => SNAPSHOT_FORMAT) : String(argv['state-format']).split(',').map(Number);
const PROFILE = argv.profile !== false;
const NODE = String(argv.node ?? process.execPath);
const EXTRA_ENV = envArg(argv.env);
const ROUNDS = Number(argv.rounds ?? 5);
const NODE_ARGS = String(argv['node-args'] ?? '').split(' ').filter(Boolean);
const INTERVAL_US = Number(argv['interval-us'] ?? 200);
const TOP = Number(argv.top ?? 30);
/** With --no-profile: also SIGHUP each daemon --reload-after ms after READY and time it to its "reloaded" line. */
const RELOAD = argv.reload === true;
const RELOAD_AFTER = Number(argv['reload-after'] ?? 8000);
if (!['snapshot', 'api', 'config'].includes(SOURCE) || !['native', 'native-file', 'js'].includes(PATH)) throw new Error('--source snapshot|api|config, --path native|native-file|js');
if (FORMATS.length !== CLIS.length || FORMATS.some((f) => f !== 1 && f !== SNAPSHOT_FORMAT)) throw new Error(`--state-format: one format (1 or ${SNAPSHOT_FORMAT}) per build of --cli`);

const dir = mkdtempSync(join(tmpdir(), 'psdns-start-profile-'));
let proc = null;
process.on('exit', () => {
  if (proc && proc.exitCode === null) proc.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

/** The state directory each start gets a copy of (a start changes it: the node key, the state file), per state file format. */
const seedDir = (format) => join(dir, `seed-${format}`);
const profDir = join(dir, 'profile');
const cfg = join(dir, 'config.yaml');
writeFileSync(cfg, SOURCE === 'config' ? configFile(shape) : '');
for (const format of new Set(FORMATS)) {
  mkdirSync(seedDir(format));
  if (SOURCE === 'api') writeFileSync(join(seedDir(format), 'api-endpoints.json'), apiFile(shape));
  if (SOURCE === 'snapshot') writeFileSync(join(seedDir(format), 'state'), snapshotFile(shape, format));
}

/**
 * Path native-file: the state directory after a run of `cli` on the seed that was stopped once its
 * answer table was in $RUNTIME_DIRECTORY (`run/` in it), once per build.
 */
const fileSeeds = new Map();
async function fileSeed(cli, format) {
  const key = `${cli} ${format}`;
  if (fileSeeds.has(key)) return fileSeeds.get(key);
  const seed = join(dir, `file-seed-${fileSeeds.size}`);
  cpSync(seedDir(format), seed, { recursive: true });
  const table = join(seed, 'run', 'answers.table');
  const complete = () => existsSync(table) && readFileSync(table).subarray(-58, -56).toString() === 'f:';
  await start(cli, false, format, seed, complete);
  fileSeeds.set(key, seed);
  return seed;
}

/**
 * Starts `cli` on the prepared state (a fresh copy each time), until READY; the profile when
 * asked. With `keep`, in that directory itself, until `done()` instead.
 */
async function start(cli, profile, format = FORMATS[0], keep = null, done = null) {
  const stateDir = keep ?? join(dir, 'run');
  if (!keep) {
    rmSync(stateDir, { recursive: true, force: true });
    cpSync(PATH === 'native-file' ? await fileSeed(cli, format) : seedDir(format), stateDir, { recursive: true });
  }
  rmSync(profDir, { recursive: true, force: true });
  mkdirSync(profDir);
  const [dnsPort, apiPort, gossipPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const args = [...NODE_ARGS, ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-interval=${INTERVAL_US}`] : []), cli, 'daemon', '--config', cfg, '--link', 'none', '--state-dir', stateDir,
    '--dns-listen', `127.0.0.1:${dnsPort}`, '--api-listen', `127.0.0.1:${apiPort}`, '--upstream-dns', '127.0.0.1:9',
    '--podman-socket', 'none', '--max-endpoints-per-node', '100000', '--log-level', 'info', '--start-grace', '0',
    ...(SOURCE === 'snapshot' ? ['--gossip-listen', `127.0.0.1:${gossipPort}`, '--advertise-address', '127.0.0.1'] : [])];
  const env = { ...process.env, ...EXTRA_ENV, ...(PATH === 'js' ? { PODMAN_SWARM_DNS_NATIVE: '0' } : {}) };
  if (PATH === 'native-file') {
    env.RUNTIME_DIRECTORY = join(stateDir, 'run');
    mkdirSync(env.RUNTIME_DIRECTORY, { recursive: true });
  }
  const t0 = performance.now();
  proc = spawn(NODE, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  let ready = null;
  // Only the last few KB are kept: the daemon must never wait for this pipe.
  proc.stdout.on('data', (c) => {
    out = (out + c).slice(-8192);
    if (ready === null && /"msg":"ready: /.test(out)) ready = { ms: performance.now() - t0, cpu: cpuMs(proc.pid) };
  });
  proc.stderr.on('data', (c) => (err = (err + c).slice(-8192)));
  const limit = Date.now() + 120_000;
  while (ready === null || (done && !done())) {
    if (proc.exitCode !== null) throw new Error(`daemon exited (${proc.exitCode}): ${err}${out.slice(-2000)}`);
    if (Date.now() > limit) throw new Error(`not ${done ? 'done' : 'ready'} in 120 s: ${err}`);
    await sleep(5);
  }
  if (RELOAD && !profile) {
    // After the start has settled (the native table built): the reload alone.
    await sleep(RELOAD_AFTER);
    out = '';
    const t1 = performance.now();
    proc.kill('SIGHUP');
    // Meanwhile the API (on the event loop) is asked /healthz, one request after the other: the
    // longest wait is how long the reload held the event loop in one piece.
    let longest = 0;
    while (!/"msg":"reloaded/.test(out)) {
      if (proc.exitCode !== null || Date.now() > limit + RELOAD_AFTER) throw new Error(`no reload line: ${err}${out.slice(-2000)}`);
      const t = performance.now();
      await fetch(`http://127.0.0.1:${apiPort}/healthz`).then((r) => r.arrayBuffer());
      longest = Math.max(longest, performance.now() - t);
    }
    ready.reload = performance.now() - t1;
    ready.held = longest;
  }
  // The profile is written when the process exits after SIGTERM.
  await stopProcess(proc, 30_000);
  if (!profile) return { ready };
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error('the daemon wrote no profile');
  return { ready, profile: JSON.parse(readFileSync(join(profDir, file), 'utf8')) };
}

const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const what = `${shape.services} services × ${shape.endpoints} endpoints from the ${SOURCE === 'snapshot' ? 'state file' : SOURCE === 'api' ? 'API registrations' : 'config file'}, ${PATH} path; ${NODE_ARGS.length ? `node ${NODE_ARGS.join(' ')}; ` : ''}`;
if (!PROFILE) {
  console.log(`${what}${ROUNDS} rounds, builds alternating; load average before ${load()}\n`);
  const runs = CLIS.map(() => []);
  for (let r = 0; r < ROUNDS; r++) for (const [i, cli] of CLIS.entries()) runs[i].push((await start(cli, false, FORMATS[i])).ready);
  const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const range = (xs) => `${Math.round(Math.min(...xs))}–${Math.round(Math.max(...xs))}`;
  console.log(`| build | start → READY, median (range) (ms) | CPU until READY, median (range) (ms) |${RELOAD ? ' SIGHUP → reloaded, median (range) (ms) | longest API wait during it, median (range) (ms) |' : ''}\n|---|---:|---:|${RELOAD ? '---:|---:|' : ''}`);
  for (const [i, cli] of CLIS.entries()) {
    const ms = runs[i].map((x) => x.ms);
    const cpu = runs[i].map((x) => x.cpu);
    const reload = runs[i].map((x) => x.reload);
    const held = runs[i].map((x) => x.held);
    console.log(`| ${cli} | ${Math.round(med(ms))} (${range(ms)}) | ${med(cpu)} (${range(cpu)}) |${RELOAD ? ` ${Math.round(med(reload))} (${range(reload)}) | ${Math.round(med(held))} (${range(held)}) |` : ''}`);
  }
  console.log(`\nload average after ${load()}`);
  process.exit(0);
}
const { ready, profile } = await start(CLIS[0], true);
if (argv.keep) {
  mkdirSync(resolve(String(argv.keep)), { recursive: true });
  writeFileSync(join(resolve(String(argv.keep)), `start-${SOURCE}-${PATH}.cpuprofile`), JSON.stringify(profile));
}

const { self, inclusive, sampledMs, marked } = untilReady(profile);
console.log(`${what}load average ${load()}`);
console.log(`start → READY ${Math.round(ready.ms)} ms, CPU until READY ${ready.cpu} ms (profiled: the profiler adds CPU); ${Math.round(sampledMs)} ms sampled until ${marked ? 'READY' : 'the end (no sample in limitHeapGrowth: the whole profile)'}`);
const show = (title, m) => {
  console.log(`\n${title}\n|   ms |    % | function |\n|---:|---:|---|`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`| ${(us / 1000).toFixed(0)} | ${((100 * us) / 1000 / sampledMs).toFixed(1)} | ${k} |`);
};
show('By self time:', self);
show('By inclusive time:', inclusive);

/** Self and inclusive µs per function (name, file, line) over the samples before the first one in limitHeapGrowth. */
function untilReady(p) {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber + 1}`;
  const stack = (id) => {
    const s = [];
    for (let at = id; at !== undefined; at = parent.get(at)) s.push(byId.get(at));
    return s;
  };
  const selfUs = new Map();
  const inclUs = new Map();
  let total = 0;
  let marked = false;
  for (let i = 0; i < p.samples.length; i++) {
    const frames = stack(p.samples[i]);
    if (frames.some((n) => n.callFrame.functionName === 'limitHeapGrowth')) {
      marked = true;
      break;
    }
    const us = p.timeDeltas[i + 1] ?? 0;
    total += us;
    selfUs.set(label(frames[0]), (selfUs.get(label(frames[0])) ?? 0) + us);
    for (const k of new Set(frames.map(label))) inclUs.set(k, (inclUs.get(k) ?? 0) + us);
  }
  return { self: selfUs, inclusive: inclUs, sampledMs: total / 1000, marked };
}
