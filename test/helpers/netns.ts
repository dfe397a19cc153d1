import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';

// A private network namespace for tests that need root-only things (port 53, the daemon's link)
// without touching the machine's own network. Removed when the test ends, whatever happens.

export const isRoot = process.getuid?.() === 0;

export interface Netns {
  name: string;
  /** Runs a command inside the namespace and returns its stdout. */
  exec(cmd: string, args: string[]): string;
  /** argv prefix that runs a command inside the namespace. */
  prefix: string[];
}

export function createNetns(t: { teardown(fn: () => unknown): void }, prefix = 'psdns'): Netns {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name]);
  t.teardown(() => {
    try {
      // Processes left inside would keep links alive: kill them first.
      const pids = execFileSync('ip', ['netns', 'pids', name]).toString().split('\n').filter(Boolean);
      for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* namespace already gone */
    }
    try {
      execFileSync('ip', ['netns', 'del', name]);
    } catch {
      /* already gone */
    }
  });
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  const pre = ['ip', 'netns', 'exec', name];
  return {
    name,
    prefix: pre,
    exec: (cmd, args) => execFileSync(pre[0]!, [...pre.slice(1), cmd, ...args], { encoding: 'utf8', timeout: 30_000 }),
  };
}

/**
 * argv that runs `cmd` in the namespace with `resolvConf` as its /etc/resolv.conf: a private
 * mount namespace (unshare -m) with a bind mount, so the machine's own file is never touched.
 * This is how resolver libraries (glibc, Go, c-ares, busybox) are pointed at a daemon on port 53.
 */
export function withResolvConf(ns: Netns, resolvConf: string, cmd: string, args: string[]): string[] {
  return ['nsenter', `--net=/run/netns/${ns.name}`, 'unshare', '--mount', '--propagation', 'private',
    'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolvConf, cmd, ...args];
}

export { spawn };
