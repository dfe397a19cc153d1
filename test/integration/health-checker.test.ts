import t from 'tap';
import { createServer } from 'node:http';
import pino from 'pino';
import { checkable, HealthChecker, MAX_CONCURRENT_PROBES } from '../../src/health/checker.js';
import { LocalNode } from '../../src/registry/local.js';
import { Registry } from '../../src/registry/registry.js';
import { ep } from '../helpers/registry.js';
import { waiter } from '../helpers/until.js';

// The checker against a real HTTP server on loopback: many endpoints are probed with a bounded
// number of sockets (unbounded, a big node ran out of file descriptors and every endpoint
// flapped), and endpoints with nothing to check are not probed at all.

const until = waiter(30_000);

t.test('checkable: only endpoints with something to probe', async (t) => {
  const tcp = { http: { port: 80, protocol: 'tcp' as const } };
  t.notOk(checkable(ep('a', '10.0.0.1', { health: 'none', ports: tcp })), 'health: none');
  t.notOk(checkable(ep('a', '10.0.0.1', { health: 'tcp' })), 'no ports');
  t.notOk(checkable(ep('a', '10.0.0.1', { health: 'tcp', ports: { dns: { port: 53, protocol: 'udp' } } })), 'udp only');
  t.notOk(checkable(ep('a', '10.0.0.1', { health: 'podman', ports: tcp })), 'podman check without a container');
  t.ok(checkable(ep('a', '10.0.0.1', { health: 'tcp', ports: tcp })));
  t.ok(checkable(ep('a', '10.0.0.1', { health: 'http:/ready', ports: tcp })));
});

t.test(`300 endpoints are probed at most ${MAX_CONCURRENT_PROBES} at a time, and all get a result`, async (t) => {
  let active = 0;
  let peak = 0;
  let served = 0;
  const server = createServer((req, res) => {
    active++;
    peak = Math.max(peak, active);
    // Slow answers keep probes in flight, so an unbounded checker would hold 300 sockets at once.
    setTimeout(() => {
      active--;
      served++;
      res.statusCode = req.url === '/bad' ? 503 : 200;
      res.end();
    }, 100);
  });
  server.keepAliveTimeout = 1;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;

  const registry = new Registry({ localNode: 'a', routableContainerIps: false, defaultMode: 'dnsrr' });
  const local = new LocalNode(registry, { id: 'a', name: 'a', address: '192.0.2.1', incarnation: 0 });
  const ports = { http: { port, protocol: 'tcp' as const } };
  const endpoints = [
    ...Array.from({ length: 300 }, (_, i) => ep('web', '127.0.0.1', { id: `w${i}`, health: i < 10 ? 'http:/bad' : 'http:/', ports, source: 'config' })),
    ...Array.from({ length: 50 }, (_, i) => ep('quiet', '127.0.0.1', { id: `q${i}`, health: 'none', ports, source: 'config' })),
  ];
  local.replaceSource('config', endpoints);
  const checker = new HealthChecker(local, { intervalMs: 3_600_000, timeoutMs: 5000, rise: 1, fall: 1 }, null, pino({ level: 'silent' }));
  checker.tick();
  checker.tick(); // a tick while the round still runs starts nothing more
  await until('every checkable endpoint probed', () => checker.status().checked === 300 && served >= 300);
  t.ok(peak <= MAX_CONCURRENT_PROBES, `at most ${MAX_CONCURRENT_PROBES} probes at once (peak ${peak})`);
  t.ok(peak > 1, 'probes do run in parallel');
  t.equal(served, 300, 'one probe per endpoint: the second tick added none, health: none endpoints were not probed');
  await until('the failing endpoints marked', () => checker.status().unhealthy.length === 10);
  t.same(checker.status().unhealthy.map((u) => u.endpoint).sort(), Array.from({ length: 10 }, (_, i) => `default/web/w${i}`).sort());
  t.equal(registry.service('default', 'web')!.endpoints.filter((e) => !e.endpoint.healthy).length, 10, 'the registry sees them unhealthy');
});

t.test('300 endpoints that fail together are marked in a few registry changes, not one each', async (t) => {
  // A port with nothing listening: every probe is refused at once, so the whole round's results
  // arrive together, as they do when a host's containers all stop answering.
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));

  const registry = new Registry({ localNode: 'a', routableContainerIps: false, defaultMode: 'dnsrr' });
  const local = new LocalNode(registry, { id: 'a', name: 'a', address: '192.0.2.1', incarnation: 0 });
  const ports = { http: { port, protocol: 'tcp' as const } };
  local.replaceSource('config', Array.from({ length: 300 }, (_, i) => ep('web', '127.0.0.1', { id: `w${i}`, health: 'tcp', ports, source: 'config' })));
  let changes = 0;
  t.teardown(registry.onChange(() => changes++));
  const checker = new HealthChecker(local, { intervalMs: 3_600_000, timeoutMs: 5000, rise: 1, fall: 1 }, null, pino({ level: 'silent' }));
  t.teardown(() => checker.stop());
  checker.tick();
  await until('every endpoint marked unhealthy', () => registry.service('default', 'web')?.endpoints.every((e) => !e.endpoint.healthy) === true);
  // Each change is a new node version gossiped to every host and a DNS table update here: one per
  // endpoint held the event loop for seconds on a 360-endpoint service.
  t.ok(changes >= 1 && changes <= 10, `${changes} registry changes for 300 results`);
  t.equal(checker.status().unhealthy.length, 300);
});
