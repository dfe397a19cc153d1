import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { freePort } from '../helpers/ports.js';
import { keygen } from '../../src/commands/keygen.js';
import { NodeIdentity } from '../../src/gossip/identity.js';
import { Cluster } from '../../src/gossip/cluster.js';
import { Keyring } from '../../src/gossip/crypto.js';
import { Registry } from '../../src/registry/registry.js';
import { waiter } from '../helpers/until.js';

const until = waiter(30_000);

// Lifeguard's local health awareness, with real gossip on loopback: two daemons and a third
// member running in this test process, whose event loop the test then keeps busy for 2.5 s (less
// than the suspicion timeout), as a flood of work would. When the loop runs again its failure
// detector's timers are due before it has read the acks waiting in its socket (timers run
// before I/O): it must notice it is late instead of accusing the others, and the others must
// not declare it dead.

const dir = mkdtempSync(join(tmpdir(), 'i15-aware-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const keyFile = join(dir, 'key');
writeFileSync(keyFile, `${keygen()}\n`);

async function node(t: { teardown(fn: () => unknown): void }, name: string, seed?: number): Promise<{ d: RunningDaemon; name: string; port: number }> {
  const port = await freePort();
  const args = [
    '--node-name', name, '--gossip-listen', `127.0.0.1:${port}`, '--advertise-address', '127.0.0.1',
    '--gossip-key-file', keyFile, '--state-dir', mkdtempSync(join(dir, `${name}-`)),
    ...(seed ? ['--join', `127.0.0.1:${seed}`] : []),
  ];
  return { d: await startDaemon(t, { args }), name, port };
}

type MemberRow = { name: string; state: string; incarnation: number };
const members = async (d: RunningDaemon): Promise<MemberRow[]> => (await (await fetch(`${d.api}/api/v1/nodes`)).json()) as MemberRow[];
const busy = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

t.test('a member whose event loop was busy for 2.5 s is not declared dead and does not accuse the others', async (t) => {
  const a = await node(t, 'alpha');
  const c = await node(t, 'charlie', a.port);
  const identity = NodeIdentity.generate();
  const registry = new Registry({ localNode: identity.id, routableContainerIps: false, defaultMode: 'dnsrr' });
  const b = await Cluster.start({
    identity, name: 'bravo', listenHost: '127.0.0.1', listenPort: await freePort(), advertiseHost: '127.0.0.1',
    keyring: Keyring.parse(readFileSync(keyFile, 'utf8')), seeds: [`127.0.0.1:${a.port}`], registry, log: pino({ level: 'silent' }),
    stateDir: mkdtempSync(join(dir, 'bravo-')),
  });
  t.teardown(() => b.stop());
  const alive = async (d: RunningDaemon) => (await members(d)).filter((m) => m.state === 'alive').length === 3;
  for (const n of [a, c]) await until(`3 alive on ${n.name}`, () => alive(n.d));
  await until('3 alive on bravo', async () => b.membership.all().filter((m) => m.state === 'alive').length === 3);
  // Let the joins settle, then take each daemon's incarnation as it sees itself.
  await new Promise((r) => setTimeout(r, 2000));
  const inc = async (n: typeof a) => (await members(n.d)).find((m) => m.name === n.name)!.incarnation;
  const before = { alpha: await inc(a), charlie: await inc(c) };

  // The next time bravo probes a member, its loop gets busy right after: the probe's timers are
  // due while it is. (The hook only chooses the moment; the busy loop and the rest are real.)
  const m = b.membership as unknown as { probe(target: unknown): void };
  const probe = m.probe.bind(m);
  let blocked = false;
  m.probe = (target) => {
    probe(target);
    if (!blocked) {
      blocked = true;
      // In the check phase, as the DNS hand-off runs: the next turn runs timers before I/O.
      setImmediate(() => busy(2500));
    }
  };
  await until('bravo probed and was busy', async () => blocked);
  await new Promise((r) => setTimeout(r, 3000));
  for (const n of [a, c]) await until(`3 alive on ${n.name} after`, () => alive(n.d));

  t.ok(b.membership.awareness.late >= 1, 'bravo noticed its timers fired late');
  t.ok(b.membership.awareness.score >= 1, 'and its local health score went up');
  t.same(b.membership.all().map((m) => m.state), ['alive', 'alive', 'alive'], 'bravo sees the others alive');
  for (const n of [a, c]) t.notMatch(n.d.logs(), /node \S+ is dead/, `${n.name} never declared anyone dead`);
  t.same({ alpha: await inc(a), charlie: await inc(c) }, before, 'alpha and charlie never had to refute a suspicion (bravo did not accuse them)');
});
