import t from 'tap';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FailureLog } from '../../src/log-once.js';
import { ROOT_ORIGIN } from '../../src/podman/endpoints.js';
import { PodmanSource } from '../../src/podman/source.js';
import { LocalNode } from '../../src/registry/local.js';
import { Registry } from '../../src/registry/registry.js';
import { isRoot } from '../helpers/netns.js';
import { hasPodman, startPodman } from '../helpers/podman.js';
import { waiter } from '../helpers/until.js';

// Several Podman sockets followed at once: a real Podman next to sockets that are not Podman (an
// HTTP server answering 404, a server that does not speak HTTP) and one that does not exist. The
// real one's containers are registered; each bad one is logged once however often it is retried,
// never stops the others, and a socket dropped (a user's went away) is said so. A user's Podman
// gives its container names apart from root's (for that user's queries only).

const until = waiter(30_000);

t.test('a real Podman next to sockets that are not Podman or not there', { skip: isRoot && hasPodman() ? false : 'needs root and podman' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'psd-sockets-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const podman = await startPodman(t, 'psdsk');
  const http404 = join(dir, 'http404.sock');
  const notHttp = join(dir, 'nothttp.sock');
  const missing = join(dir, 'missing.sock');
  const s1 = createHttpServer((_q, r) => {
    r.statusCode = 404;
    r.end('404 page not found\n');
  });
  const s2 = createNetServer((c) => c.end('SSH-2.0-OpenSSH_9.2\r\n'));
  await Promise.all([new Promise<void>((r) => s1.listen(http404, r)), new Promise<void>((r) => s2.listen(notHttp, r))]);
  t.teardown(() => {
    s1.close();
    s2.close();
  });

  const lines: Array<{ msg: string; socket?: string }> = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const failures = new FailureLog(log);
  /** Other owners' container names as the source gives them (uid, each container's names; null: no longer followed). */
  const ownerCalls: Array<[number, string[][] | null]> = [];
  const local = new LocalNode(new Registry({ localNode: 'n1', routableContainerIps: false, defaultMode: 'dnsrr' }), { id: 'n1', name: 'n1', address: '192.0.2.10', incarnation: 1 });
  const source = new PodmanSource({ resyncIntervalMs: 60_000, nodeAddress: '192.0.2.10', maxPorts: 16, maxEndpoints: 100, failures }, {
    local, names: () => undefined, ownerNames: (uid, cs) => void ownerCalls.push([uid, cs && cs.map((c) => c.names.names)]), networks: () => undefined, bridgeSubnets: () => undefined, gateways: () => undefined, healthEvent: () => undefined,
  }, log);
  source.add(podman.socket, ROOT_ORIGIN);
  source.add(http404, { owner: 'alice', rootless: true, qualify: true });
  source.add(notHttp, { owner: 'bob', rootless: true, qualify: true });
  source.add(missing, { owner: 'carol', rootless: true, qualify: true });
  source.start();
  t.teardown(() => source.stop());

  await podman.container('psdsk-web', ['--label', 'podman-swarm.service=web']);
  await until('the real Podman container registered', () => local.endpoints('podman').some((e) => e.id === 'psdsk-web'));
  // Every bad socket is retried with backoff (250 ms, 500 ms, ...): wait for several rounds.
  await until('several reconnects of the three bad sockets', () => (failures.totals().get('reconnect') ?? 0) >= 9);
  const about = (socket: string) => lines.filter((l) => l.socket === socket && !/^watching/.test(l.msg));
  for (const s of [http404, notHttp]) {
    t.equal(about(s).length, 1, `${s}: one line`);
    t.match(about(s)[0]?.msg, /not a Podman API/, 'saying it is not a Podman API');
  }
  t.equal(about(missing).length, 1, 'the missing socket: one line');
  t.match(about(missing)[0]?.msg, /not reachable \(.*ENOENT/);
  t.ok(local.endpoints('podman').some((e) => e.id === 'psdsk-web'), 'the real one is still served');

  const status = source.status() as { sockets: Array<{ owner: string; connected: boolean }> };
  t.same(status.sockets.map((s) => [s.owner, s.connected]), [['root', true], ['alice', false], ['bob', false], ['carol', false]], 'status lists each socket with its owner');
  t.match(source.problems().join('\n'), /alice's Podman API at .* is not reachable \(not a Podman API/);

  source.remove(http404, 'its socket is gone');
  t.match(lines.at(-1)?.msg, /no longer watching alice's Podman at .*http404\.sock \(its socket is gone\); 0 endpoints withdrawn/);
  t.equal(source.sockets().length, 3);

  // The same Podman followed again as a user's (through a link to its socket, uid 4321): that
  // owner's container names are given apart from root's, and withdrawn when it is no longer followed.
  const link = join(dir, 'dave.sock');
  symlinkSync(podman.socket, link);
  source.add(link, { owner: 'dave', rootless: true, qualify: true, uid: 4321 });
  await until("dave's container names", () => ownerCalls.some(([uid, cs]) => uid === 4321 && cs?.some((n) => n.includes('psdsk-web'))));
  t.ok(ownerCalls.every(([uid]) => uid === 4321), 'only the owner with a uid: root and the bad sockets give none');
  source.remove(link, 'its socket is gone');
  t.same(ownerCalls.at(-1), [4321, null], "no longer followed: dave's names withdrawn");
});
