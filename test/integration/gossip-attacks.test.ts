import t from 'tap';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, runCli, type RunningDaemon } from '../helpers/daemon.js';
import { digShort } from '../helpers/dns.js';
import { freePort } from '../helpers/ports.js';
import { waiter, expectLog } from '../helpers/until.js';
import { keygen } from '../../src/commands/keygen.js';
import { alivePayload, WIRE_VERSION, type Message } from '../../src/gossip/codec.js';
import { Keyring, Wire } from '../../src/gossip/crypto.js';
import { realClock } from '../../src/gossip/clock.js';
import { NodeIdentity } from '../../src/gossip/identity.js';
import { signState } from '../../src/sync/registry-sync.js';
import { diff, encodeBody } from '../../src/sync/delta.js';
import { DELTA, NOTICE, updateOut } from '../../src/sync/update.js';
import type { NodeState } from '../../src/registry/types.js';

const until = waiter(30_000);

// Attacks on the gossip layer of real daemons on loopback, by a rogue built from the project's
// own codec: it holds the cluster key (a member, or whoever stole the key) but not the other
// nodes' signing keys. It tries to take over a node's state, to evict a node with forged deaths
// and leaves, to replay packets captured before a restart, and to exhaust memory through the
// gossip TCP port.

const dir = mkdtempSync(join(tmpdir(), 'i15-gossip-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const keyFile = join(dir, 'key');
writeFileSync(keyFile, `${keygen()}\n`);

interface Node {
  d: RunningDaemon;
  port: number;
  stateDir: string;
}

async function node(t: { teardown(fn: () => unknown): void }, name: string, opts: { join?: number[]; port?: number; stateDir?: string; args?: string[] } = {}): Promise<Node> {
  const port = opts.port ?? (await freePort());
  const stateDir = opts.stateDir ?? mkdtempSync(join(dir, `${name}-`));
  const args = [
    '--node-name', name, '--gossip-listen', `127.0.0.1:${port}`, '--advertise-address', '127.0.0.1', '--gossip-key-file', keyFile, '--state-dir', stateDir,
    ...(opts.join?.length ? ['--join', opts.join.map((p) => `127.0.0.1:${p}`).join(',')] : []),
    ...(opts.args ?? []),
  ];
  return { d: await startDaemon(t, { args }), port, stateDir };
}

const register = (n: Node, svc: string, id: string, address: string) =>
  fetch(`${n.d.api}/api/v1/services/default/${svc}/endpoints`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...n.d.auth() },
    body: JSON.stringify({ id, address, ports: { http: '8080/tcp' }, health: 'none' }),
  });
const answers = async (n: Node, svc: string) => (await digShort(n.d.dnsPort, `${svc}.default.cluster.local`)).sort();
interface MemberJson { id: string; name: string; state: string; incarnation: number; version: number | null; endpoints: number }
const members = async (n: Node): Promise<MemberJson[]> => JSON.parse((await runCli(['members', '--json', '--api-socket', n.d.socket])).stdout);
const member = async (n: Node, name: string) => (await members(n)).find((m) => m.name === name);
const rejected = async (n: Node, reason: string): Promise<number> => {
  const text = await (await fetch(`${n.d.api}/metrics`)).text();
  return Number(new RegExp(`podman_swarm_dns_gossip_rejected_total\\{reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
};
const rssKb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

/** A keyed member of our own making: sends sealed packets, collects what it is answered. */
class Rogue {
  readonly identity = NodeIdentity.generate();
  readonly wire = new Wire(Keyring.parse(readFileSync(keyFile, 'utf8')), realClock);
  readonly sock = createSocket('udp4');
  readonly received: Message[] = [];
  port = 0;

  async start(): Promise<void> {
    await new Promise<void>((r) => this.sock.bind(0, '127.0.0.1', () => r()));
    this.port = this.sock.address().port;
    this.sock.on('message', (m) => {
      try {
        this.received.push(...this.wire.open(m));
      } catch {
        /* not for us */
      }
    });
  }

  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }

  seal(msgs: Message[]): Uint8Array {
    return this.wire.seal(msgs);
  }

  send(to: Node, packet: Uint8Array): void {
    this.sock.send(packet, to.port, '127.0.0.1');
  }
}

t.test('a rogue member with the cluster key against a cluster of daemons', async (t) => {
  const top = t;
  const a = await node(t, 'alpha');
  const b = await node(t, 'bravo', { join: [a.port] });
  const c = await node(t, 'charlie', { join: [a.port] });
  for (const n of [a, b, c]) await until('3 alive members', async () => (await members(n)).filter((m) => m.state === 'alive').length === 3);
  t.equal((await register(b, 'db', 'db-1', '10.9.0.2')).status, 201);
  for (const n of [a, c]) await until('db everywhere', async () => (await answers(n, 'db')).includes('10.9.0.2'));
  const victim = (await member(a, 'bravo'))!;
  t.match(victim.id, /^[0-9a-f]{32}$/, 'node ids are derived from the node keys');
  const rogue = new Rogue();
  await rogue.start();
  t.teardown(() => rogue.sock.close());

  await t.test("a delta or a notice sent under another node's id, or an alive at incarnation 2^53-1, is refused", async (t) => {
    // A version within bounds (one far ahead is refused before its signature is looked at).
    const forged: NodeState = {
      id: victim.id, name: 'bravo', address: '127.0.0.1', incarnation: 0, version: Date.now() + 1000,
      endpoints: [{ id: 'db-1', namespace: 'default', service: 'db', hostname: 'db-1', addresses: ['10.6.6.6'], explicit: true, ports: {}, weight: 10, health: 'none', healthy: true, source: 'api', lastSeen: 0 }],
    };
    const alive = { id: victim.id, name: 'bravo', addr: rogue.addr, inc: 2 ** 53 - 1 };
    const before = await rejected(a, 'signature');
    for (const n of [a, c]) {
      // Two versions: the delta and the notice of one version share an update id (a push of the
      // second would be a copy of the first to the broadcast tree).
      const s = signState(rogue.identity, forged);
      const later = { ...forged, version: forged.version + 1 };
      const s2 = signState(rogue.identity, later);
      rogue.send(n, rogue.seal([{ t: 'push', from: rogue.identity.id, data: updateOut({ type: DELTA, id: victim.id, version: forged.version, back: 0 }, s.sig, encodeBody(diff(undefined, forged))) }]));
      rogue.send(n, rogue.seal([{ t: 'push', from: rogue.identity.id, data: updateOut({ type: NOTICE, id: victim.id, version: later.version, back: 0 }, s2.h.stateHash, s2.h.bodyHash, s2.sig) }]));
      rogue.send(n, rogue.seal([{ t: 'alive', ...alive, proof: rogue.identity.prove(alivePayload(alive)) }]));
    }
    await until('all three refused on alpha', async () => (await rejected(a, 'signature')) >= before + 3);
    // The counter is read over the API, the log through the daemon's stdout: wait for the lines.
    for (const line of [/a delta of node [0-9a-f]{32} not signed by that node's key: dropped/, /an alive for node [0-9a-f]{32} not signed by that node's key: dropped/]) {
      await until(`the log line ${line.source}`, async () => line.test(a.d.logs())).catch(() => undefined);
      await expectLog(t, a.d, line);
    }
    for (const n of [a, c]) t.same(await answers(n, 'db'), ['10.9.0.2'], "the victim's endpoint is intact");
    t.equal((await member(a, 'bravo'))?.incarnation, victim.incarnation, 'and its incarnation');
    // The victim's own updates still go through.
    t.equal((await register(b, 'db', 'db-2', '10.9.0.3')).status, 201);
    for (const n of [a, c]) await until('the victim updates', async () => (await answers(n, 'db')).join() === '10.9.0.2,10.9.0.3');
    t.pass("the victim's next update reached the others");
  });

  await t.test('a forged leave or death of a node is refuted: it stays alive on the others', async (t) => {
    const inc = (await member(a, 'bravo'))!.incarnation;
    const [sig0, bounds0] = [await rejected(a, 'signature'), await rejected(a, 'bounds')];
    for (const n of [a, b, c]) {
      // A leave in the victim's name (it would need the victim's signature), a death at an
      // incarnation near 2^53 (it could never be refuted), and a plain death at its incarnation.
      rogue.send(n, rogue.seal([{ t: 'dead', id: victim.id, inc: inc + 1, from: victim.id }]));
      rogue.send(n, rogue.seal([{ t: 'dead', id: victim.id, inc: 2 ** 53 - 2, from: rogue.identity.id }]));
      rogue.send(n, rogue.seal([{ t: 'dead', id: victim.id, inc, from: rogue.identity.id }]));
    }
    await until('the leave and the 2^53 death refused on alpha', async () => (await rejected(a, 'signature')) > sig0 && (await rejected(a, 'bounds')) > bounds0);
    for (const n of [a, c]) {
      await until('bravo alive, at a higher incarnation', async () => {
        const m = await member(n, 'bravo');
        return m?.state === 'alive' && m.incarnation > inc;
      });
      await until("bravo's endpoints back", async () => (await answers(n, 'db')).join() === '10.9.0.2,10.9.0.3');
    }
    t.pass('refuted; alive and answered on both others');
    t.notOk((await members(a)).some((m) => m.state === 'left'), 'nobody is "left"');
  });

  await t.test('packets captured before a restart are refused after it', async (t) => {
    const ping = (seq: number) => rogue.seal([{ t: 'ping', seq, target: victim.id, from: rogue.identity.id, fromAddr: rogue.addr }]);
    const captured = ping(77);
    rogue.send(b, captured);
    await until('bravo acks the ping', async () => rogue.received.some((m) => m.t === 'ack' && m.seq === 77));
    const replay0 = await rejected(b, 'replay');
    rogue.send(b, captured);
    await until('the replay is refused', async () => (await rejected(b, 'replay')) > replay0);

    await b.d.stop('SIGKILL');
    const b2 = await node(top, 'bravo', { port: b.port, stateDir: b.stateDir });
    t.equal((await member(b2, 'bravo'))?.id, victim.id, 'same node id after the restart (same key)');
    rogue.received.length = 0;
    rogue.send(b2, captured);
    await until('refused after the restart too', async () => (await rejected(b2, 'replay')) >= 1);
    await expectLog(t, b2.d, /frame sealed before this node started/);
    rogue.send(b2, ping(78));
    await until('a fresh ping is answered', async () => rogue.received.some((m) => m.t === 'ack' && m.seq === 78));
    t.notOk(rogue.received.some((m) => m.t === 'ack' && m.seq === 77), 'the replayed ping never was');
    await until('bravo alive again on alpha', async () => (await member(a, 'bravo'))?.state === 'alive');
  });

  await t.test('a peer speaking the previous wire version (5: update ids beside each push and in IHAVEs) is refused with one clear log line', async (t) => {
    const old = Buffer.from(rogue.seal([{ t: 'ack', seq: 1, from: 'x' }]));
    old[0] = 5;
    for (let i = 0; i < 5; i++) rogue.send(c, old);
    await until('refused', async () => (await rejected(c, 'version')) >= 5);
    const lines = c.d.logs().split('\n').filter((l) => l.includes('wire version 5'));
    t.equal(lines.length, 1, 'logged once');
    t.match(lines[0], /wire version 5, this node speaks 6: the peer runs an older podman-swarm-dns; upgrade it/);
  });
});

t.test('40 connections sending junk to the gossip TCP port: memory stays bounded, every one is dropped', async (t) => {
  const d = await node(t, 'delta', { args: ['--gossip-max-connections', '8', '--max-endpoints-per-node', '2'] });
  const pid = d.d.proc.pid!;
  const rss0 = rssKb(pid);
  const socks: Socket[] = [];
  t.teardown(() => socks.forEach((s) => s.destroy()));
  const gone = new Set<Socket>();
  const allClosed = (what: string, list: Socket[]) => until(what, () => list.every((s) => gone.has(s)));
  const open = () => {
    const s = connect({ host: '127.0.0.1', port: d.port });
    s.on('error', () => undefined);
    s.on('close', () => gone.add(s));
    s.resume(); // reads (and drops) what the server answers, so its close is seen
    socks.push(s);
    return s;
  };
  // 8 silent connections hold every slot until their header deadline...
  const silent = Array.from({ length: 8 }, open);
  await until('8 streams open', async () => /podman_swarm_dns_gossip_streams_open 8/.test(await (await fetch(`${d.d.api}/metrics`)).text()));
  // ... so these are closed at once; then 40 that each announce 16 MB or send a junk header,
  // and push up to 16 MB of junk as fast as the server takes it.
  const capped = Array.from({ length: 4 }, open);
  await allClosed('the 4 over the cap closed', capped);
  t.ok((await rejected(d, 'connections')) >= 4, 'over the connection cap: closed and counted');
  await allClosed('the 8 silent ones closed', silent);
  t.ok((await rejected(d, 'frame')) >= 8, 'silent senders cut off at the header deadline');

  const junk = Buffer.alloc(64 << 10, 0x5a);
  const flood = Array.from({ length: 40 }, (_, i) => {
    const s = open();
    const head = Buffer.alloc(4);
    head.writeUInt32BE(i % 2 ? 16 << 20 : 60);
    s.write(Buffer.concat([head, Buffer.from([WIRE_VERSION, 1])]));
    let sent = 0;
    const pump = () => {
      while (sent < 16 << 20 && !s.destroyed) {
        sent += junk.length;
        if (!s.write(junk)) return void s.once('drain', pump);
      }
    };
    s.once('connect', pump);
    return s;
  });
  await allClosed('all 40 dropped', flood);
  await until('no stream left open on the server', async () => /podman_swarm_dns_gossip_streams_open 0/.test(await (await fetch(`${d.d.api}/metrics`)).text()));
  const rss1 = rssKb(pid);
  t.comment(`RSS ${Math.round(rss0 / 1024)} MB before, ${Math.round(rss1 / 1024)} MB after 40 junk connections`);
  t.ok(rss1 - rss0 < 64 * 1024, `RSS grew by less than 64 MB (${Math.round((rss1 - rss0) / 1024)} MB)`);
  const counted = (await rejected(d, 'frame')) + (await rejected(d, 'auth')) + (await rejected(d, 'connections')) + (await rejected(d, 'version'));
  t.ok(counted >= 8 + 4 + 40, `every junk stream counted (${counted})`);
  // Still a working member: another node joins it.
  const e = await node(t, 'echo', { join: [d.port] });
  await until('echo joined delta', async () => (await members(e)).filter((m) => m.state === 'alive').length === 2);
  t.pass('a real member still joins');

  // The endpoint limit holds for this node's own endpoints too.
  t.equal((await register(d, 'web', 'w1', '10.9.1.1')).status, 201);
  t.equal((await register(d, 'web', 'w2', '10.9.1.2')).status, 201);
  const over = await register(d, 'web', 'w3', '10.9.1.3');
  t.equal(over.status, 409, 'a third endpoint is refused');
  t.match(((await over.json()) as { error: string }).error, /already has 2 endpoints, the limit \(--max-endpoints-per-node\)/);
  t.equal((await register(d, 'web', 'w2', '10.9.1.4')).status, 200, 'replacing one is fine');
  await until('both on echo', async () => (await answers(e, 'web')).join() === '10.9.1.1,10.9.1.4');
});
