import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { digShort } from '../helpers/dns.js';
import { freePort } from '../helpers/ports.js';
import { keygen } from '../../src/commands/keygen.js';
import { waiter, expectLog } from '../helpers/until.js';

const until = waiter(30_000);

// Several real daemons on loopback ports, gossiping over real UDP/TCP sockets with a shared key:
// join, propagation, graceful leave, crash (SIGKILL) and restart with the persisted state, and
// a host with the wrong key kept out.

const dir = mkdtempSync(join(tmpdir(), 'g4-cluster-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const keyFile = join(dir, 'key');
writeFileSync(keyFile, `${keygen()}\n`);
const wrongKey = join(dir, 'wrong');
writeFileSync(wrongKey, `${keygen()}\n`);

interface Node {
  d: RunningDaemon;
  port: number;
  stateDir: string;
}

async function node(t: { teardown(fn: () => unknown): void }, name: string, opts: { join?: number[]; key?: string; port?: number; stateDir?: string } = {}): Promise<Node> {
  const port = opts.port ?? (await freePort());
  const stateDir = opts.stateDir ?? mkdtempSync(join(dir, `${name}-`));
  const args = [
    '--node-name', name, '--gossip-listen', `127.0.0.1:${port}`, '--advertise-address', '127.0.0.1',
    '--gossip-key-file', opts.key ?? keyFile, '--state-dir', stateDir, '--dead-grace', '2s',
    ...(opts.join?.length ? ['--join', opts.join.map((p) => `127.0.0.1:${p}`).join(',')] : []),
  ];
  return { d: await startDaemon(t, { args }), port, stateDir };
}

/** Polls `check` until it holds (the cluster converges in its own time; no timing is asserted). */

const register = (n: Node, svc: string, address: string) =>
  fetch(`${n.d.api}/api/v1/services/default/${svc}/endpoints`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...n.d.auth() },
    body: JSON.stringify({ id: `${svc}-1`, address, ports: { http: '8080/tcp' }, health: 'none' }),
  });
const answers = (n: Node, svc: string) => digShort(n.d.dnsPort, `${svc}.default.cluster.local`);
const members = async (n: Node): Promise<Array<{ name: string; state: string; endpoints: number }>> =>
  JSON.parse((await runCli(['members', '--json', '--api-socket', n.d.socket])).stdout);
const stateOf = async (n: Node, name: string) => (await members(n)).find((m) => m.name === name)?.state;

t.test('a cluster of daemons on loopback', async (t) => {
  const top = t;
  const a = await node(t, 'alpha');
  const b = await node(t, 'bravo', { join: [a.port] });
  const c = await node(t, 'charlie', { join: [a.port] });

  await t.test('join: every node lists all three as alive', async (t) => {
    for (const n of [a, b, c]) await until('3 alive members', async () => (await members(n)).filter((m) => m.state === 'alive').length === 3);
    const list = await members(b);
    t.same(list.map((m) => m.name).sort(), ['alpha', 'bravo', 'charlie']);
    const human = await runCli(['members', '--api-socket', b.d.socket]);
    t.match(human.stdout, /bravo \(this node\)/);
    t.match(human.stdout, /alpha .* alive/);
  });

  await t.test('an endpoint registered on one node is answered by all', async (t) => {
    t.equal((await register(a, 'web', '10.9.0.1')).status, 201);
    for (const n of [b, c]) await until(`web on ${n.d.dnsPort}`, async () => (await answers(n, 'web')).includes('10.9.0.1'));
    t.same(await answers(c, 'web'), ['10.9.0.1']);
    const srv = await digShort(c.d.dnsPort, '_http._tcp.web.default.cluster.local', 'SRV');
    t.match(srv[0], /^0 10 8080 web-1\.web\.default\.svc\.cluster\.local\.$/);
  });

  await t.test('graceful leave: the node and its endpoints are gone everywhere', async (t) => {
    t.equal((await register(c, 'cache', '10.9.0.3')).status, 201);
    await until('cache on alpha', async () => (await answers(a, 'cache')).includes('10.9.0.3'));
    t.equal(await c.d.stop('SIGTERM'), 0);
    await expectLog(t, c.d, /left the cluster/);
    for (const n of [a, b]) {
      await until('charlie left', async () => (await stateOf(n, 'charlie')) === 'left');
      t.same(await answers(n, 'cache'), [], 'cache withdrawn');
    }
  });

  await t.test('crash (SIGKILL): endpoints gone after suspicion; restart rejoins with the persisted state', async (t) => {
    t.equal((await register(b, 'db', '10.9.0.2')).status, 201);
    await until('db on alpha', async () => (await answers(a, 'db')).includes('10.9.0.2'));
    await b.d.stop('SIGKILL');
    await until('bravo dead on alpha', async () => (await stateOf(a, 'bravo')) === 'dead');
    // Kept for --dead-grace (2 s here) in case it comes back, then withdrawn.
    await until("bravo's endpoint withdrawn on alpha", async () => (await answers(a, 'db')).length === 0);
    await expectLog(t, a.d, /node \S+ is dead: its endpoints are withdrawn/, "bravo's endpoint withdrawn");
    await expectLog(t, a.d, /bravo .* is suspect/);

    // Same gossip port and state directory: the node comes back with the same id, answers from
    // its state file at once (stale), and rejoins through the members remembered there.
    const b2 = await node(top, 'bravo', { port: b.port, stateDir: b.stateDir });
    t.same(await answers(b2, 'web'), ['10.9.0.1'], 'answers from the state file before resync');
    await expectLog(t, b2.d, /loaded 1 node states/);
    await until('bravo alive again on alpha', async () => (await stateOf(a, 'bravo')) === 'alive');
    await until('db back on alpha', async () => (await answers(a, 'db')).includes('10.9.0.2'));
    await expectLog(t, b2.d, /joined the cluster through 1 of \d+ remembered members/);
    const status = JSON.parse((await runCli(['status', '--json', '--api-socket', b2.d.socket])).stdout);
    t.match(status.cluster, { members: 2, stale: false });
    t.match((await runCli(['status', '--api-socket', b2.d.socket])).stdout, /^gossip\s+127\.0\.0\.1:\d+, 2 live members$/m);
  });

  await t.test('a host with the wrong key cannot join, and both logs say why', async (t) => {
    const x = await node(t, 'xray', { join: [a.port], key: wrongKey });
    await until('xray logs the refusal', async () => /could not join .*authentication failed/.test(x.d.logs()));
    await expectLog(t, a.d, /rejected gossip from 127\.0\.0\.1:\d+: authentication failed: wrong gossip key/);
    t.notOk((await members(a)).some((m) => m.name === 'xray'));
    const metrics = await (await fetch(`${a.d.api}/metrics`)).text();
    t.match(metrics, /podman_swarm_dns_gossip_rejected_total\{reason="auth"\} [1-9]/);
    t.match(metrics, /podman_swarm_dns_gossip_members\{state="alive"\} 2/);
    t.match(metrics, /podman_swarm_dns_gossip_push_pulls_total [1-9]/);
  });

  await t.test('join-token: a new host joins with the token alone', async (t) => {
    const tok = await runCli(['join-token', '--api-socket', a.d.socket]);
    t.equal(tok.code, 0);
    const token = tok.stdout.trim();
    t.match(token, /^PSWARM1-/);
    const port = await freePort();
    const y = await startDaemon(t, { args: ['--node-name', 'yankee', '--gossip-listen', `127.0.0.1:${port}`, '--advertise-address', '127.0.0.1', '--join-token', token] });
    await until('yankee alive on alpha', async () => (await stateOf(a, 'yankee')) === 'alive');
    await until('web on yankee', async () => (await digShort(y.dnsPort, 'web.default.cluster.local')).includes('10.9.0.1'));
    t.pass('joined');
    const again = await runCli(['join', `127.0.0.1:${b.port}`, '--api-socket', y.socket]);
    t.equal(again.code, 0, again.stderr);
    t.match(again.stdout, /joined through 1 of 1/);
    const refused = await runCli(['join', '127.0.0.1:9', '--api-socket', y.socket]);
    t.equal(refused.code, 1, 'nobody answering: exit 1');
  });
});
