import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from './daemon.js';

// Simulated hosts (../shared/TESTING.md "Several hosts"): network namespaces joined by veths to
// a bridge without an address in the root namespace, so nothing leaves the machine. Names carry
// a random suffix so several runs (and other suites) can coexist; everything is removed at
// teardown, whatever happened.

export interface Host {
  index: number;
  ns: string;
  /** The host-side veth: `ip link set <veth> down` cuts the host off. */
  veth: string;
  address: string;
  /** argv prefix running a command on this host. */
  prefix: string[];
  /** Set when the host has a private mount namespace (for its own Podman). */
  mountNs?: string;
  exec(cmd: string, args: string[], timeoutMs?: number): string;
  spawn(cmd: string, args: string[]): ChildProcess;
}

export interface Hosts {
  hosts: Host[];
  dir: string;
  cut(h: Host): void;
  restore(h: Host): void;
}

/**
 * `podmanHosts`: indexes of hosts that get a private mount namespace in which
 * /run/containers/networks is their own (rootful Podman keeps network state there whatever
 * --root says; without it the hosts' Podman networks would collide), as hosts-up.sh does.
 */
export function createHosts(t: { teardown(fn: () => unknown): void }, n: number, prefix = 'g4', podmanHosts: number[] = []): Hosts {
  const id = randomBytes(2).toString('hex');
  const p = `${prefix}${id}`;
  const subnet = `10.244.${parseInt(id, 16) % 250}`;
  const dir = mkdtempSync(join(tmpdir(), `${p}-`));
  const bridge = `${p}br`;
  const procs = new Set<ChildProcess>();
  const hosts: Host[] = [];
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const run = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => {
    for (const c of procs) if (c.exitCode === null) c.kill('SIGKILL');
    for (const h of hosts) if (h.mountNs) try { run('umount', h.mountNs); } catch { /* gone */ }
    if (podmanHosts.length) try { run('umount', join(dir, 'ns')); } catch { /* gone */ }
    for (const h of hosts) {
      try {
        for (const pid of execFileSync('ip', ['netns', 'pids', h.ns]).toString().split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
      try { ip('netns', 'del', h.ns); } catch { /* gone */ }
      try { ip('link', 'del', h.veth); } catch { /* gone */ }
    }
    try { ip('link', 'del', bridge); } catch { /* gone */ }
    rmSync(dir, { recursive: true, force: true });
  });
  ip('link', 'add', bridge, 'type', 'bridge');
  ip('link', 'set', bridge, 'up');
  if (podmanHosts.length) {
    // Podman creates it on first use; on a fresh machine the hosts' private mounts need it first.
    mkdirSync('/run/containers/networks', { recursive: true });
    mkdirSync(join(dir, 'ns'));
    run('mount', '--bind', join(dir, 'ns'), join(dir, 'ns'));
    run('mount', '--make-private', join(dir, 'ns'));
  }
  for (let i = 1; i <= n; i++) {
    const ns = `${p}-${i}`;
    let mountNs: string | undefined;
    if (podmanHosts.includes(i)) {
      mountNs = join(dir, 'ns', `mnt-${i}`);
      const netrun = join(dir, `h${i}`, 'netrun');
      mkdirSync(netrun, { recursive: true });
      writeFileSync(mountNs, '');
      run('unshare', `--mount=${mountNs}`, '--propagation', 'slave', 'mount', '--bind', netrun, '/run/containers/networks');
    }
    const enter = [`--net=/run/netns/${ns}`, ...(mountNs ? [`--mount=${mountNs}`] : [])];
    const veth = `${p}v${i}`;
    const address = `${subnet}.${10 + i}`;
    const h: Host = {
      index: i, ns, veth, address, mountNs,
      prefix: ['nsenter', ...enter],
      exec: (cmd, args, timeoutMs = 30_000) => execFileSync('nsenter', [...enter, cmd, ...args], { encoding: 'utf8', timeout: timeoutMs }),
      spawn: (cmd, args) => {
        const c = spawn('nsenter', [...enter, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        procs.add(c);
        return c;
      },
    };
    hosts.push(h);
    ip('netns', 'add', ns);
    ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('link', 'set', veth, 'master', bridge, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
  }
  return {
    hosts,
    dir,
    cut: (h) => ip('link', 'set', h.veth, 'down'),
    restore: (h) => ip('link', 'set', h.veth, 'up'),
  };
}

/** A daemon on a simulated host: its process, API socket and output so far. */
export interface HostDaemon {
  host: Host;
  proc: ChildProcess;
  socket: string;
  logs: () => string;
}

/**
 * The daemon as root on `host`, its home `<dir>/h<index>` (an empty config, state, API socket):
 * no link, DNS on the host's address port 53 (or `dnsListen`), that address advertised, `upstream` as its upstream
 * DNS (default: a closed port, nothing leaves the host); `args` add to these (gossip, Podman,
 * registry). Started again with the same `dir`, it finds its state.
 */
export function startHostDaemon(host: Host, dir: string, args: string[], o: { upstream?: string; dnsListen?: string } = {}): HostDaemon {
  const home = join(dir, `h${host.index}`);
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, 'none.yaml'), '');
  const socket = join(home, 'api.sock');
  const proc = host.spawn(process.execPath, [
    CLI, 'daemon', '--config', join(home, 'none.yaml'), '--link', 'none', '--node-name', `host${host.index}`,
    '--state-dir', join(home, 'state'), '--dns-listen', o.dnsListen ?? `${host.address}:53`, '--api-listen', `unix:${socket}`,
    '--upstream-dns', o.upstream ?? '127.0.0.1:9', '--advertise-address', host.address, ...args,
  ]);
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c));
  proc.stderr!.on('data', (c: Buffer) => (out += c));
  return { host, proc, socket, logs: () => out };
}

/** Gossip on port 7946 of every address with the key in `keyFile`, joining `seeds` (host:port). */
export const gossipArgs = (keyFile: string, seeds: string[] = []): string[] => [
  '--gossip-listen', '0.0.0.0:7946', '--gossip-key-file', keyFile, ...(seeds.length ? ['--join', seeds.join(',')] : []),
];
