import t from 'tap';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/daemon.js';
import { isRoot } from '../helpers/netns.js';

// A probe that finds no route at all (ENETUNREACH: the endpoint's address lives where this host
// cannot go, like a container IP inside a rootless user's network namespace) makes the endpoint
// "not checkable", not unhealthy: the checker runs in a new, empty network namespace (only
// loopback, no route anywhere), where such a probe fails for real; one on loopback still fails
// as unhealthy.

const script = `
import { HealthChecker } from '${join(ROOT, 'dist/health/checker.js')}';
import { noRoute, tcpProbe } from '${join(ROOT, 'dist/health/probes.js')}';
import { LocalNode } from '${join(ROOT, 'dist/registry/local.js')}';
import { Registry } from '${join(ROOT, 'dist/registry/registry.js')}';
import { pino } from 'pino';
const ep = (id, address) => ({ id, namespace: 'default', service: 'web', hostname: id, addresses: [address], explicit: false,
  ports: { http: { port: 8080, protocol: 'tcp' } }, weight: 10, health: 'tcp', healthy: true, source: 'podman', lastSeen: 0 });
const local = new LocalNode(new Registry({ localNode: 'n1', routableContainerIps: false, defaultMode: 'dnsrr' }), { id: 'n1', name: 'n1', address: '127.0.0.1', incarnation: 1 });
local.replaceSource('podman', [ep('far', '10.88.0.5'), ep('closed', '127.0.0.1')]);
const probe = await tcpProbe('10.88.0.5', 8080, 1000);
const checker = new HealthChecker(local, { intervalMs: 50, timeoutMs: 500, rise: 1, fall: 1 }, null, pino({ level: 'silent' }));
checker.start();
for (let i = 0; i < 100 && checker.status().unhealthy.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
await new Promise((r) => setTimeout(r, 300));
checker.stop();
console.log(JSON.stringify({ probe, noRoute: noRoute(probe), status: checker.status(), healthy: Object.fromEntries(local.endpoints().map((e) => [e.id, e.healthy])) }));
`;

t.test('no route: not checkable and left healthy; a closed port on loopback: unhealthy', { skip: isRoot ? false : 'needs root (unshare -n)' }, async (t) => {
  const out = execFileSync('unshare', ['-n', 'sh', '-c', `ip link set lo up && exec ${process.execPath} --input-type=module -e "$0"`, script], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  const r = JSON.parse(out.trim().split('\n').at(-1)!);
  t.match(r.probe, /ENETUNREACH/, 'the probe itself finds no route');
  t.equal(r.noRoute, true);
  t.same(r.status.not_checkable.map((x: { endpoint: string }) => x.endpoint), ['default/web/far'], 'the far endpoint is not checkable');
  t.same(r.status.unhealthy.map((x: { endpoint: string }) => x.endpoint), ['default/web/closed'], 'the closed port is unhealthy');
  t.same(r.healthy, { closed: false, far: true }, 'and only the closed one leaves the answers');
});
