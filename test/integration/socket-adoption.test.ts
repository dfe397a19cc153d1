import t from 'tap';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { startDaemon } from '../helpers/daemon.js';
import { decode, query, tcpExchange, udpExchange } from '../helpers/dns.js';
import { freePort } from '../helpers/ports.js';
import { until, expectLog } from '../helpers/until.js';

// Sockets handed over as systemd passes stored ones (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID of
// the daemon's own process; the descriptors are real sockets this test bound): the daemon
// serves them instead of binding, and closes one the configuration no longer asks for. Under a
// real systemd: test/e2e/restart.test.ts.

const CONFIG = 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.7\n';

const fdOf = (h: UdpSocket | Server): number => {
  const sym = Object.getOwnPropertySymbols(h).find((s) => s.description === 'state symbol');
  const handle = sym ? (h as unknown as Record<symbol, { handle: { fd: number } }>)[sym]!.handle : (h as unknown as { _handle: { fd: number } })._handle;
  return handle.fd;
};

async function udpOn(port: number): Promise<UdpSocket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind({ address: '127.0.0.1', port }, () => r()));
  return s;
}

async function tcpOn(port: number): Promise<Server> {
  const s = createServer();
  await new Promise<void>((r) => s.listen({ host: '127.0.0.1', port }, () => r()));
  return s;
}

for (const native of [true, false]) {
  t.test(`stored sockets are served, a stale one closed (${native ? 'native' : 'JS'} path)`, async (t) => {
    const port = await freePort();
    const stalePort = await freePort();
    const udp = await udpOn(port);
    const tcp = await tcpOn(port);
    const stale = await udpOn(stalePort);
    const closed = new Set<UdpSocket | Server>();
    const shut = (h: UdpSocket | Server): void => {
      if (!closed.has(h)) h.close();
      closed.add(h);
    };
    t.teardown(() => [udp, tcp, stale].forEach(shut));
    const d = await startDaemon(t, {
      config: CONFIG,
      // This test holds the port too: binding it anew would fail (EADDRINUSE), serving the passed sockets cannot.
      args: ['--dns-listen', `127.0.0.1:${port}`],
      fds: [fdOf(udp), fdOf(tcp), fdOf(stale)],
      wrap: ['sh', '-c', 'LISTEN_PID=$$ exec "$@"', 'sh'],
      env: {
        ...(native ? {} : { PODMAN_SWARM_DNS_NATIVE: '0' }),
        LISTEN_FDS: '3',
        LISTEN_FDNAMES: `dns-udp/127.0.0.1/${port}:dns-tcp/127.0.0.1/${port}:dns-udp/127.0.0.1/${stalePort}`,
      },
    });
    // The test's own copies stop reading, so only the daemon answers.
    shut(udp);
    shut(tcp);
    const viaUdp = await until('an answer over the passed UDP socket', async () => {
      const r = await udpExchange(port, query('web.default.cluster.local'), { timeoutMs: 1000 });
      return r ? decode(r) : undefined;
    }, 10_000);
    const ips = (d: ReturnType<typeof decode>): unknown[] => (d.answers ?? []).map((a) => (a as { data: unknown }).data);
    t.same(ips(viaUdp), ['10.0.0.7']);
    const [viaTcp] = await tcpExchange(port, [query('web.default.cluster.local')]);
    t.same(ips(decode(viaTcp!)), ['10.0.0.7'], 'and over the passed TCP socket');
    await expectLog(t, d, /systemd passed 3 stored sockets from the previous run/);
    await expectLog(t, d, new RegExp(`closed the stored socket dns-udp/127\\.0\\.0\\.1/${stalePort}: the configuration no longer asks for it`), 'the stale one is closed and logged');
    shut(stale);
    const again = createSocket('udp4');
    t.teardown(() => again.close());
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.bind({ address: '127.0.0.1', port: stalePort, exclusive: true }, () => resolve());
    });
    t.pass('nothing holds the stale address any more');
  });
}
