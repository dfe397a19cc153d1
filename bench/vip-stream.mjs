#!/usr/bin/env node
// A steady stream of new TCP connections and UDP datagrams to a load balancer VIP, as clients of
// a service see it while the daemon restarts. `serve` runs the endpoints (a TCP and a UDP echo on
// 127.0.0.1); `stream` opens --rate connections a second (each writes its number and waits for the
// echo) and sends --rate datagrams a second from one socket (never resent) for --seconds, then
// waits up to --late ms for what is still open. Prints (and with --out writes) one JSON line:
// connections sent, echoed, refused (ECONNREFUSED: no socket listened on the VIP), failed
// otherwise (reset or closed without the echo: accepted by a process that then stopped), and
// datagrams sent and answered. Plain Node (18 or later), no dependencies: it runs inside the test
// machines as it is.
//
//   node bench/vip-stream.mjs serve --tcp 7001 --udp 7002
//   node bench/vip-stream.mjs stream --host VIP --tcp 7001 --udp 7002 [--rate 20] [--seconds 10] [--late 30000] [--out FILE] [--started FILE]
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import { writeFileSync } from 'node:fs';

const [mode, ...rest] = process.argv.slice(2);
const args = {};
for (let i = 0; i < rest.length; i += 2) args[rest[i].replace(/^--/, '')] = rest[i + 1];
const tcpPort = Number(args.tcp);
const udpPort = Number(args.udp);

if (mode === 'serve') {
  createServer((c) => c.on('error', () => {}).pipe(c)).listen(tcpPort, '127.0.0.1');
  const u = createSocket('udp4');
  u.on('message', (m, r) => u.send(m, r.port, r.address));
  u.bind(udpPort, '127.0.0.1');
} else if (mode === 'stream' && args.host) {
  const rate = Number(args.rate ?? 20);
  const seconds = Number(args.seconds ?? 10);
  const late = Number(args.late ?? 30_000);
  const r = { connections: 0, echoed: 0, refused: 0, failed: 0, datagrams: 0, answered: 0 };
  const open = new Set();
  const udp = createSocket('udp4');
  const waiting = new Set();
  udp.on('message', (m) => {
    if (waiting.delete(m.toString())) r.answered++;
  });
  await new Promise((res) => udp.bind(0, res));
  const one = (i) => {
    const text = `c${i}`;
    const c = connect({ host: args.host, port: tcpPort });
    open.add(c);
    let got = '';
    let done = false;
    const end = (key) => {
      if (done) return;
      done = true;
      r[key]++;
      open.delete(c);
      c.destroy();
    };
    c.on('data', (b) => {
      got += b;
      if (got === text) end('echoed');
    });
    c.on('error', (e) => end(e.code === 'ECONNREFUSED' ? 'refused' : 'failed'));
    c.on('close', () => end('failed'));
    c.write(text);
    r.connections++;
    const d = `u${i}`;
    waiting.add(d);
    udp.send(d, udpPort, args.host);
    r.datagrams++;
  };
  if (args.started) writeFileSync(args.started, '');
  const total = rate * seconds;
  for (let i = 0; i < total; i++) {
    one(i);
    await new Promise((res) => setTimeout(res, 1000 / rate));
  }
  const until = Date.now() + late;
  while ((open.size > 0 || waiting.size > 0) && Date.now() < until) await new Promise((res) => setTimeout(res, 100));
  for (const c of open) c.destroy();
  udp.close();
  const line = JSON.stringify(r);
  console.log(line);
  if (args.out) writeFileSync(args.out, line);
} else {
  console.error('usage: vip-stream.mjs serve --tcp PORT --udp PORT | stream --host VIP --tcp PORT --udp PORT [--rate 20] [--seconds 10] [--late 30000] [--out FILE] [--started FILE]');
  process.exit(2);
}
