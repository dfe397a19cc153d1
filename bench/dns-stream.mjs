#!/usr/bin/env node
// A steady stream of DNS queries, as a busy client sees a server: --rate queries a second over
// UDP for --seconds, each with a --timeout (ms) and --retries retries (a new id each time), as
// glibc's resolver does. Prints (and with --out writes) one JSON line: queries sent, lost (no
// answer after the last retry), answers by rcode, empty NOERROR answers, answers without
// --expect, retried queries, and the worst and median latency from first send to answer. Answers
// that come after the client gave up are still counted (late; waited for up to --late ms after the
// last query): unanswered = lost queries that never got any answer, e.g. dropped by the kernel
// because no socket was bound. tail_answered: the last 1% of the queries were all answered in time.
// max_gap_ms: the longest time without any reply (in time or late), gap_end: when it ended (epoch ms).
// Plain Node (18 or later), no dependencies: it runs inside the test machines as it is.
//
//   node bench/dns-stream.mjs --server 10.223.0.10 --name web.default.cluster.local --expect 10.0.0.7 \
//     [--port 53] [--rate 500] [--seconds 10] [--timeout 1000] [--retries 1] [--late 20000] [--out FILE] [--started FILE]
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
if (!args.server || !args.name) {
  console.error('usage: dns-stream.mjs --server IP --name NAME [--expect IP] [--port 53] [--rate 500] [--seconds 10] [--timeout 1000] [--retries 1] [--out FILE] [--started FILE]');
  process.exit(2);
}
const port = Number(args.port ?? 53);
const rate = Number(args.rate ?? 500);
const seconds = Number(args.seconds ?? 10);
const timeoutMs = Number(args.timeout ?? 1000);
const retries = Number(args.retries ?? 1);
const lateMs = Number(args.late ?? 20_000);
const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

function query(id) {
  const labels = args.name.replace(/\.$/, '').split('.');
  const q = Buffer.alloc(12 + labels.reduce((n, l) => n + l.length + 1, 1) + 4);
  q.writeUInt16BE(id, 0);
  q.writeUInt16BE(0x0100, 2); // RD
  q.writeUInt16BE(1, 4);
  let off = 12;
  for (const l of labels) {
    q[off++] = l.length;
    off += q.write(l, off, 'ascii');
  }
  q[off++] = 0;
  q.writeUInt16BE(1, off); // A
  q.writeUInt16BE(1, off + 2); // IN
  return q;
}

/** The A records of a reply (the answer section only; names are skipped, not decoded). */
function addresses(buf) {
  const skip = (off) => {
    for (let guard = 0; guard < 128 && off < buf.length; guard++) {
      const len = buf[off];
      if (len === 0) return off + 1;
      if ((len & 0xc0) === 0xc0) return off + 2;
      off += len + 1;
    }
    return buf.length;
  };
  let off = skip(12) + 4;
  const out = [];
  for (let i = 0; i < buf.readUInt16BE(6) && off + 10 <= buf.length; i++) {
    off = skip(off);
    const type = buf.readUInt16BE(off);
    const len = buf.readUInt16BE(off + 8);
    if (type === 1 && len === 4) out.push([...buf.subarray(off + 10, off + 14)].join('.'));
    off += 10 + len;
  }
  return out;
}

const stats = { sent: 0, lost: 0, late: 0, rcodes: {}, empty: 0, unexpected: 0, retried: 0 };
const latencies = [];
/** id → the query waiting for it */
const pending = new Map();
/** id → a lost query, whose answer may still come (ids are not reused, see the check below) */
const gaveUp = new Map();
let tailAnswered = 0;
let nextId = 1;
// Many sockets, as clients are many (glibc even opens one per lookup): when a restarted server
// answers a queued burst at once, one socket's receive buffer (rmem_default, ~200 KB) would drop
// most of the replies before this process reads them, and they would count as unanswered.
const SOCKETS = 32;
const socks = Array.from({ length: SOCKETS }, () => createSocket(args.server.includes(':') ? 'udp6' : 'udp4'));

function send(q) {
  const id = nextId;
  nextId = (nextId % 0xffff) + 1;
  q.id = id;
  q.ids.push(id);
  pending.set(id, q);
  q.timer = setTimeout(() => {
    pending.delete(id);
    if (q.tries < retries) {
      q.tries++;
      if (q.tries === 1) stats.retried++;
      send(q);
    } else {
      stats.lost++;
      for (const old of q.ids) gaveUp.set(old, q);
      done();
    }
  }, timeoutMs);
  socks[id % SOCKETS].send(query(id), port, args.server);
}

/** The longest time without any reply (the server's outage as the client saw it), and when it ended (epoch ms). */
const gap = { ms: 0, end: 0 };
let lastReply = 0;
function replied() {
  const now = Date.now();
  if (lastReply && now - lastReply > gap.ms) Object.assign(gap, { ms: now - lastReply, end: now });
  lastReply = now;
}

const onMessage = (msg) => {
  if (msg.length < 12) return;
  if (gaveUp.has(msg.readUInt16BE(0)) || pending.has(msg.readUInt16BE(0))) replied();
  const late = gaveUp.get(msg.readUInt16BE(0));
  if (late && !late.late) {
    late.late = true;
    stats.late++;
    tally(msg);
    if (stats.late === stats.lost && finished >= total) report();
    return;
  }
  const q = pending.get(msg.readUInt16BE(0));
  if (!q) return;
  pending.delete(q.id);
  clearTimeout(q.timer);
  latencies.push(performance.now() - q.start);
  if (q.n >= total * 0.99) tailAnswered++;
  tally(msg);
  done();
};

function tally(msg) {
  const rcode = RCODES[msg.readUInt16BE(2) & 0xf] ?? 'OTHER';
  stats.rcodes[rcode] = (stats.rcodes[rcode] ?? 0) + 1;
  if (rcode === 'NOERROR') {
    const ips = addresses(msg);
    if (ips.length === 0) stats.empty++;
    else if (args.expect && !ips.includes(args.expect)) stats.unexpected++;
  }
}

let finished = 0;
let total = 0;
let reported = false;
function done() {
  finished++;
  if (finished < total) return;
  if (stats.late === stats.lost) report();
  else setTimeout(report, lateMs);
}

function report() {
  if (reported) return;
  reported = true;
  const sorted = latencies.sort((a, b) => a - b);
  const result = {
    ...stats,
    unanswered: stats.lost - stats.late,
    tail_answered: tailAnswered === total - Math.ceil(total * 0.99),
    answered: latencies.length,
    max_latency_ms: Math.round(sorted.at(-1) ?? 0),
    median_latency_ms: Math.round((sorted[Math.floor(sorted.length / 2)] ?? 0) * 100) / 100,
    max_gap_ms: gap.ms,
    gap_end: gap.end,
  };
  const line = JSON.stringify(result);
  console.log(line);
  if (args.out) writeFileSync(args.out, `${line}\n`);
  for (const sock of socks) sock.close();
  process.exit(0);
}

total = Math.round(rate * seconds);
if (total * (retries + 1) > 0xffff) {
  console.error('at most 65535 query ids per run: lower --rate or --seconds');
  process.exit(2);
}
for (const sock of socks) sock.on('message', onMessage);
let bound = 0;
for (const sock of socks) sock.bind(0, () => ++bound === SOCKETS && start());
function start() {
  if (args.started) writeFileSync(args.started, `${Date.now()}\n`);
  const t0 = performance.now();
  // Every 10 ms, as many as the rate says are due by now: steady even when a turn runs late.
  const tick = setInterval(() => {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
    while (stats.sent < due) {
      stats.sent++;
      send({ start: performance.now(), tries: 0, ids: [], n: stats.sent - 1 });
    }
    if (stats.sent >= total) clearInterval(tick);
  }, 10);
}
