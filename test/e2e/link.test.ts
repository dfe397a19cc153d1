import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ROOT, runCli } from '../helpers/daemon.js';
import { createNetns, isRoot } from '../helpers/netns.js';

// As root the daemon uses the SPEC defaults: it creates its link pswarm0 holding the cluster DNS
// address 10.223.0.10 and serves DNS there and on 127.0.0.1:53. Run inside a private network
// namespace so the machine's own network is untouched.

if (!isRoot) {
  t.comment('skipped: needs root (run by .ci/run as root)');
  process.exit(0);
}

const CONFIG = 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.1\n';

// As user nobody, without the test runner's NODE_OPTIONS (it adds its loaders, which sit in the
// checkout: nobody may not be able to read them).
const asNobody = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', 'env', '-u', 'NODE_OPTIONS'];

/**
 * What the daemon runs from (dist/, the runtime npm packages, package.json, the addon), copied
 * to a directory everyone can read: the checkout may sit in a home directory that only its
 * owner can enter (a clone in /root), where `nobody` could not load dist/cli.js. Returns the
 * copy's cli.js.
 */
function readableCopy(t: Tap): string {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-e2e-app-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  for (const [path, p] of Object.entries(lock.packages)) {
    // Top-level runtime packages (nested ones come with their parent).
    if (!path || p.dev || path.lastIndexOf('node_modules/') !== 0 || !existsSync(join(ROOT, path))) continue;
    cpSync(join(ROOT, path), join(dir, path), { recursive: true });
  }
  for (const f of readdirSync(join(ROOT, 'native')).filter((n) => n.endsWith('.node'))) cpSync(join(ROOT, 'native', f), join(dir, 'native', f));
  spawnSync('chmod', ['-R', 'a+rX', dir]);
  return join(dir, 'dist', 'cli.js');
}

/** Why `nobody` cannot run this Node.js binary (it sits under a directory closed to others), or null. */
function nodeClosedToNobody(): string | null {
  const r = spawnSync(asNobody[0]!, [...asNobody.slice(1), process.execPath, '-e', ''], { encoding: 'utf8', cwd: '/' });
  return r.status === 0 ? null : `user nobody cannot run ${process.execPath} (${(r.stderr || r.error?.message || '').trim()}): install Node.js where every user can run it (e.g. /usr/bin, /opt)`;
}

function runInNetns(t: Tap, prefix: string[], args: string[], opts: { nobody?: boolean; cli?: string } = {}) {
  const argv = [...prefix, ...(opts.nobody ? asNobody : []), process.execPath, opts.cli ?? CLI, ...args];
  const p = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/', env: { ...process.env, HOME: '/nonexistent', XDG_RUNTIME_DIR: '' } });
  let out = '';
  p.stdout.on('data', (c: Buffer) => (out += c));
  p.stderr.on('data', (c: Buffer) => (out += c));
  const exited = new Promise<number | null>((r) => p.on('exit', r));
  t.teardown(async () => {
    if (p.exitCode === null) p.kill('SIGKILL');
    await exited;
  });
  const until = async (re: RegExp, ms = 15_000) => {
    const end = Date.now() + ms;
    while (!re.test(out) && Date.now() < end && p.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    if (!re.test(out)) throw new Error(`no ${re} in the daemon output:\n${out}`);
  };
  return { p, exited, until, out: () => out };
}

type Tap = { teardown(fn: () => unknown): void };

t.test('as root: link pswarm0 with 10.223.0.10, DNS on :53, link removed at stop', async (t) => {
  const ns = createNetns(t);
  const dir = mkdtempSync(join(tmpdir(), 'psdns-e2e-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'config.yaml'), CONFIG);
  const d = runInNetns(t, ns.prefix, ['daemon', '--config', join(dir, 'config.yaml'), '--state-dir', join(dir, 'state'), '--api-listen', `unix:${join(dir, 'api.sock')}`, '--upstream-dns', '127.0.0.1:9']);
  await d.until(/"msg":"ready/);
  t.match(d.out(), /link pswarm0 \((dummy|bridge)\) holds the cluster DNS address 10\.223\.0\.10/);
  t.match(ns.exec('ip', ['-o', 'addr', 'show', 'dev', 'pswarm0']), /inet 10\.223\.0\.10\/32/);
  for (const server of ['10.223.0.10', '127.0.0.1']) {
    const out = ns.exec('dig', ['+short', '+time=2', '+tries=1', `@${server}`, 'web.default.cluster.local']);
    t.equal(out.trim(), '10.0.0.1', `answers on ${server}:53`);
  }
  d.p.kill('SIGTERM');
  t.equal(await d.exited, 0, 'clean exit on SIGTERM');
  t.throws(() => ns.exec('ip', ['link', 'show', 'dev', 'pswarm0']), 'the link is gone');
});

t.test('port 53 already taken: the error names the address, the owner and the fix', async (t) => {
  const ns = createNetns(t);
  const dir = mkdtempSync(join(tmpdir(), 'psdns-e2e-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const blocker = spawn(ns.prefix[0]!, [...ns.prefix.slice(1), process.execPath, '-e', "require('dgram').createSocket('udp4').bind(53, '127.0.0.1'); setTimeout(() => {}, 60000)"]);
  t.teardown(() => blocker.kill('SIGKILL'));
  await new Promise((r) => setTimeout(r, 500));
  const d = runInNetns(t, ns.prefix, ['daemon', '--link', 'none', '--dns-listen', '127.0.0.1:53', '--state-dir', join(dir, 'state'), '--api-listen', `unix:${join(dir, 'api.sock')}`]);
  t.equal(await d.exited, 1);
  t.match(d.out(), /cannot serve DNS on 127\.0\.0\.1 \(udp\): the address is already in use by node \(pid \d+\); stop that program or choose another address with --dns-listen/);
});

t.test('as a normal user: serves 127.0.0.1:5353 and says so in one line', { skip: nodeClosedToNobody() ?? false }, async (t) => {
  const ns = createNetns(t);
  const cli = readableCopy(t);
  const dir = mkdtempSync(join(tmpdir(), 'psdns-e2e-'));
  chmodSync(dir, 0o777);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'config.yaml'), CONFIG);
  const d = runInNetns(t, ns.prefix, ['daemon', '--config', join(dir, 'config.yaml'), '--state-dir', join(dir, 'state'), '--upstream-dns', '127.0.0.1:9'], { nobody: true, cli });
  await d.until(/"msg":"ready/);
  t.match(d.out(), /not running as root \(no CAP_NET_BIND_SERVICE\): serving DNS on 127\.0\.0\.1:5353/);
  t.match(d.out(), /no CAP_NET_ADMIN: not creating link pswarm0/);
  t.equal(ns.exec('dig', ['+short', '+time=2', '+tries=1', '@127.0.0.1', '-p', '5353', 'web.default.cluster.local']).trim(), '10.0.0.1');
  t.match(ns.exec('curl', ['-s', 'http://127.0.0.1:8080/api/v1/services']), /"name": "web"/, 'API on 127.0.0.1:8080');
});

t.test('two daemons in two network namespaces: each state dir has its own API socket; a shared state dir is an error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-e2e-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'config.yaml'), CONFIG);
  // No --api-listen: the default API listeners, as an operator would run it.
  const args = (state: string, name: string) => ['daemon', '--config', join(dir, 'config.yaml'), '--link', 'none', '--dns-listen', '127.0.0.1:53',
    '--state-dir', join(dir, state), '--node-name', name, '--upstream-dns', '127.0.0.1:9', '--podman-socket', 'none'];
  const [a, b, c] = [createNetns(t), createNetns(t), createNetns(t)];
  const da = runInNetns(t, a.prefix, args('a', 'host-a'));
  const db = runInNetns(t, b.prefix, args('b', 'host-b'));
  await da.until(/"msg":"ready/);
  await db.until(/"msg":"ready/);
  t.notMatch(da.out() + db.out(), /cannot serve the API/, 'both serve their API socket');
  for (const [state, name] of [['a', 'host-a'], ['b', 'host-b']]) {
    const status = await runCli(['status', '--json', '--state-dir', join(dir, state!)]);
    t.equal(status.code, 0, `status --state-dir ${state}`);
    t.match(JSON.parse(status.stdout), { node: { name } }, `--state-dir ${state} reaches the daemon of that state dir`);
  }
  const env = await runCli(['status', '--json'], { PODMAN_SWARM_DNS_STATE_DIR: join(dir, 'b') });
  t.match(JSON.parse(env.stdout), { node: { name: 'host-b' } }, 'so does PODMAN_SWARM_DNS_STATE_DIR');

  const dc = runInNetns(t, c.prefix, args('a', 'host-c'));
  t.equal(await dc.exited, 2, 'a second daemon on the same state dir stops with a configuration error');
  t.match(dc.out(), new RegExp(`another podman-swarm-dns daemon already runs with the state dir ${join(dir, 'a')} \\(its API answers on unix:${join(dir, 'a', 'api.sock')}\\); two daemons must not share one: give this one its own --state-dir`));
  t.notMatch(dc.out(), /serving DNS/, 'it stopped before serving anything');
  const still = await runCli(['status', '--json', '--state-dir', join(dir, 'a')]);
  t.match(JSON.parse(still.stdout), { node: { name: 'host-a' } }, 'the first daemon keeps its socket');
});
