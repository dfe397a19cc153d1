import t from 'tap';
import { createSocket } from 'node:dgram';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { startDaemon } from '../helpers/daemon.js';
import { digShort } from '../helpers/dns.js';
import { nativeSkip } from '../helpers/native.js';
import { expectLog } from '../helpers/until.js';

// The load balancer inside the real daemon, following API registrations live. Unprivileged: the
// service range is inside 127.0.0.0/8, where loopback answers for every address without a link.

type Tap = { teardown(fn: () => unknown): void };

/** A backend that says its name on connect, then echoes. */
async function named(t: Tap, name: string): Promise<number> {
  const open = new Set<Socket>();
  const server = createServer((s) => {
    open.add(s);
    s.once('close', () => open.delete(s));
    s.on('error', () => {});
    s.write(`${name}\n`);
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => {
    for (const s of open) s.destroy();
    server.close(r);
  }));
  return (server.address() as AddressInfo).port;
}

/** Connects, returns the first line and the open socket. */
function hello(host: string, port: number): Promise<{ name: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    s.once('error', reject);
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      s.off('data', onData);
      resolve({ name: buf.slice(0, nl), socket: s });
    };
    s.on('data', onData);
    s.once('end', () => reject(new Error('closed before a name')));
  });
}

async function names(host: string, port: number, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    try {
      const { name, socket } = await hello(host, port);
      out.push(name);
      socket.destroy();
    } catch {
      out.push('-');
    }
  }
  return out;
}

async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  let v = await fn();
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    v = await fn();
  }
  return v;
}

t.test('VIP in DNS; listeners and backends follow API registrations; removed endpoints drain', async (t) => {
  const [pa, pb] = [await named(t, 'A'), await named(t, 'B')];
  const d = await startDaemon(t, { args: ['--service-cidr', '127.66.0.0/16', '--default-mode', 'vip'] });
  const api = `${d.api}/api/v1/services/default/web/endpoints`;
  const register = (id: string, port: number) =>
    fetch(api, { method: 'POST', headers: { 'content-type': 'application/json', ...d.auth() }, body: JSON.stringify({ id, address: '127.0.0.1', ports: { http: `${port}/tcp` } }) });
  t.equal((await register('a', pa)).status, 201);

  const [vip] = await digShort(d.dnsPort, 'web.default.cluster.local');
  t.match(vip, /^127\.66\.\d+\.\d+$/, 'DNS answers the VIP, not the endpoint');
  const svc = (await (await fetch(`${d.api}/api/v1/services/default/web`)).json()) as { vip: string };
  t.equal(svc.vip, vip, 'the API shows the same VIP');
  t.same(await digShort(d.dnsPort, '-x', vip!), ['web.default.svc.cluster.local.'], 'PTR of the VIP names the service');

  t.same(await eventually(() => names(vip!, pa, 2), (v) => v.every((n) => n === 'A')), ['A', 'A'], 'the VIP reaches the endpoint');

  t.equal((await register('b', pb)).status, 201);
  const both = await eventually(() => names(vip!, pa, 4), (v) => v.includes('B'));
  t.same([...new Set(both)].sort(), ['A', 'B'], `a new endpoint gets traffic without a restart: ${both.join(' ')}`);

  // Hold a connection to B, then deregister B.
  let held: Socket | undefined;
  for (let i = 0; i < 4 && !held; i++) {
    const c = await hello(vip!, pa);
    if (c.name === 'B') held = c.socket;
    else c.socket.destroy();
  }
  t.ok(held, 'got a connection to B');
  t.equal((await fetch(`${api}/b`, { method: 'DELETE', headers: d.auth() })).status, 204);
  const after = await eventually(() => names(vip!, pa, 4), (v) => v.every((n) => n === 'A'));
  t.same(after, ['A', 'A', 'A', 'A'], 'a removed endpoint gets no new connections');
  const echoed = new Promise<string>((r) => held!.once('data', (b) => r(b.toString())));
  held!.write('still there?');
  t.equal(await echoed, 'still there?', 'the open connection to the removed endpoint drains normally');
  held!.destroy();

  const metrics = await (await fetch(`${d.api}/metrics`)).text();
  t.match(metrics, new RegExp(`podman_swarm_dns_lb_connections_total\\{service="default/web",listener="tcp:${vip!.replace(/\./g, '\\.')}:${pa}",backend="127\\.0\\.0\\.1:${pa}"\\} [1-9]`));
  t.match(metrics, /podman_swarm_dns_lb_active_connections\{/);
  const status = (await (await fetch(`${d.api}/api/v1/status`)).json()) as { lb: { listeners: unknown[] } };
  t.match(status.lb.listeners, [{ service: 'default/web', listen: `tcp:${vip}:${pa}`, endpoints: 1 }]);

  t.equal((await fetch(`${api}/a`, { method: 'DELETE', headers: d.auth() })).status, 204);
  const gone = await eventually(() => names(vip!, pa, 1), (v) => v[0] === '-');
  t.same(gone, ['-'], 'the last endpoint gone: the listener is gone');
  await eventually(async () => d.logs(), (l) => /no longer on/.test(l), 3000);
  await expectLog(t, d, /load balancer: default\/web no longer on/);
});

t.test('a service in dnsrr mode keeps its endpoint addresses; bad --ingress stops the start', async (t) => {
  const d = await startDaemon(t, { args: ['--service-cidr', '127.67.0.0/16'], config: 'services:\n  - name: db\n    endpoints:\n      - address: 10.0.0.5\n        ports: { pg: 5432/tcp }\n' });
  t.same(await digShort(d.dnsPort, 'db.default.cluster.local'), ['10.0.0.5']);
  const bad = await startDaemon(t, { args: ['--ingress', 'not a service'], wait: false });
  t.equal(await bad.exitCode(), 2);
  await expectLog(t, bad, /--ingress "not a service": expected <namespace>\/<service>:<port>/);
});

// A UDP port on a VIP, in the daemon: the addon's UDP relay when it is built, and the JS proxy
// with PODMAN_SWARM_DNS_NATIVE_RELAY=0; the same behaviour from both.
for (const kind of ['native', 'js'] as const) {
  t.test(`${kind} UDP VIP: datagrams relayed, a session moves when its endpoint leaves, the session bound counted`, { skip: kind === 'native' ? nativeSkip() : false }, async (t) => {
    const [a, b] = await Promise.all(['A', 'B'].map(async (name) => {
      const s = createSocket('udp4');
      s.on('message', (m, r) => s.send(`${name}:${m}`, r.port, r.address));
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
      t.teardown(() => s.close());
      return s.address().port;
    }));
    const env: Record<string, string> = kind === 'js' ? { PODMAN_SWARM_DNS_NATIVE_RELAY: '0' } : {};
    const cidr = kind === 'js' ? '127.73.0.0/16' : '127.74.0.0/16';
    const d = await startDaemon(t, { env, args: ['--service-cidr', cidr, '--default-mode', 'vip', '--lb-udp-max-sessions', '2'] });
    const api = `${d.api}/api/v1/services/default/echo/endpoints`;
    const register = (id: string, port: number) =>
      fetch(api, { method: 'POST', headers: { 'content-type': 'application/json', ...d.auth() }, body: JSON.stringify({ id, address: '127.0.0.1', ports: { echo: `${port}/udp` } }) });
    t.equal((await register('a', a!)).status, 201);
    const [vip] = await eventually(() => digShort(d.dnsPort, 'echo.default.cluster.local'), (v) => v.length === 1);
    const clients = await Promise.all([0, 1, 2].map(async () => {
      const c = createSocket('udp4');
      c.on('error', () => {});
      await new Promise<void>((r) => c.bind(0, '127.0.0.1', r));
      t.teardown(() => c.close());
      return c;
    }));
    /** Sends to VIP:<A's port> until a reply comes, at most 20 times (a listener may be starting). */
    const ask = async (c: (typeof clients)[0], msg: string): Promise<string> => {
      for (let i = 0; i < 20; i++) {
        const got = new Promise<string | null>((r) => {
          const timer = setTimeout(() => (c.off('message', on), r(null)), 500);
          const on = (m: Buffer) => (clearTimeout(timer), r(m.toString()));
          c.once('message', on);
        });
        c.send(msg, a!, vip!);
        const reply = await got;
        if (reply !== null) return reply;
      }
      return '-';
    };
    t.equal(await ask(clients[0]!, 'one'), 'A:one', 'relayed to the endpoint and back');
    const threads = readdirSync(`/proc/${d.proc.pid}/task`).map((id) => readFileSync(`/proc/${d.proc.pid}/task/${id}/comm`, 'utf8').trim());
    t.equal(threads.includes('psdns-udp-relay'), kind === 'native', `the addon's UDP relay thread ${kind === 'native' ? 'serves' : 'is not started'}`);
    // B joins (the listener stays on A's port number, the first endpoint's). Two new clients:
    // round-robin puts one of their sessions on B; the second one is over the bound of 2 and
    // replaces the first client's session (the least recently used).
    t.equal((await register('b', b!)).status, 201);
    const metricsText = async () => (await fetch(`${d.api}/metrics`)).text();
    await eventually(metricsText, (m) => m.includes(`backend="127.0.0.1:${b}"`));
    const replies = [await ask(clients[1]!, 'two'), await ask(clients[2]!, 'three')];
    t.same(replies.map((r) => r.slice(2)).sort(), ['three', 'two'], 'both new clients served');
    const i = replies.findIndex((r) => r.startsWith('B:'));
    t.ok(i >= 0, `one of them on the endpoint that joined (${replies.join(', ')})`);
    t.equal((await fetch(`${api}/b`, { method: 'DELETE', headers: d.auth() })).status, 204);
    const moved = await eventually(() => ask(clients[1 + i]!, 'four'), (r) => r === 'A:four');
    t.equal(moved, 'A:four', 'B left: its client moved to A at its next datagram');
    t.match(await metricsText(), /podman_swarm_dns_lb_udp_sessions_evicted_total [1-9]/, 'and the session it replaced counted');
  });
}
