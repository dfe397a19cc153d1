import t from 'tap';
import { readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { startDaemon, waitReady, type RunningDaemon } from '../helpers/daemon.js';
import { decode, query, tcpExchange, udpExchange } from '../helpers/dns.js';

// Hostile DNS-over-TCP clients against a real daemon: one that pipelines thousands of queries
// and never reads the answers, and hundreds that open connections and trickle bytes. The daemon
// must hold bounded memory and connections and keep answering everyone else.

// A service with 360 endpoints: each A answer over TCP is ~6 KB.
const CONFIG = `services:
  - name: big
    endpoints:
${Array.from({ length: 360 }, (_, i) => `      - { address: 10.9.${i >> 7}.${(i & 127) + 1} }`).join('\n')}
  - name: small
    endpoints:
      - { address: 10.0.0.1 }
`;

const framed = (m: Buffer): Buffer => Buffer.concat([Buffer.from([m.length >> 8, m.length & 255]), m]);

const rssKb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

async function shed(d: RunningDaemon, reason: string): Promise<number> {
  const text = await (await fetch(`${d.api}/metrics`)).text();
  return Number(new RegExp(`dns_shed_total\\{reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
}

/** Connects from `local` (a loopback address), resolves once connected or closed. */
function connect(port: number, local = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.on('error', () => undefined);
    s.once('connect', () => resolve(s));
    s.once('close', () => resolve(s));
    s.connect({ port, host: '127.0.0.1', localAddress: local });
  });
}

/** Resolves true when `s` is closed by the other side within `ms`. */
const closedWithin = (s: Socket, ms: number): Promise<boolean> =>
  s.destroyed ? Promise.resolve(true) : new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });

async function answersOthers(t: { equal(a: unknown, b: unknown, m: string): void; ok(a: unknown, m: string): void }, d: RunningDaemon, what: string): Promise<void> {
  const [tcp] = await tcpExchange(d.dnsPort, [query('small.default.cluster.local')]);
  t.equal((decode(tcp!).answers?.[0] as { data?: string } | undefined)?.data, '10.0.0.1', `${what}: another TCP client is answered`);
  const udp = await udpExchange(d.dnsPort, query('small.default.cluster.local'));
  t.ok(udp && decode(udp).answers?.length === 1, `${what}: UDP is answered`);
}

t.test('a client pipelining 10,000 queries and never reading: paused, then closed; memory bounded; others answered', async (t) => {
  const d = await startDaemon(t, { config: CONFIG, args: ['--tcp-idle-timeout', '2s'] });
  await waitReady(d);
  const pid = d.proc.pid!;
  const before = rssKb(pid);
  const s = await connect(d.dnsPort);
  t.teardown(() => s.destroy());
  s.pause(); // never read
  const q = framed(query('big.default.cluster.local'));
  s.write(Buffer.concat(Array.from({ length: 10_000 }, () => q)));
  // Bounded wait for the server to notice and stop reading.
  for (let i = 0; i < 100 && (await shed(d, 'tcp_output_paused')) === 0; i++) await new Promise((r) => setTimeout(r, 100));
  t.equal(await shed(d, 'tcp_output_paused'), 1, 'the server stopped reading from it');
  await answersOthers(t, d, 'while it is paused');
  const grown = (rssKb(pid) - before) / 1024;
  // Unbounded, the answers to 10,000 queries (~60 MB) would sit in the daemon's memory.
  t.ok(grown < 40, `RSS grew ${grown.toFixed(1)} MB`);
  for (let i = 0; i < 100 && (await shed(d, 'tcp_output_full')) === 0; i++) await new Promise((r) => setTimeout(r, 100));
  t.equal(await shed(d, 'tcp_output_full'), 1, 'the server closed it when its answers stayed unread');
  s.resume(); // a paused socket notices nothing
  t.ok(await closedWithin(s, 10_000), 'the client sees it closed');
  await answersOthers(t, d, 'after');
});

t.test('hundreds of trickling connections: per-client and total limits, read deadline, a new client still gets in', async (t) => {
  const d = await startDaemon(t, { config: CONFIG, args: ['--tcp-max-connections', '120', '--tcp-max-connections-per-client', '100', '--tcp-read-timeout', '8s'] });
  await waitReady(d);
  const socks: Socket[] = [];
  t.teardown(() => socks.forEach((s) => s.destroy()));
  // 150 from one address: each sends the first byte of a query and nothing more.
  for (let i = 0; i < 150; i++) {
    const s = await connect(d.dnsPort, '127.0.0.2');
    socks.push(s);
    s.write(Buffer.from([0]));
  }
  // 40 from other addresses take it beyond its total limit.
  for (let i = 0; i < 40; i++) {
    const s = await connect(d.dnsPort, `127.0.1.${i + 1}`);
    socks.push(s);
    s.write(Buffer.from([0]));
  }
  // Bounded wait for the refusals to land. The read deadline (8 s) is long enough that no trickling
  // connection times out while the 190 connect, even on a loaded machine; a short one would free
  // slots and fewer new connections would need to replace old ones.
  for (let i = 0; i < 50 && ((await shed(d, 'tcp_client_limit')) < 50 || (await shed(d, 'tcp_total_limit')) < 20); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(await shed(d, 'tcp_client_limit'), 50, 'one address gets 100 connections, the other 50 are refused');
  t.ok((await shed(d, 'tcp_total_limit')) >= 20, 'beyond 120 in all, new connections replaced old ones');
  await answersOthers(t, d, 'with the server full of trickling connections');
  const open = socks.filter((s) => !s.destroyed);
  t.ok(open.length > 0 && open.length <= 120, `${open.length} still open`);
  const closed = await Promise.all(open.map((s) => closedWithin(s, 15_000)));
  t.ok(closed.every(Boolean), 'each trickling connection is closed at its read deadline');
  t.ok((await shed(d, 'tcp_read_timeout')) >= 1, 'counted');
  await answersOthers(t, d, 'after');
});
