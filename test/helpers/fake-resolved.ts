import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dbus from 'dbus-next';

// A private system bus (a real dbus-daemon) and stand-ins for org.freedesktop.resolve1 and
// org.freedesktop.network1 that record every call the daemon makes, with its exact signature,
// and can answer like an old resolved (no SetLinkDNSEx) or a networkd-managed link (LinkBusy).

export interface Call {
  service: string;
  member: string;
  signature: string;
  body: unknown[];
}

export interface FakeBehaviour {
  noDnsEx?: boolean;
  linkBusy?: boolean;
}

export interface PrivateBus {
  address: string;
  /** Starts a fake service owning `name`; stop() drops the connection (the name goes away). */
  serve(name: 'org.freedesktop.resolve1' | 'org.freedesktop.network1', behaviour?: FakeBehaviour): Promise<{ stop(): void }>;
  calls: Call[];
}

const CONF = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../../../shared/testing/dbus-system-bus.conf');

const FALLBACK_CONF = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=@SOCKET@</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
`;

export async function privateBus(t: { teardown(fn: () => unknown): void }): Promise<PrivateBus> {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-bus-'));
  const socket = join(dir, 'bus.sock');
  let conf: string;
  try {
    conf = readFileSync(CONF, 'utf8');
  } catch {
    conf = FALLBACK_CONF; // the same policy, when ../shared is not next to the checkout (CI)
  }
  writeFileSync(join(dir, 'bus.conf'), conf.replace('@SOCKET@', socket));
  const p = spawn('dbus-daemon', ['--config-file', join(dir, 'bus.conf'), '--nofork', '--print-address=1'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const conns: dbus.MessageBus[] = [];
  t.teardown(() => {
    for (const c of conns) c.disconnect();
    p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const address = await new Promise<string>((resolve, reject) => {
    p.stdout.once('data', (c: Buffer) => resolve(c.toString().trim()));
    p.once('exit', (code) => reject(new Error(`dbus-daemon exited with ${code}`)));
  });
  const calls: Call[] = [];
  return {
    address,
    calls,
    async serve(name, behaviour = {}) {
      const conn = connect(address);
      conns.push(conn);
      conn.addMethodHandler((msg: dbus.Message) => {
        if (msg.destination !== name) return false;
        calls.push({ service: name, member: msg.member, signature: msg.signature, body: msg.body });
        if (behaviour.noDnsEx && msg.member === 'SetLinkDNSEx') {
          conn.send(dbus.Message.newError(msg as never, 'org.freedesktop.DBus.Error.UnknownMethod', 'Unknown method SetLinkDNSEx'));
        } else if (behaviour.linkBusy && msg.member.startsWith('SetLink')) {
          conn.send(dbus.Message.newError(msg as never, 'org.freedesktop.resolve1.LinkBusy', 'Link is managed by networkd'));
        } else {
          conn.send(dbus.Message.newMethodReturn(msg, '', []));
        }
        return true;
      });
      await conn.requestName(name, 0);
      return { stop: () => conn.disconnect() };
    },
  };
}

function connect(address: string): dbus.MessageBus {
  const saved = process.env.DBUS_SYSTEM_BUS_ADDRESS;
  process.env.DBUS_SYSTEM_BUS_ADDRESS = address;
  try {
    return dbus.systemBus();
  } finally {
    if (saved === undefined) delete process.env.DBUS_SYSTEM_BUS_ADDRESS;
    else process.env.DBUS_SYSTEM_BUS_ADDRESS = saved;
  }
}

export function ifindexIn(netns: string, link: string): number {
  return Number(/^(\d+):/.exec(execFileSync('ip', ['-n', netns, '-o', 'link', 'show', 'dev', link], { encoding: 'utf8' }))![1]);
}
