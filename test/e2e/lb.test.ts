import t from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ROOT } from '../helpers/daemon.js';
import { isRoot } from '../helpers/netns.js';

// Simulated hosts (../shared/TESTING.md): network namespaces on a private bridge. Host 3 runs the
// daemon with a vip-mode service whose endpoints live on hosts 1 and 2; a client on host 3 asks
// the cluster DNS address for the name, gets the VIP (held on pswarm0) and reaches both
// backends through it; when host 1's backend dies every connection goes to host 2.
// Cross-host registration needs gossip (issue 4): until then the endpoints are given to host 3's
// daemon in its config file, as a host that knows them from gossip would hold them.

if (!isRoot) {
  t.comment('skipped: needs root (run by .ci/run as root)');
  process.exit(0);
}

const TESTING = join(ROOT, '..', 'shared', 'testing');
const P = `l6${randomBytes(2).toString('hex')}`;
const W = mkdtempSync(join(tmpdir(), 'l6-hosts-'));

function sh(script: string, ...args: string[]): string {
  return execFileSync('sh', [join(TESTING, script), ...args], { encoding: 'utf8', timeout: 60_000 });
}

const children: ChildProcess[] = [];
function hostsUp(t: { teardown(fn: () => unknown): void }): void {
  t.teardown(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    try {
      sh('hosts-down.sh', '3', P, W);
    } finally {
      rmSync(W, { recursive: true, force: true });
    }
  });
  // Podman creates it on first use; the hosts' private mounts go on top of it.
  execFileSync('mkdir', ['-p', '/run/containers/networks']);
  sh('hosts-up.sh', '3', P, W);
}

const onHost = (i: number, cmd: string, args: string[]) => ['nsenter', `--mount=${W}/ns/mnt-${i}`, `--net=/run/netns/${P}${i}`, cmd, ...args];
const exec = (i: number, cmd: string, args: string[]) => {
  const [c, ...a] = onHost(i, cmd, args);
  return execFileSync(c!, a, { encoding: 'utf8', timeout: 20_000 });
};
function start(i: number, cmd: string, args: string[]) {
  const [c, ...a] = onHost(i, cmd, args);
  const p = spawn(c!, a, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(p);
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d));
  p.stderr!.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((r) => p.on('exit', r));
  const until = async (re: RegExp, ms = 15_000) => {
    const end = Date.now() + ms;
    while (!re.test(out) && Date.now() < end && p.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    if (!re.test(out)) throw new Error(`no ${re} in the output:\n${out}`);
  };
  return { p, exited, until, out: () => out };
}

const web = (i: number) =>
  start(i, process.execPath, ['-e', `require('http').createServer((q, s) => s.end('h${i}\\n')).listen(8080, '10.250.0.1${i}', () => console.log('up'))`]);

t.test('a vip-mode service on hosts 1 and 2, reached from host 3 through its VIP on pswarm0', async (t) => {
  hostsUp(t);
  const backends = [web(1), web(2)];
  for (const b of backends) await b.until(/up/);
  writeFileSync(join(W, 'config.yaml'), [
    'services:',
    '  - name: web',
    '    mode: vip',
    '    endpoints:',
    '      - { id: h1, address: 10.250.0.11, ports: { http: 8080/tcp } }',
    '      - { id: h2, address: 10.250.0.12, ports: { http: 8080/tcp } }',
    '',
  ].join('\n'));
  const d = start(3, process.execPath, [CLI, 'daemon', '--config', join(W, 'config.yaml'), '--state-dir', join(W, 'state'), '--api-listen', `unix:${join(W, 'api.sock')}`, '--upstream-dns', '127.0.0.1:9', '--node-name', 'h3']);
  await d.until(/"msg":"ready/);

  const vip = exec(3, 'dig', ['+short', '+time=2', '+tries=1', '@10.223.0.10', 'web.default.cluster.local']).trim();
  t.match(vip, /^10\.223\.\d+\.\d+$/, 'the cluster DNS answers the VIP');
  t.not(vip, '10.223.0.10');
  t.match(exec(3, 'ip', ['-o', 'addr', 'show', 'dev', 'pswarm0']), new RegExp(`inet ${vip.replace(/\./g, '\\.')}/32`), 'the VIP is on pswarm0');
  await d.until(/load balancer: default\/web port http on/);

  const curl = () => {
    try {
      return exec(3, 'curl', ['-s', '--max-time', '3', `http://${vip}:8080/`]).trim();
    } catch {
      return 'failed';
    }
  };
  const first = Array.from({ length: 6 }, curl);
  t.same([...new Set(first)].sort(), ['h1', 'h2'], `successive connections reach both hosts: ${first.join(' ')}`);

  backends[0]!.p.kill('SIGKILL');
  await backends[0]!.exited;
  const after = Array.from({ length: 6 }, curl);
  t.same(after, ['h2', 'h2', 'h2', 'h2', 'h2', 'h2'], 'host 1 down: every connection goes to host 2, none fails');
  const metrics = exec(3, 'curl', ['-s', '--unix-socket', join(W, 'api.sock'), 'http://x/metrics']);
  t.match(metrics, /podman_swarm_dns_lb_ejections_total\{service="default\/web",listener="tcp:[\d.]+:8080",backend="10\.250\.0\.11:8080"\} 1/, 'the dead endpoint was ejected once');

  d.p.kill('SIGTERM');
  t.equal(await d.exited, 0, 'clean exit');
  t.throws(() => exec(3, 'ip', ['link', 'show', 'dev', 'pswarm0']), 'pswarm0 and its VIPs are gone');
});
