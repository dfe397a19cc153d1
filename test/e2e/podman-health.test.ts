import t from 'tap';
import { digShort } from '../helpers/dns.js';
import { apiOverSocket, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { isRoot } from '../helpers/netns.js';
import { hasPodman, startPodman, type TestPodman } from '../helpers/podman.js';
import { waiter, expectLog } from '../helpers/until.js';

const until = waiter(15_000);

// Local health checks (SPEC §6) against real containers: a TCP check whose port stops answering
// (the httpd is killed, the container keeps running) and Podman's own healthcheck, which has no
// timer here (no systemd), so the test runs it with `podman healthcheck run`.

if (!isRoot || !hasPodman()) {
  t.comment('skipped: needs root, podman, runc and busybox-static (run by .ci/run as root)');
  process.exit(0);
}

const P = `p3h${process.pid % 10000}`;

const getJson = async (d: RunningDaemon, path: string): Promise<unknown> => (await apiOverSocket(d, 'GET', path)).body;

let podman: TestPodman;
let d: RunningDaemon;

t.before(async () => {
  podman = await startPodman(t, P);
  await podman.network(`${P}-net`);
  d = await startDaemon(t, {
    args: ['--podman-socket', podman.socket, '--health-interval', '300ms', '--health-timeout', '200ms', '--health-fall', '2', '--health-rise', '1'],
  });
});

const count = async (name: string): Promise<number> => (await digShort(d.dnsPort, name)).length;

t.test('tcp: the port stops answering → out of DNS after the fall count; back after rise', async (t) => {
  // httpd in the background under sh, so it can be killed while the container keeps running.
  await podman.container(`${P}-tcp`, ['--network', `${P}-net`, '--label', 'podman-swarm.service=tcpsvc', '--label', 'podman-swarm.port.http=80/tcp'], ['sh', '-c', 'httpd -p 80; exec sleep 1000']);
  await until('the endpoint', async () => (await count('tcpsvc.default.cluster.local')) === 1);
  await podman.run(['exec', `${P}-tcp`, 'killall', 'httpd']);
  await until('the endpoint to turn unhealthy', async () => (await count('tcpsvc.default.cluster.local')) === 0);
  const eps = (await getJson(d, '/api/v1/services/default/tcpsvc/endpoints')) as Array<{ healthy: boolean }>;
  t.equal(eps[0]!.healthy, false, 'the API shows it unhealthy');
  const status = (await getJson(d, '/api/v1/status')) as { health: { unhealthy: Array<{ endpoint: string; reason: string }> } };
  t.match(status.health.unhealthy, [{ endpoint: `default/tcpsvc/${P}-tcp`, reason: /ECONNREFUSED/ }], 'status says why');
  await expectLog(t, d, /endpoint default\/tcpsvc\/p3h\d+-tcp is unhealthy/);
  await podman.run(['exec', `${P}-tcp`, 'httpd', '-p', '80']);
  await until('the endpoint to come back', async () => (await count('tcpsvc.default.cluster.local')) === 1);
  t.pass('healthy again after the port answers');
});

t.test('http:<path>: a 404 counts as a failure', async (t) => {
  await podman.container(
    `${P}-http`,
    ['--network', `${P}-net`, '--label', 'podman-swarm.service=httpsvc', '--label', 'podman-swarm.port.http=80/tcp', '--label', 'podman-swarm.health=http:/ok'],
    ['sh', '-c', ': > /tmp/ok; exec httpd -f -p 80 -h /tmp'],
  );
  await until('the endpoint', async () => (await count('httpsvc.default.cluster.local')) === 1);
  await podman.run(['exec', `${P}-http`, 'rm', '/tmp/ok']);
  await until('the endpoint to turn unhealthy', async () => (await count('httpsvc.default.cluster.local')) === 0);
  const status = (await getJson(d, '/api/v1/status')) as { health: { unhealthy: Array<{ endpoint: string; reason: string }> } };
  t.match(status.health.unhealthy.find((u) => u.endpoint.startsWith('default/httpsvc/')), { reason: /status 404/ });
});

t.test('podman healthcheck failing → endpoint unhealthy; passing again → back', async (t) => {
  await podman.container(
    `${P}-hc`,
    ['--network', `${P}-net`, '--label', 'podman-swarm.service=hcsvc', '--health-cmd', '[ -e /tmp/ok ]', '--health-retries', '1', '--health-interval', '1h'],
    ['sh', '-c', ': > /tmp/ok; exec httpd -f -p 80'],
  );
  await until('the endpoint', async () => (await count('hcsvc.default.cluster.local')) === 1);
  const eps = (await getJson(d, '/api/v1/services/default/hcsvc/endpoints')) as Array<{ health: string }>;
  t.equal(eps[0]!.health, 'podman', 'a container with a healthcheck uses it by default');
  await podman.run(['exec', `${P}-hc`, 'rm', '/tmp/ok']);
  await podman.run(['healthcheck', 'run', `${P}-hc`]).catch(() => undefined); // exits 1: unhealthy
  await until('the endpoint to turn unhealthy', async () => (await count('hcsvc.default.cluster.local')) === 0);
  t.pass('out of DNS');
  await podman.run(['exec', `${P}-hc`, 'touch', '/tmp/ok']);
  await podman.run(['healthcheck', 'run', `${P}-hc`]);
  await until('the endpoint to come back', async () => (await count('hcsvc.default.cluster.local')) === 1);
  t.pass('back in DNS');
});
