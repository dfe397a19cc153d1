import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { CLI } from '../helpers/daemon.js';
import { createHosts, type Host } from '../helpers/hosts.js';
import { hostPodman, type HostPodman } from '../helpers/host-podman.js';
import { isRoot } from '../helpers/netns.js';
import { hasPodman, IMAGE } from '../helpers/podman.js';
import { keygen } from '../../src/commands/keygen.js';

// Simulated hosts (../shared/TESTING.md): three network namespaces on a private bridge, each
// running the daemon, joined by encrypted gossip. Hosts 1 and 2 each run their own Podman with a
// container of the vip-mode service `web` (published port); host 3 learns both endpoints from
// gossip, its cluster DNS answers the service's VIP (held on pswarm0), and successive connections
// from a container on host 3 (its own Podman, the cluster DNS as its resolver) to
// http://web.default.cluster.local/ reach both containers; when host 1's container is killed
// every connection goes to host 2's.

if (!isRoot) {
  t.comment('skipped: needs root (run by .ci/run as root)');
  process.exit(0);
}
if (!hasPodman()) {
  t.comment('skipped: podman, runc or busybox-static missing');
  process.exit(0);
}

interface Daemon {
  proc: ChildProcess;
  exited: Promise<number | null>;
  until(re: RegExp, ms?: number): Promise<void>;
}

function startDaemon(h: Host, dir: string, args: string[]): Daemon {
  const home = join(dir, `h${h.index}`);
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, 'none.yaml'), '');
  const proc = h.spawn(process.execPath, [CLI, 'daemon', '--config', join(home, 'none.yaml'), '--node-name', `host${h.index}`,
    '--state-dir', join(home, 'state'), '--api-listen', `unix:${join(home, 'api.sock')}`, '--upstream-dns', '127.0.0.1:9',
    '--gossip-listen', '0.0.0.0:7946', '--advertise-address', h.address, '--gossip-key-file', join(dir, 'gossip.key'), ...args]);
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d));
  proc.stderr!.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((r) => proc.on('exit', r));
  const until = async (re: RegExp, ms = 30_000) => {
    const end = Date.now() + ms;
    while (!re.test(out) && Date.now() < end && proc.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    if (!re.test(out)) throw new Error(`no ${re} in host${h.index}'s daemon output:\n${out}`);
  };
  return { proc, exited, until };
}

t.test('a vip-mode service with containers on hosts 1 and 2, reached from host 3 through its VIP', async (t) => {
  const { hosts, dir } = createHosts(t, 3, 'h4l', [1, 2, 3]);
  const [h1, h2, h3] = hosts as [Host, Host, Host];
  writeFileSync(join(dir, 'gossip.key'), `${keygen()}\n`);
  const [p1, p2, p3] = await Promise.all([1, 2, 3].map((i) => hostPodman(t, hosts[i - 1]!, join(dir, `podman${i}`)))) as [HostPodman, HostPodman, HostPodman];
  const seed = ['--join', `${h1.address}:7946`];
  const d1 = startDaemon(h1, dir, ['--link', 'none', '--dns-listen', `${h1.address}:53`, '--podman-socket', p1.socket]);
  const d2 = startDaemon(h2, dir, ['--link', 'none', '--dns-listen', `${h2.address}:53`, '--podman-socket', p2.socket, ...seed]);
  // Host 3 keeps the default link: pswarm0 with the cluster DNS address and the VIPs.
  const d3 = startDaemon(h3, dir, ['--podman-socket', p3.socket, ...seed]);
  t.teardown(() => {
    for (const d of [d1, d2, d3]) if (d.proc.exitCode === null) d.proc.kill('SIGKILL');
  });
  await d3.until(/"msg":"ready/);

  const web = (p: typeof p1, i: number) => p.container(`h4l-web${i}-${process.pid}`,
    ['--label', 'podman-swarm.service=web', '--label', 'podman-swarm.mode=vip', '-p', '8080:80'],
    ['sh', '-c', `echo h${i} > /tmp/index.html && exec httpd -f -p 80 -h /tmp`]);
  await Promise.all([web(p1, 1), web(p2, 2)]);

  const dig = () => h3.exec('dig', ['+short', '+time=2', '+tries=1', '@10.223.0.10', 'web.default.cluster.local'], 5000).trim();
  const curl = (vip: string) => {
    try {
      return h3.exec('curl', ['-s', '--max-time', '3', `http://${vip}:80/`], 10_000).trim();
    } catch {
      return 'failed';
    }
  };
  // Both containers reach host 3 through gossip: wait for both to answer through the VIP.
  let vip = '';
  const seen = new Set<string>();
  const end = Date.now() + 60_000;
  while (seen.size < 2 && Date.now() < end) {
    vip = dig();
    if (/^10\.223\.\d+\.\d+$/.test(vip)) seen.add(curl(vip));
    seen.delete('failed');
    if (seen.size < 2) await new Promise((r) => setTimeout(r, 300));
  }
  t.match(vip, /^10\.223\.\d+\.\d+$/, "host 3's cluster DNS answers the VIP");
  t.not(vip, '10.223.0.10');
  t.match(h3.exec('ip', ['-o', 'addr', 'show', 'dev', 'pswarm0']), new RegExp(`inet ${vip.replace(/\./g, '\\.')}/32`), 'the VIP is on pswarm0');
  // The client: a container on host 3 whose resolver is the cluster DNS, six connections in a row.
  let client = 0;
  const fromContainer = async () => (await p3.run(['run', '--rm', '--name', `h4l-client${client++}-${process.pid}`, '--dns', '10.223.0.10', IMAGE, 'sh', '-c',
    // busybox-static's wget crashes here (Debian 1.35); nc speaks the HTTP request instead.
    'for i in 1 2 3 4 5 6; do printf "GET / HTTP/1.0\\r\\nHost: web.default.cluster.local\\r\\n\\r\\n" | nc -w 3 web.default.cluster.local 80 | tail -n 1 | grep . || echo failed; done'])).trim().split('\n');
  const first = await fromContainer();
  t.same([...new Set(first)].sort(), ['h1', 'h2'], `successive connections from a container on host 3 reach both hosts: ${first.join(' ')}`);

  // SIGKILL at once; unlike `kill`, `stop` returns once Podman has torn down the container's
  // port forwarding, so host 1 refuses (rather than black-holes) the connections still sent there.
  await p1.run(['stop', '-t', '0', `h4l-web1-${process.pid}`]);
  const after = await fromContainer();
  t.same(after, ['h2', 'h2', 'h2', 'h2', 'h2', 'h2'], 'host 1 down: every connection goes to host 2, none fails');

  d3.proc.kill('SIGTERM');
  t.equal(await d3.exited, 0, 'clean exit');
  t.throws(() => h3.exec('ip', ['link', 'show', 'dev', 'pswarm0']), 'pswarm0 and its VIPs are gone');
});
