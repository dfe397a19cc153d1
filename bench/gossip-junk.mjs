#!/usr/bin/env node
// Junk on the gossip TCP port (issue 15): 40 connections to one daemon, each announcing a 16 MB
// frame, pushing 15 MB of junk and then holding the connection. Prints the daemon's RSS before,
// at the peak and after, and how many of the 40 connections the daemon closed within 20 s.
// Before issue 15 the daemon read every frame up to 16 MB before authenticating it.
//
//   npm run build && node bench/gossip-junk.mjs [--cli dist/cli.js] [--port 17990]
import './help.mjs';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argv } from 'zx';

const CLI = String(argv.cli ?? 'dist/cli.js');
const PORT = Number(argv.port ?? 17990);
const dir = mkdtempSync(join(tmpdir(), 'gossip-junk-'));
const run = (args) => spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
const key = await new Promise((res) => { let out = ''; const p = run(['keygen']); p.stdout.on('data', (c) => (out += c)); p.on('exit', () => res(out)); });
writeFileSync(join(dir, 'key'), key);
const daemon = run(['daemon', '--link', 'none', '--upstream-dns', '127.0.0.1:9', '--podman-socket', 'none', '--advertise-address', '127.0.0.1',
  '--gossip-key-file', join(dir, 'key'), '--gossip-listen', `127.0.0.1:${PORT}`, '--state-dir', join(dir, 'state'),
  '--dns-listen', `127.0.0.1:${PORT + 1}`, '--api-listen', `unix:${join(dir, 'api.sock')}`]);
await new Promise((res) => { let out = ''; daemon.stdout.on('data', (c) => { out += c; if (/"msg":"ready/.test(out)) res(); }); });
const rss = () => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${daemon.pid}/status`, 'utf8'))[1]) / 1024);

const junk = Buffer.alloc(64 << 10, 0x5a);
const before = rss();
let peak = before;
let closed = 0;
const socks = [];
for (let i = 0; i < 40; i++) {
  const s = connect({ host: '127.0.0.1', port: PORT });
  socks.push(s);
  s.on('error', () => {});
  s.resume();
  const head = Buffer.alloc(4);
  head.writeUInt32BE((16 << 20) - 1);
  s.write(head);
  let sent = 0;
  const pump = () => { while (sent < 15 << 20 && !s.destroyed) { sent += junk.length; if (!s.write(junk)) return void s.once('drain', pump); } };
  s.once('connect', pump);
  s.on('close', () => closed++);
}
const t0 = Date.now();
while (closed < 40 && Date.now() - t0 < 20_000) {
  await new Promise((r) => setTimeout(r, 200));
  peak = Math.max(peak, rss());
}
const secs = ((Date.now() - t0) / 1000).toFixed(1);
await new Promise((r) => setTimeout(r, 2000));
console.log(`${CLI}: RSS ${before} MB before, ${peak} MB peak, ${rss()} MB after; ${closed}/40 connections closed by the daemon (${secs} s)`);
socks.forEach((s) => s.destroy());
daemon.kill();
await new Promise((r) => daemon.on('exit', r));
rmSync(dir, { recursive: true, force: true });
