import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
  exec(cmd: string, args: string[], timeoutMs?: number): string;
  spawn(cmd: string, args: string[]): ChildProcess;
}

export interface Hosts {
  hosts: Host[];
  dir: string;
  cut(h: Host): void;
  restore(h: Host): void;
}

export function createHosts(t: { teardown(fn: () => unknown): void }, n: number, prefix = 'g4'): Hosts {
  const id = randomBytes(2).toString('hex');
  const p = `${prefix}${id}`;
  const subnet = `10.244.${parseInt(id, 16) % 250}`;
  const dir = mkdtempSync(join(tmpdir(), `${p}-`));
  const bridge = `${p}br`;
  const procs = new Set<ChildProcess>();
  const hosts: Host[] = [];
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => {
    for (const c of procs) if (c.exitCode === null) c.kill('SIGKILL');
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
  for (let i = 1; i <= n; i++) {
    const ns = `${p}-${i}`;
    const veth = `${p}v${i}`;
    const address = `${subnet}.${10 + i}`;
    const h: Host = {
      index: i, ns, veth, address,
      prefix: ['nsenter', `--net=/run/netns/${ns}`],
      exec: (cmd, args, timeoutMs = 30_000) => execFileSync('nsenter', [`--net=/run/netns/${ns}`, cmd, ...args], { encoding: 'utf8', timeout: timeoutMs }),
      spawn: (cmd, args) => {
        const c = spawn('nsenter', [`--net=/run/netns/${ns}`, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
