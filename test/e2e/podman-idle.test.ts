import t from 'tap';
import { digShort } from '../helpers/dns.js';
import { apiOverSocket, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { isRoot } from '../helpers/netns.js';
import { hasPodman, startPodman, type TestPodman } from '../helpers/podman.js';
import { freePort } from '../helpers/ports.js';
import { waiter } from '../helpers/until.js';

const until = waiter(30_000);

// Nothing changes → nothing moves: the daemon against a real Podman with labelled containers
// running and a 1 s resync. Resyncs (and the health rounds in between) that find everything as it
// was leave the node's version, the registry index, the native answer table and the gossip queue
// alone; one container start or stop moves each of them once (one table build, not two).

if (!isRoot || !hasPodman()) {
  t.comment('skipped: needs root, podman, runc and busybox-static (run by .ci/run as root)');
  process.exit(0);
}

const P = `p16i${process.pid % 10000}`;
const CONTAINERS = 4;
// The idle containers are health-checked (tcp, every second); the one started and stopped below
// is not, so that its own counts cannot include a health flip.
const labels = ['--label', 'podman-swarm.service=idle', '--label', 'podman-swarm.port.http=80/tcp'];
const unchecked = [...labels, '--label', 'podman-swarm.health=none'];

let podman: TestPodman;
let d: RunningDaemon;

const getJson = async (path: string): Promise<any> => (await apiOverSocket(d, 'GET', path)).body;

/** The figures that must stay still while nothing changes. */
async function figures(): Promise<{ index: number; version: number; builds: number | null; updates: number; lastSync: string }> {
  const status = await getJson('/api/v1/status');
  const nodes = (await getJson('/api/v1/nodes')) as Array<{ local: boolean; version: number }>;
  const text = await metricsText();
  const read = (name: string): number | null => {
    const m = new RegExp(`^podman_swarm_dns_${name} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  };
  return {
    index: status.registry.index,
    version: nodes.find((n) => n.local)!.version,
    builds: read('native_table_builds_total'),
    updates: read('gossip_updates_queued_total')!,
    lastSync: status.podman.last_sync,
  };
}

async function metricsText(): Promise<string> {
  const r = await fetch(`${d.api}/metrics`);
  return r.text();
}

/** Waits for `n` more completed resyncs (their time in status changes). */
async function resyncs(n: number): Promise<void> {
  let last = (await figures()).lastSync;
  for (let i = 0; i < n; i++) {
    last = await until(`resync ${i + 1} of ${n}`, async () => {
      const now = (await figures()).lastSync;
      return now !== last && now;
    });
  }
}

const answers = (): Promise<string[]> => digShort(d.dnsPort, 'idle.default.cluster.local');

t.before(async () => {
  podman = await startPodman(t, P);
  await podman.network(`${P}-net`);
  for (let i = 0; i < CONTAINERS; i++) await podman.container(`${P}-c${i}`, ['--network', `${P}-net`, ...labels]);
  const gossip = await freePort();
  d = await startDaemon(t, {
    config: 'services:\n  - name: static\n    endpoints:\n      - address: 192.0.2.10\n',
    args: ['--podman-socket', podman.socket, '--resync-interval', '1s', '--health-interval', '1s',
      '--gossip-listen', `127.0.0.1:${gossip}`, '--advertise-address', '127.0.0.1'],
  });
  await until('all containers in DNS', async () => (await answers()).length === CONTAINERS);
  await resyncs(1);
});

t.test('three resyncs of unchanged containers and their health rounds: no version, no index, no table build, no gossip update', async (t) => {
  const before = await figures();
  t.ok(before.updates > 0, 'gossip is on (the first state was queued)');
  await resyncs(3);
  const after = await figures();
  t.equal(after.version, before.version, 'node version unchanged');
  t.equal(after.index, before.index, 'registry index unchanged');
  t.equal(after.updates, before.updates, 'no gossip update queued');
  if (before.builds === null) t.comment('JS DNS path (no addon): no native table to count');
  else t.equal(after.builds, before.builds, 'no native table built');
  t.equal((await answers()).length, CONTAINERS, 'still answered');
});

t.test('a reload of the same configuration: nothing moves', async (t) => {
  const before = await figures();
  const logged = (): number => (d.logs().match(/reloaded: nothing changed/g) ?? []).length;
  const n = logged();
  d.proc.kill('SIGHUP');
  await until('the reload', () => logged() > n);
  await resyncs(1);
  const after = await figures();
  t.same({ ...after, lastSync: '' }, { ...before, lastSync: '' }, 'version, index, table builds and gossip updates as they were');
});

t.test('one container start and one stop: each one registry change, one table build, one gossip update', async (t) => {
  await resyncs(1);
  let before = await figures();
  await podman.container(`${P}-new`, ['--network', `${P}-net`, ...unchecked]);
  await until('the new container in DNS', async () => (await answers()).length === CONTAINERS + 1);
  await resyncs(2); // later events of the start (network connect) and resyncs find nothing new
  let after = await figures();
  t.comment(JSON.stringify({ before, after }));
  t.equal(after.index - before.index, 1, 'start: one registry change');
  t.ok(after.version > before.version, 'start: a new version');
  t.equal(after.updates - before.updates, 1, 'start: one gossip update');
  if (before.builds !== null) t.equal(after.builds! - before.builds, 1, 'start: one table build (registry and container names together)');

  before = after;
  await podman.run(['stop', '-t', '0', `${P}-new`]);
  await until('the stopped container out of DNS', async () => (await answers()).length === CONTAINERS);
  await resyncs(2);
  after = await figures();
  t.comment(JSON.stringify({ before, after }));
  t.equal(after.index - before.index, 1, 'stop: one registry change');
  t.equal(after.updates - before.updates, 1, 'stop: one gossip update');
  if (before.builds !== null) t.equal(after.builds! - before.builds, 1, 'stop: one table build');
});
