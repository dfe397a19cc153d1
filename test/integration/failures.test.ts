import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Metrics } from '../../src/api/metrics.js';
import { ResponseCache } from '../../src/dns/cache.js';
import { keygen } from '../../src/commands/keygen.js';
import { Cluster } from '../../src/gossip/cluster.js';
import { Keyring } from '../../src/gossip/crypto.js';
import { NodeIdentity } from '../../src/gossip/identity.js';
import { FailureLog } from '../../src/log-once.js';
import type { Logger } from '../../src/log.js';
import { encodeHeader, sha256 } from '../../src/sync/delta.js';
import { NOTICE, updateOut } from '../../src/sync/update.js';
import { PodmanClient } from '../../src/podman/client.js';
import type { ContainerFacts } from '../../src/podman/endpoints.js';
import { PodmanWatcher } from '../../src/podman/watcher.js';
import { Registry } from '../../src/registry/registry.js';
import { fakeLibpod, fakeLibpodAt } from '../helpers/libpod.js';
import { freePort } from '../helpers/ports.js';
import { waiter } from '../helpers/until.js';

const until = waiter(20_000);

// Failures that leave the cluster or DNS wrong are logged at warn once when they start, counted in
// podman_swarm_dns_failures_total{kind} every time, and logged once more when they end.

interface Line {
  level: number;
  msg: string;
  failure?: string;
}

/** A logger that keeps its lines, and the metrics a daemon would serve for its failure log. */
function observed() {
  const lines: Line[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Line) });
  const failures = new FailureLog(log);
  const metrics = new Metrics({ registry: new Registry({ localNode: 'x', routableContainerIps: false, defaultMode: 'dnsrr' }), cache: () => new ResponseCache(10), failures });
  const counted = async (kind: string): Promise<number> => {
    const text = await metrics.prom.getSingleMetricAsString('podman_swarm_dns_failures_total');
    const m = new RegExp(`^podman_swarm_dns_failures_total\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  const warned = (kind: string): Line[] => lines.filter((l) => l.failure === kind && l.level === 40);
  const recovered = (kind: string): Line[] => lines.filter((l) => l.failure === kind && l.level === 30);
  return { lines, log, failures, counted, warned, recovered };
}

// ---- Podman ----

function watch(t: { teardown(fn: () => unknown): void }, socket: string, failures: FailureLog, log: Logger) {
  let all: ContainerFacts[] = [];
  const w = new PodmanWatcher(
    new PodmanClient(socket),
    { resyncIntervalMs: 3_600_000, nodeAddress: '192.0.2.1', backoffMinMs: 20, backoffMaxMs: 50, failures },
    { containers: (c) => (all = c), networks: () => undefined, healthEvent: () => undefined },
    log,
  );
  w.start();
  t.teardown(() => w.stop());
  return { w, endpoints: () => all.filter((c) => c.endpoint).map((c) => c.id) };
}

const socketDir = (t: { teardown(fn: () => unknown): void }): string => {
  const dir = mkdtempSync(join(tmpdir(), 'psd-fail-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
};

t.test('inspect: a 500 after a start event warns once, counts every time, and the next success says so', async (t) => {
  const o = observed();
  const pod = fakeLibpod(t);
  await pod.listening;
  const { w, endpoints } = watch(t, pod.socket, o.failures, o.log);
  await until('connected', () => w.connected);

  pod.running.add('c1');
  pod.broken.add('c1');
  pod.event('start', 'c1');
  await until('the first failure counted', async () => (await o.counted('inspect')) === 1);
  pod.event('restart', 'c1');
  await until('the second failure counted', async () => (await o.counted('inspect')) === 2);
  t.equal(o.warned('inspect').length, 1, 'one warning for two failures');
  t.match(o.warned('inspect')[0]!.msg, /could not inspect container c1 after its start event \(.*database is locked.*\)/, 'the warning says what failed and why');
  t.same(endpoints(), [], 'the container is not known yet');

  pod.broken.delete('c1');
  pod.event('restart', 'c1');
  await until('the container known', () => endpoints().length === 1);
  t.equal(o.recovered('inspect').length, 1, 'one line when it works again');
  t.match(o.recovered('inspect')[0]!.msg, /inspects container c1 again \(it failed 2 times\)/);
  t.equal(o.warned('inspect').length, 1, 'no other warning');
});

t.test('reconnect: every lost event stream is counted; Podman away is one warning', async (t) => {
  const o = observed();
  const socket = join(socketDir(t), 'podman.sock');
  const { w } = watch(t, socket, o.failures, o.log);
  await until('two failed connects counted', async () => (await o.counted('reconnect')) >= 2);
  t.equal(o.lines.filter((l) => /is not reachable/.test(l.msg) && l.level === 40).length, 1, 'one warning while absent');
  const pod = fakeLibpodAt(t, socket);
  await pod.listening;
  await until('connected', () => w.connected);
  const before = await o.counted('reconnect');
  pod.dropStreams();
  await until('the lost stream counted', async () => (await o.counted('reconnect')) > before);
  await until('connected again', () => w.connected);
});

// ---- Gossip ----
// Two members on loopback in this process. The fault is real: the peer's process part stops
// without leaving (as a crash would), so its TCP port refuses, and comes back on the same port.

async function member(t: { teardown(fn: () => unknown): void }, name: string, port: number, identity: NodeIdentity, keyring: Keyring, seeds: string[], failures?: FailureLog, log = pino({ level: 'silent' })) {
  const registry = new Registry({ localNode: identity.id, routableContainerIps: false, defaultMode: 'dnsrr' });
  const dir = mkdtempSync(join(tmpdir(), `i17-${name}-`));
  const c = await Cluster.start({
    identity, name, listenHost: '127.0.0.1', listenPort: port, advertiseHost: '127.0.0.1', keyring, seeds, registry, log, stateDir: dir, failures,
    // Push-pull often so the test sees several; suspicion slow so the stopped peer stays alive a while.
    config: { pushPullInterval: 100, probeInterval: 2000, suspicionMult: 10 },
  });
  t.teardown(async () => {
    await c.stop(false);
    rmSync(dir, { recursive: true, force: true });
  });
  return c;
}

t.test('push-pull and fetch: a peer that stops answering warns once per kind, counts, and its return is logged', async (t) => {
  const o = observed();
  const keyring = Keyring.parse(keygen());
  const [pa, pb] = [await freePort(), await freePort()];
  const ib = NodeIdentity.generate();
  const a = await member(t, 'alpha', pa, NodeIdentity.generate(), keyring, [], o.failures, o.log);
  let b = await member(t, 'bravo', pb, ib, keyring, [`127.0.0.1:${pa}`]);
  await until('alpha sees bravo alive', () => a.membership.all().filter((m) => m.state === 'alive').length === 2);

  await b.stop(false);
  await until('failed push-pulls counted', async () => (await o.counted('push_pull')) >= 2);
  // A notice, signed by bravo and pushed by bravo, that bravo has a newer state than gossip can
  // carry: alpha asks the node that pushed it (bravo, still alive to alpha) for it.
  const notice = (version: number): Uint8Array => {
    const h = { id: ib.id, version, base: 0, stateHash: sha256(Buffer.from('state')), bodyHash: sha256(Buffer.from('body')) };
    const { sig } = ib.prove(encodeHeader(h));
    return updateOut({ type: NOTICE, id: ib.id, version, back: 0 }, h.stateHash, h.bodyHash, sig);
  };
  a.sync.notifyUpdate(notice(Date.now() + 1000), ib.id);
  await until('a failed fetch counted', async () => (await o.counted('fetch')) === 1);
  t.equal(o.warned('push_pull').length, 1, 'one push-pull warning for several failures');
  t.match(o.warned('push_pull')[0]!.msg, /push-pull with bravo \(127\.0\.0\.1:\d+\) failed/);
  t.equal(o.warned('fetch').length, 1, 'one fetch warning');
  t.match(o.warned('fetch')[0]!.msg, new RegExp(`could not fetch the state of node ${ib.id}`));

  b = await member(t, 'bravo', pb, ib, keyring, [`127.0.0.1:${pa}`]);
  await until('push-pull with bravo works again', () => o.recovered('push_pull').length === 1);
  a.sync.notifyUpdate(notice(Date.now() + 2000), ib.id);
  await until('the fetch works again', () => o.recovered('fetch').length === 1);
  t.equal(o.warned('push_pull').length, 1, 'no second push-pull warning');
  t.equal(o.warned('fetch').length, 1, 'no second fetch warning');
});

t.test('the failure log stays bounded and forgets what is gone', async (t) => {
  const o = observed();
  for (let i = 0; i < 5000; i++) o.failures.fail('inspect', `c${i}`, `c${i} failed`);
  t.equal(await o.counted('inspect'), 5000, 'every failure counted');
  o.failures.forget('inspect', 'c4999');
  o.failures.ok('inspect', 'c4999', 'c4999 back');
  t.equal(o.recovered('inspect').length, 0, 'a forgotten container has no recovery line');
  o.failures.ok('inspect', 'c4998', 'c4998 back');
  t.equal(o.recovered('inspect').length, 1, 'a remembered one has');
});
