import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { BackendSet, type BackendSpec } from '../../src/lb/backends.js';
import { parseProxyV2 } from '../../src/lb/proxy-protocol.js';
import { NativeTcpProxy } from '../../src/lb/native-tcp-proxy.js';
import { NativeUdpProxy } from '../../src/lb/native-udp-proxy.js';
import { relayAddon, udpRelayAddon } from '../../src/lb/relay-choice.js';
import { TcpProxy, type ConnectionLimit, type TcpProxyOptions } from '../../src/lb/tcp-proxy.js';
import { UdpProxy } from '../../src/lb/udp-proxy.js';
import { nativeSkip } from '../helpers/native.js';
import { until } from '../helpers/until.js';

// Connect refused for sure: nothing listens on port 1 here, and no test's ephemeral port can be 1
// (a port freed by a test could be taken by a parallel test's listener before the proxy dials it).
const REFUSED_PORT = 1;

// The proxies on real loopback sockets, with real backends: what a client and a backend see.
// Every TCP test runs against both proxies: the JS one and the addon's relay (when built).

type Kind = 'js' | 'native';
const relay = relayAddon(false);
const nativeSkipped = nativeSkip() || (relay ? false : 'the native relay is turned off (PODMAN_SWARM_DNS_NATIVE=0 or PODMAN_SWARM_DNS_NATIVE_RELAY=0)');
const KINDS: Kind[] = ['js', 'native'];

type Tap = { teardown(fn: () => unknown): void };

const OPTS: TcpProxyOptions = { idleTimeoutMs: 60_000, connectTimeoutMs: 2000, proxyProtocol: false, attempts: 3 };

async function backend(t: Tap, onConn: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const open = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    open.add(s);
    s.once('close', () => open.delete(s));
    onConn(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => {
    for (const s of open) s.destroy();
    server.close(r);
  }));
  return { server, port: (server.address() as AddressInfo).port };
}

async function proxy(kind: Kind, t: Tap, specs: BackendSpec[], opts: Partial<TcpProxyOptions> = {}, limit?: ConnectionLimit) {
  const policy = { policy: 'round-robin', preferLocal: false, ejectMs: 10_000 } as const;
  const set = new BackendSet(policy, specs);
  const lim = limit ?? { active: 0, max: 1000, refused: 0 };
  const p = kind === 'native' ? new NativeTcpProxy(relay!, set, { ...OPTS, ...opts }, policy, lim) : new TcpProxy(set, { ...OPTS, ...opts }, lim);
  const { port } = await p.listen('127.0.0.1', 0);
  t.teardown(() => p.close(true));
  /** The relay's counters live in the addon: copy them into `set` and `limit` before reading. */
  const sync = () => (p instanceof NativeTcpProxy ? p.refresh() : undefined);
  return { p, set, port, sync };
}

/** Echoes, and ends its side when the client ends its own (as most servers do). */
const echo = (s: Socket) => {
  s.on('data', (d) => s.write(d));
  s.on('end', () => s.end());
};

const spec = (id: string, port: number): BackendSpec => ({ id, host: '127.0.0.1', port, weight: 10, local: true });

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

function readAll(s: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const ended = (s: Socket) => new Promise<void>((r) => (s.readableEnded || s.destroyed ? r() : (s.resume(), s.once('end', () => r()), s.once('close', () => r()))));
const closed = (s: Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));

for (const kind of KINDS) {
  t.test(`${kind} TCP proxy`, { skip: kind === 'native' ? nativeSkipped : false }, async (t) => {
  t.test('large transfers both ways arrive byte for byte; half-close passes the FIN through', async (t) => {
    const up = randomBytes(24 << 20);
    const down = randomBytes(32 << 20);
    let received: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
    const b = await backend(t, (s) => {
      // Reply only after the client's FIN: proves the connection stays open one way after it.
      received = readAll(s).then((all) => {
        s.end(down);
        return all;
      });
    });
    const { port, set, sync } = await proxy(kind, t, [spec('b', b.port)]);
    const c = await dial(port);
    const reply = readAll(c);
    c.end(up);
    const got = await reply;
    t.equal(got.length, down.length, 'client got every byte');
    t.equal(sha(got), sha(down));
    const sent = await received;
    t.equal(sent.length, up.length, 'backend got every byte');
    t.equal(sha(sent), sha(up));
    await closed(c);
    sync();
    const be = set.backends()[0]!;
    t.equal(be.bytesOut, up.length, 'bytes to backend counted');
    t.equal(be.bytesIn, down.length, 'bytes from backend counted');
    t.equal(be.connections, 1);
  });
  
  t.test('a request sent with its FIN at once (before the backend connection is up) is answered', async (t) => {
    const b = await backend(t, echo);
    const { port } = await proxy(kind, t, [spec('b', b.port)]);
    for (let i = 0; i < 20; i++) {
      const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      c.end(`request ${i}`);
      t.equal((await readAll(c)).toString(), `request ${i}`);
      c.destroy();
    }
  });

  t.test('policies: round-robin alternates, least-connections avoids the busy endpoint', async (t) => {
    const named = (name: string) => (s: Socket) => {
      s.write(name);
      s.on('data', () => {});
      s.on('end', () => s.end());
    };
    const a = await backend(t, named('A'));
    const b = await backend(t, named('B'));
    const first = (port: number) => dial(port).then((c) => new Promise<[string, Socket]>((r) => c.once('data', (d: Buffer) => r([d.toString(), c]))));
    const rr = await proxy(kind, t, [spec('A', a.port), spec('B', b.port)]);
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const [name, c] = await first(rr.port);
      seen.push(name);
      c.destroy();
    }
    t.same(seen.slice(1), seen[0] === 'A' ? ['B', 'A', 'B', 'A', 'B'] : ['A', 'B', 'A', 'B', 'A'], 'round-robin alternates');
    const policy = { policy: 'least-connections', preferLocal: false, ejectMs: 10_000 } as const;
    const set = new BackendSet(policy, [spec('A', a.port), spec('B', b.port)]);
    const lim = { active: 0, max: 1000, refused: 0 };
    const p = kind === 'native' ? new NativeTcpProxy(relay!, set, OPTS, policy, lim) : new TcpProxy(set, OPTS, lim);
    const { port } = await p.listen('127.0.0.1', 0);
    t.teardown(() => p.close(true));
    const [held, keep] = await first(port); // stays open: its endpoint has one active connection
    const next: string[] = [];
    for (let i = 0; i < 4; i++) {
      const [name, c] = await first(port);
      next.push(name);
      c.destroy();
      // Wait until the closed one no longer counts as active (the relay's counters: refresh()).
      const busy = () => (p instanceof NativeTcpProxy && p.refresh(), set.backends().some((x) => x.id !== held && x.active > 0));
      await until('the closed connection to leave the active count', () => !busy(), 10_000, 10);
    }
    t.same(next, Array(4).fill(held === 'A' ? 'B' : 'A'), 'least-connections: every new one to the idle endpoint');
    keep.destroy();
  });

  t.test('a slow reader does not make the proxy buffer without bound', async (t) => {
    let pushed = 0;
    let stop = false;
    const b = await backend(t, (s) => {
      const chunk = Buffer.alloc(1 << 20, 7);
      const pump = () => {
        while (!stop && pushed < 256 << 20) {
          pushed += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        s.end();
      };
      s.on('error', () => {});
      pump();
    });
    const { port } = await proxy(kind, t, [spec('b', b.port)]);
    const before = process.memoryUsage();
    const c = await dial(port);
    c.pause(); // a reader that does not read
    await new Promise((r) => setTimeout(r, 1500));
    const stalled = pushed;
    const after = process.memoryUsage();
    t.ok(stalled < 48 << 20, `backend could only push ${(stalled / 2 ** 20).toFixed(1)} MiB of 256 while nobody read`);
    const grown = after.arrayBuffers + after.external - before.arrayBuffers - before.external;
    t.ok(grown < 64 << 20, `buffers grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
    // Reading again resumes the flow to the end.
    let n = 0;
    c.on('data', (d: Buffer) => (n += d.length));
    c.resume();
    await new Promise((r) => c.once('end', r));
    t.equal(n, 256 << 20, 'everything arrives once the reader reads');
    stop = true;
    c.destroy();
  });
  
  t.test('a backend that answers and closes at once: every client gets the reply and its end', { timeout: 60_000 }, async (t) => {
    // The reply and the FIN can arrive before the proxy sees its connect complete; the end must
    // still reach the client at once, not after the (here 10 min) idle timeout.
    const b = await backend(t, (s) => s.end('hi\n'));
    const { port } = await proxy(kind, t, [spec('b', b.port)], { idleTimeoutMs: 600_000 });
    const replies = await Promise.all(Array.from({ length: 300 }, async () => (await readAll(await dial(port))).toString()));
    t.equal(replies.filter((r) => r === 'hi\n').length, 300);
  });

  t.test('a refused endpoint is skipped (the client never notices) and ejected', async (t) => {
    const live = await backend(t, (s) => s.end('live\n'));
    const { port, set, sync } = await proxy(kind, t, [spec('dead', REFUSED_PORT), spec('live', live.port)]);
    for (let i = 0; i < 6; i++) {
      const c = await dial(port);
      t.equal((await readAll(c)).toString(), 'live\n', `connection ${i + 1} reached the live endpoint`);
    }
    sync();
    const d = set.backends().find((b) => b.id === 'dead')!;
    t.equal(d.ejections, 1, 'ejected once');
    t.equal(d.connectFailures, 1, 'not tried again while ejected');
    t.ok(d.ejectedUntil > Date.now());
  });
  
  t.test('bytes the client sent before a refused connect reach the next endpoint', async (t) => {
    // The relay reads the request right after connect() (speculative I/O): when that attempt
    // fails, the bytes already taken from the client must go to the next endpoint.
    const live = await backend(t, echo);
    const { port } = await proxy(kind, t, [spec('dead', REFUSED_PORT), spec('live', live.port)]);
    for (let i = 0; i < 4; i++) {
      const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      c.write(`request ${i} `);
      c.end('and its end');
      t.equal((await readAll(c)).toString(), `request ${i} and its end`);
      c.destroy();
    }
  });

  t.test('every endpoint refusing: the client is closed, not left hanging', async (t) => {
    const { port } = await proxy(kind, t, [spec('dead', REFUSED_PORT)]);
    const c = await dial(port);
    t.equal((await readAll(c)).length, 0);
  });
  
  t.test('idle connections are closed after the idle timeout; active ones are not', async (t) => {
    const b = await backend(t, echo);
    const { port } = await proxy(kind, t, [spec('b', b.port)], { idleTimeoutMs: 400 });
    const idle = await dial(port);
    const busy = await dial(port);
    busy.on('data', () => {});
    const timer = setInterval(() => busy.write('x'), 100);
    t.teardown(() => clearInterval(timer));
    idle.resume();
    await new Promise((r) => idle.once('end', r));
    t.pass('the idle connection was closed (FIN from the proxy)');
    t.notOk(busy.destroyed, 'the busy one is still open');
    clearInterval(timer);
    busy.destroy();
  });
  
  t.test('the connection limit closes connections beyond it', async (t) => {
    const b = await backend(t, echo);
    const limit = { active: 0, max: 2, refused: 0 };
    const { port, sync } = await proxy(kind, t, [spec('b', b.port)], {}, limit);
    // The native relay's limit counts every connection in the process: the previous test's last
    // ones may still be closing on its thread, and would take this test's places.
    await until('connections of earlier tests to leave the relay', () => (sync(), limit.active === 0), 10_000, 20);
    const a = await dial(port);
    const b2 = await dial(port);
    for (const s of [a, b2]) s.write('ping');
    await Promise.all([a, b2].map((s) => new Promise((r) => s.once('data', r))));
    const third = await dial(port);
    await ended(third);
    sync();
    t.equal(limit.refused, 1);
    a.destroy();
    await until('the closed connection to leave the active count', () => (sync(), limit.active <= 1), 10_000, 20);
    const fourth = await dial(port);
    fourth.write('again');
    t.equal((await new Promise<Buffer>((r) => fourth.once('data', r))).toString(), 'again', 'room again after one closed');
    for (const s of [b2, fourth]) s.destroy();
  });
  });
}

t.test('PROXY protocol v2 tells the backend the real client address', async (t) => {
  const header = new Promise<ReturnType<typeof parseProxyV2>>((resolve) => {
    void backend(t, (s) => s.once('data', (d: Buffer) => { resolve(parseProxyV2(d)); s.end(); })).then((b) => start(b.port));
  });
  let client: Socket | undefined;
  async function start(bport: number) {
    const { port } = await proxy('js', t, [spec('b', bport)], { proxyProtocol: true });
    client = await dial(port);
    client.write('hello');
  }
  const h = await header;
  t.ok(h?.ends);
  t.equal(h!.ends!.sourceAddress, '127.0.0.1');
  t.equal(h!.ends!.sourcePort, client!.localPort, 'the client port, not the proxy\'s');
  t.equal(h!.ends!.destPort, client!.remotePort, 'the listener port');
  client!.destroy();
});

// UDP: the same tests against the JS proxy and the addon's UDP relay.
const udpRelay = udpRelayAddon();
const udpSkipped = nativeSkip() || (udpRelay ? false : 'the native relay is turned off (PODMAN_SWARM_DNS_NATIVE=0 or PODMAN_SWARM_DNS_NATIVE_RELAY=0)');

type Udp = ReturnType<typeof createSocket>;

/** UDP backends that answer `<name>:<the session socket's port>:<payload>`. */
async function udpBackends(t: Tap, names: string[]) {
  return Promise.all(names.map(async (name) => {
    const s = createSocket('udp4');
    s.on('message', (m, r) => s.send(`${name}:${r.port}:${m}`, r.port, r.address));
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    t.teardown(() => s.close());
    return { name, port: s.address().port };
  }));
}

async function udpProxy(kind: Kind, t: Tap, specs: BackendSpec[], opts: { idleTimeoutMs: number; maxSessions: number }) {
  const policy = { policy: 'round-robin', preferLocal: false, ejectMs: 10_000 } as const;
  const set = new BackendSet(policy, specs);
  const p = kind === 'native' ? new NativeUdpProxy(udpRelay!, set, opts, policy) : new UdpProxy(set, opts);
  const { port } = await p.listen('127.0.0.1', 0);
  t.teardown(() => p.close());
  return { p, set, port };
}

async function udpClients(t: Tap, n: number): Promise<Udp[]> {
  return Promise.all(Array.from({ length: n }, async () => {
    const c = createSocket('udp4');
    c.on('error', () => {});
    await new Promise<void>((r) => c.bind(0, '127.0.0.1', r));
    t.teardown(() => c.close());
    return c;
  }));
}

/** Sends `msg` to the proxy until a reply comes (UDP may drop), at most `tries` times. */
async function ask(c: Udp, port: number, msg: string, tries = 5): Promise<{ backend: string; session: string; payload: string }> {
  for (let i = 0; i < tries; i++) {
    const reply = new Promise<string | null>((r) => {
      const timer = setTimeout(() => (c.off('message', on), r(null)), 1000);
      const on = (m: Buffer) => (clearTimeout(timer), r(m.toString()));
      c.once('message', on);
    });
    c.send(msg, port, '127.0.0.1');
    const got = await reply;
    if (got !== null) {
      const [backend, session, payload] = got.split(':') as [string, string, string];
      return { backend, session, payload };
    }
  }
  throw new Error(`no reply to ${msg} after ${tries} tries`);
}

for (const kind of KINDS) {
  t.test(`${kind} UDP proxy`, { skip: kind === 'native' ? udpSkipped : false }, async (t) => {
    t.test('each client keeps its backend for the session; sessions end when idle', async (t) => {
      const servers = await udpBackends(t, ['one', 'two']);
      const { p, set, port } = await udpProxy(kind, t, servers.map((s) => spec(s.name, s.port)), { idleTimeoutMs: 500, maxSessions: 100 });
      const [a, b] = await udpClients(t, 2);
      const first = await ask(a!, port, 'a1');
      const again = await ask(a!, port, 'a2');
      t.equal(again.backend, first.backend, 'same client, same backend');
      t.equal(again.session, first.session, 'same session socket');
      t.equal(again.payload, 'a2', 'payload relayed both ways');
      const other = await ask(b!, port, 'b1');
      t.not(other.backend, first.backend, 'the next client goes to the next backend');
      t.equal(p.sessionCount, 2);
      p.refresh();
      t.same(set.backends().map((x) => x.connections), [1, 1], 'one session per backend counted');
      t.equal(set.backends().reduce((n, x) => n + x.bytesOut, 0), 6, 'bytes to the backends counted');
      // Idle timeout 500 ms: both sessions are gone well within 10 s (the bound only stops a hang).
      await until('both idle UDP sessions to end', () => p.sessionCount === 0, 10_000, 100);
      t.pass('idle sessions ended');
      const next = await ask(a!, port, 'a3');
      t.equal(next.payload, 'a3', 'a new datagram opens a new session');
      t.not(next.session, first.session, 'on a new session socket');
    });

    t.test('a busy session is not ended by the idle timeout', async (t) => {
      const servers = await udpBackends(t, ['one']);
      const { p, port } = await udpProxy(kind, t, [spec('one', servers[0]!.port)], { idleTimeoutMs: 400, maxSessions: 100 });
      const [c] = await udpClients(t, 1);
      const first = await ask(c!, port, 'x0');
      for (let i = 1; i <= 8; i++) {
        await new Promise((r) => setTimeout(r, 150));
        t.equal((await ask(c!, port, `x${i}`)).session, first.session, `datagram ${i} on the same session`);
      }
      t.equal(p.sessionCount, 1);
    });

    t.test('an endpoint that leaves: its clients move to another at their next datagram', async (t) => {
      const servers = await udpBackends(t, ['one', 'two']);
      const { p, set, port } = await udpProxy(kind, t, servers.map((s) => spec(s.name, s.port)), { idleTimeoutMs: 60_000, maxSessions: 100 });
      const [a] = await udpClients(t, 1);
      const first = await ask(a!, port, 'a1');
      const stays = servers.find((s) => s.name !== first.backend)!;
      set.update([spec(stays.name, stays.port)]);
      p.backendsChanged();
      const next = await ask(a!, port, 'a2');
      t.equal(next.backend, stays.name, 'moved to the endpoint that stays');
      t.equal(p.sessionCount, 1, 'the old session ended');
    });

    t.test('at the session bound the least recently used session ends for the new client', async (t) => {
      const servers = await udpBackends(t, ['one']);
      const { p, port } = await udpProxy(kind, t, [spec('one', servers[0]!.port)], { idleTimeoutMs: 60_000, maxSessions: 2 });
      const [a, b, c] = await udpClients(t, 3);
      const a1 = await ask(a!, port, 'a1');
      const b1 = await ask(b!, port, 'b1');
      const a2 = await ask(a!, port, 'a2'); // a is now the more recently used
      t.equal(a2.session, a1.session);
      const c1 = await ask(c!, port, 'c1');
      t.equal(c1.payload, 'c1', 'the new client is served');
      t.equal(p.sessionCount, 2, 'never more sessions than the bound');
      t.equal(p.evicted, 1, 'the eviction is counted');
      t.equal((await ask(a!, port, 'a3')).session, a1.session, 'the recently used session was kept');
      t.equal(p.evicted, 1);
      const b2 = await ask(b!, port, 'b2');
      t.not(b2.session, b1.session, 'the least recently used one had ended: a new session');
      t.equal(p.evicted, 2, 'which took the place of the now least recently used (c)');
      t.equal(p.sessionCount, 2);
    });

    t.test('IPv6: a listener on ::1 relays to an IPv6 endpoint and back', async (t) => {
      const server = createSocket('udp6');
      server.on('message', (m, r) => server.send(`six:${r.port}:${m}`, r.port, r.address));
      await new Promise<void>((r) => server.bind(0, '::1', r));
      t.teardown(() => server.close());
      const policy = { policy: 'round-robin', preferLocal: false, ejectMs: 10_000 } as const;
      const set = new BackendSet(policy, [{ id: 'six', host: '::1', port: server.address().port, weight: 1, local: true }]);
      const opts = { idleTimeoutMs: 60_000, maxSessions: 10 };
      const p = kind === 'native' ? new NativeUdpProxy(udpRelay!, set, opts, policy) : new UdpProxy(set, opts);
      const { port } = await p.listen('::1', 0);
      t.teardown(() => p.close());
      const c = createSocket('udp6');
      await new Promise<void>((r) => c.bind(0, '::1', r));
      t.teardown(() => c.close());
      const reply = new Promise<string>((r) => c.once('message', (m) => r(m.toString())));
      c.send('hello', port, '::1');
      t.match(await reply, /^six:\d+:hello$/);
      t.equal(p.sessionCount, 1);
    });

    t.test('an endpoint that refuses (ICMP port unreachable) is ejected; the client moves on', async (t) => {
      const servers = await udpBackends(t, ['live']);
      const { p, set, port } = await udpProxy(kind, t, [spec('dead', REFUSED_PORT), spec('live', servers[0]!.port)], { idleTimeoutMs: 60_000, maxSessions: 100 });
      const clients = await udpClients(t, 2);
      // Round-robin: one of the two clients starts on the dead endpoint; its first datagram is
      // lost, the refusal ends that session, and a retry goes to the live one.
      for (const [i, c] of clients.entries()) t.equal((await ask(c, port, `q${i}`, 10)).backend, 'live', `client ${i} answered by the live endpoint`);
      p.refresh();
      const dead = set.backends().find((b) => b.id === 'dead')!;
      t.equal(dead.ejections, 1, 'ejected');
      t.ok(dead.ejectedUntil > Date.now(), 'for a while');
      t.equal(dead.active, 0, 'no session left on it');
    });
  });
}
