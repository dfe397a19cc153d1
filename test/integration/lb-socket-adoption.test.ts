import t from 'tap';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server } from 'node:net';
import { parseCidr } from '../../src/net/cidr.js';
import { allocateVips } from '../../src/lb/vip.js';
import { startDaemon, waitReady, type RunningDaemon } from '../helpers/daemon.js';
import { freePort } from '../helpers/ports.js';
import { until } from '../helpers/until.js';

// The load balancer's VIP sockets handed over as systemd passes stored ones after a restart
// (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID of the daemon's own process; the descriptors are real
// sockets this test bound on the VIP). A connection attempt and a datagram sent to the VIP
// before the daemon serves them wait in those sockets and are relayed once it is up; a stored
// socket that does not fit its name is closed and a new one bound. Under a real systemd
// restart: test/e2e/restart.test.ts.

const CIDR = '127.72.0.0/16';
const VIP = allocateVips(['default/echo'], parseCidr(CIDR)!).get('default/echo')!;

const fdOf = (h: UdpSocket | Server): number => {
  const sym = Object.getOwnPropertySymbols(h).find((s) => s.description === 'state symbol');
  const handle = sym ? (h as unknown as Record<symbol, { handle: { fd: number } }>)[sym]!.handle : (h as unknown as { _handle: { fd: number } })._handle;
  return handle.fd;
};

async function udpOn(host: string, port: number): Promise<UdpSocket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind({ address: host, port }, () => r()));
  return s;
}

async function tcpOn(host: string, port: number): Promise<Server> {
  const s = createServer((c) => c.pipe(c));
  await new Promise<void>((r) => s.listen({ host, port }, () => r()));
  return s;
}

/** TCP and UDP echo endpoints on loopback; the service `echo` with port `t` (TCP) and `u` (UDP) on them. */
async function backends(t: { teardown(fn: () => unknown): void }): Promise<{ config: string }> {
  const [pt, pu] = [await freePort(), await freePort()];
  const tcp = await tcpOn('127.0.0.1', pt);
  const udp = await udpOn('127.0.0.1', pu);
  udp.on('message', (m, r) => udp.send(m, r.port, r.address));
  t.teardown(() => {
    tcp.close();
    udp.close();
  });
  return { config: `services:\n  - name: echo\n    endpoints:\n      - address: 127.0.0.1\n        ports: { t: ${pt}/tcp, u: ${pu}/udp }\n` };
}

/** One TCP exchange through the VIP: what came back (bounded by `ms`). */
function tcpEcho(port: number, text: string, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const c = connect({ host: VIP, port });
    let got = '';
    const done = (): void => {
      clearTimeout(timer);
      c.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, ms);
    c.on('data', (b) => {
      got += b.toString();
      if (got.length >= text.length) done();
    });
    c.on('error', done);
    c.write(text);
  });
}

/** One datagram to the VIP, never resent: the reply, or '' (bounded by `ms`). */
function udpEcho(port: number, text: string, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const done = (got: string): void => {
      clearTimeout(timer);
      s.close();
      resolve(got);
    };
    const timer = setTimeout(() => done(''), ms);
    s.on('message', (m) => done(m.toString()));
    s.send(text, port, VIP);
  });
}

/** The daemon's output reaches this process some time after its API answers. */
const logged = (d: RunningDaemon, re: RegExp): Promise<boolean> => until(`a log line ${re}`, () => re.test(d.logs()), 10_000);

const ports = (config: string): { pt: number; pu: number } => {
  const m = /t: (\d+)\/tcp, u: (\d+)\/udp/.exec(config)!;
  return { pt: Number(m[1]), pu: Number(m[2]) };
};

for (const native of [true, false]) {
  const env: Record<string, string> = native ? {} : { PODMAN_SWARM_DNS_NATIVE: '0' };
  // One relay thread: the relay serves one socket per thread, and this test passes one.
  const args = ['--service-cidr', CIDR, '--default-mode', 'vip', '--lb-threads', '1'];

  t.test(`queued connection and datagram on stored VIP sockets are relayed (${native ? 'native relay' : 'JS proxy'})`, async (t) => {
    const { config } = await backends(t);
    const { pt, pu } = ports(config);
    const stalePort = await freePort();
    const tcp = await tcpOn(VIP, pt);
    const udp = await udpOn(VIP, pu);
    const stale = await udpOn(VIP, stalePort);
    const closed = new Set<UdpSocket | Server>();
    const shut = (h: UdpSocket | Server): void => {
      if (!closed.has(h)) h.close();
      closed.add(h);
    };
    t.teardown(() => [tcp, udp, stale].forEach(shut));
    const d = await startDaemon(t, {
      config,
      args,
      wait: false,
      fds: [fdOf(tcp), fdOf(udp), fdOf(stale)],
      wrap: ['sh', '-c', 'LISTEN_PID=$$ exec "$@"', 'sh'],
      env: { ...env, LISTEN_FDS: '3', LISTEN_FDNAMES: `lb-tcp/${VIP}/${pt}:lb-udp/${VIP}/${pu}:lb-udp/${VIP}/${stalePort}` },
    });
    // From here only the daemon's copies are left: what is sent now waits in them until it serves.
    shut(tcp);
    shut(udp);
    const [viaTcp, viaUdp] = await Promise.all([tcpEcho(pt, 'sent while starting', 20_000), udpEcho(pu, 'one datagram', 20_000)]);
    await waitReady(d);
    t.equal(viaTcp, 'sent while starting', 'the connection made before the daemon served was accepted and relayed');
    t.equal(viaUdp, 'one datagram', 'the datagram sent before the daemon served got its reply, without a resend');
    await logged(d, /systemd passed 3 stored sockets from the previous run/);
    await logged(d, new RegExp(`closed the stored socket lb-udp/${VIP.replace(/\./g, '\\.')}/${stalePort}: the configuration no longer asks for it`));
    t.pass('the stale one is closed and logged');
    t.notMatch(d.logs(), /cannot listen on/, 'no VIP socket was bound anew');
    shut(stale);
    const again = createSocket('udp4');
    t.teardown(() => again.close());
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.bind({ address: VIP, port: stalePort, exclusive: true }, () => resolve());
    });
    t.pass('nothing holds the stale address any more');
  });

  t.test(`a stored VIP socket that does not fit its name is closed, a new one bound (${native ? 'native relay' : 'JS proxy'})`, async (t) => {
    const { config } = await backends(t);
    const { pt, pu } = ports(config);
    // Named for VIP:pt/tcp, but bound to another port.
    const wrong = await tcpOn(VIP, await freePort());
    t.teardown(() => wrong.close());
    const d = await startDaemon(t, {
      config,
      args,
      fds: [fdOf(wrong)],
      wrap: ['sh', '-c', 'LISTEN_PID=$$ exec "$@"', 'sh'],
      env: { ...env, LISTEN_FDS: '1', LISTEN_FDNAMES: `lb-tcp/${VIP}/${pt}` },
    });
    wrong.close();
    await logged(d, new RegExp(`closed the stored socket lb-tcp/${VIP.replace(/\./g, '\\.')}/${pt}: .*bound to ${VIP.replace(/\./g, '\\.')}:\\d+; binding a new one`));
    t.pass('the misfit is closed and logged');
    const echoed = await until('an echo through the VIP', () => tcpEcho(pt, 'fresh', 2000), 10_000);
    t.equal(echoed, 'fresh', 'the VIP is served on a new socket');
    t.equal(await udpEcho(pu, 'udp too', 5000), 'udp too', 'and its UDP port, which had no stored socket');
  });
}
