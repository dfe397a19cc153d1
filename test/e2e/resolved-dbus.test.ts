import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../helpers/daemon.js';
import { ifindexIn, privateBus, type Call, type PrivateBus } from '../helpers/fake-resolved.js';
import { createNetns, isRoot, type Netns } from '../helpers/netns.js';
import { waiter } from '../helpers/until.js';

const until = waiter(15_000);

// The resolved client against a real dbus-daemon with recording stand-ins for resolve1 and
// network1: what the daemon asks for (methods, signatures, values), the SetLinkDNSEx → SetLinkDNS
// fallback, LinkBusy → network1, re-applying when resolved restarts or the link is recreated,
// RevertLink on SIGTERM. Root: the daemon makes its link pswarm0 (in a private netns).

if (!isRoot) {
  t.comment('skipped: needs root (run by .ci/run as root)');
  process.exit(0);
}

type Tap = { teardown(fn: () => unknown): void };

function daemonIn(t: Tap, ns: Netns, bus: PrivateBus, extra: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-rs-'));
  writeFileSync(join(dir, 'config.yaml'), '');
  const argv = [...ns.prefix, process.execPath, CLI, 'daemon', '--config', join(dir, 'config.yaml'), '--state-dir', join(dir, 'state'),
    '--api-listen', `unix:${join(dir, 'api.sock')}`, '--upstream-dns', '127.0.0.1:9', ...extra];
  const p = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: bus.address } });
  let out = '';
  p.stdout.on('data', (c: Buffer) => (out += c));
  p.stderr.on('data', (c: Buffer) => (out += c));
  const exited = new Promise<number | null>((r) => p.on('exit', r));
  t.teardown(async () => {
    if (p.exitCode === null) p.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });
  return { p, exited, out: () => out };
}

const members = (calls: Call[]) => calls.map((c) => `${c.service.split('.')[2]}.${c.member}(${c.signature})`);
const V4 = (s: string) => Buffer.from(s.split('.').map(Number));

t.test('configures pswarm0, re-applies on resolved restart and link re-creation, reverts on stop', async (t) => {
  const ns = createNetns(t, 's7rs');
  const bus = await privateBus(t);
  let resolved = await bus.serve('org.freedesktop.resolve1');
  const d = daemonIn(t, ns, bus);
  await until('the three calls', () => bus.calls.length >= 3);
  const ifindex = ifindexIn(ns.name, 'pswarm0');
  t.same(bus.calls.slice(0, 3).map((c) => ({ ...c })), [
    { service: 'org.freedesktop.resolve1', member: 'SetLinkDNSEx', signature: 'ia(iayqs)', body: [ifindex, [[2, V4('10.223.0.10'), 0, '']]] },
    { service: 'org.freedesktop.resolve1', member: 'SetLinkDomains', signature: 'ia(sb)', body: [ifindex, [['cluster.local', true]]] },
    { service: 'org.freedesktop.resolve1', member: 'SetLinkDefaultRoute', signature: 'ib', body: [ifindex, false] },
  ], 'DNS server (AF_INET, 10.223.0.10, port 0 = 53), ~cluster.local routing-only, no default route');
  await until('the log line', () => /systemd-resolved: ~cluster.local goes to 10.223.0.10 on link pswarm0/.test(d.out()));

  // resolved restarts: a new owner of the name gets the settings again.
  bus.calls.length = 0;
  resolved.stop();
  resolved = await bus.serve('org.freedesktop.resolve1');
  await until('re-applied after NameOwnerChanged', () => bus.calls.length >= 3);
  t.same(members(bus.calls), ['resolve1.SetLinkDNSEx(ia(iayqs))', 'resolve1.SetLinkDomains(ia(sb))', 'resolve1.SetLinkDefaultRoute(ib)']);

  // The link is recreated (new ifindex): applied to the new one.
  bus.calls.length = 0;
  ns.exec('ip', ['link', 'del', 'pswarm0']);
  ns.exec('ip', ['link', 'add', 'pswarm0', 'type', 'bridge']);
  const newIndex = ifindexIn(ns.name, 'pswarm0');
  await until('re-applied to the new link', () => bus.calls.length >= 3);
  t.equal(bus.calls[0]!.body[0], newIndex, 'the new ifindex');

  bus.calls.length = 0;
  d.p.kill('SIGTERM');
  t.equal(await d.exited, 0);
  t.same(bus.calls.map((c) => ({ member: c.member, signature: c.signature, body: c.body })), [{ member: 'RevertLink', signature: 'i', body: [newIndex] }], 'RevertLink on stop');
});

t.test('old resolved without SetLinkDNSEx: falls back to SetLinkDNS like resolvectl', async (t) => {
  const ns = createNetns(t, 's7rs');
  const bus = await privateBus(t);
  await bus.serve('org.freedesktop.resolve1', { noDnsEx: true });
  daemonIn(t, ns, bus);
  await until('the calls', () => bus.calls.length >= 4);
  const ifindex = ifindexIn(ns.name, 'pswarm0');
  t.same(members(bus.calls), ['resolve1.SetLinkDNSEx(ia(iayqs))', 'resolve1.SetLinkDNS(ia(iay))', 'resolve1.SetLinkDomains(ia(sb))', 'resolve1.SetLinkDefaultRoute(ib)']);
  t.same(bus.calls[1]!.body, [ifindex, [[2, V4('10.223.0.10')]]]);
});

t.test('LinkBusy (networkd owns the link): the same calls go to network1', async (t) => {
  const ns = createNetns(t, 's7rs');
  const bus = await privateBus(t);
  await bus.serve('org.freedesktop.resolve1', { linkBusy: true });
  await bus.serve('org.freedesktop.network1');
  const d = daemonIn(t, ns, bus);
  await until('the calls', () => bus.calls.length >= 4);
  t.same(members(bus.calls), ['resolve1.SetLinkDNSEx(ia(iayqs))', 'network1.SetLinkDNSEx(ia(iayqs))', 'network1.SetLinkDomains(ia(sb))', 'network1.SetLinkDefaultRoute(ib)']);
  bus.calls.length = 0;
  d.p.kill('SIGTERM');
  await d.exited;
  t.same(members(bus.calls), ['network1.RevertLinkDNS(i)'], 'reverted through networkd');
});

t.test('no resolved on the bus: one log line, DNS still served; --resolved off: no calls at all', async (t) => {
  const ns = createNetns(t, 's7rs');
  const bus = await privateBus(t);
  const d = daemonIn(t, ns, bus);
  await until('the log line', () => /systemd-resolved: org.freedesktop.resolve1 is not on the system bus/.test(d.out()));
  t.equal(ns.exec('dig', ['+short', '+time=2', '+tries=1', '@10.223.0.10', 'dns-version.cluster.local', 'TXT']).trim(), '"1.1.0"');
  d.p.kill('SIGTERM');
  t.equal(await d.exited, 0);
  t.equal(d.out().match(/is not on the system bus/g)?.length, 1, 'logged once');

  const ns2 = createNetns(t, 's7rs');
  await bus.serve('org.freedesktop.resolve1');
  const off = daemonIn(t, ns2, bus, ['--resolved', 'off']);
  await until('ready', () => /"msg":"ready/.test(off.out()));
  off.p.kill('SIGTERM');
  await off.exited;
  t.same(bus.calls, [], '--resolved off');
});
