import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './daemon.js';

// A Debian bookworm booted with a real systemd as PID 1 in systemd-nspawn (../shared/TESTING.md):
// private network, the cached rootfs kept unchanged (--volatile=overlay), commands run inside
// through nsenter. Stopped and cleaned up when the test ends.

export interface Machine {
  name: string;
  /** PID (on the host) of the container's systemd. */
  leader: number;
  /** The container's root as seen from the host, for copying files in. */
  root: string;
  /** Runs a command inside; throws with its output on a non-zero exit. */
  exec(cmd: string, ...args: string[]): string;
  /** Runs a command inside; never throws. */
  run(cmd: string, ...args: string[]): { code: number | null; out: string };
}

export function nspawnUsable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const bin of ['systemd-nspawn', 'debootstrap', 'nsenter']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) return `${bin} is not installed`;
  }
  return null;
}

/** The cached rootfs (built on first use by test/helpers/bookworm-rootfs.sh). */
export function bookwormRootfs(): string {
  return execFileSync(join(ROOT, 'test/helpers/bookworm-rootfs.sh'), { encoding: 'utf8', timeout: 15 * 60_000, stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

export async function bootMachine(
  t: { teardown(fn: () => unknown): void },
  o: { rootfs: string; prefix: string; bindRo?: Array<[string, string]>; /** a network namespace under /run/netns to boot in, instead of a private network (with CAP_NET_ADMIN, which nspawn keeps only for a private network) */ netns?: string; /** false: write to rootfs itself (already an overlay the caller made, on disk) */ volatile?: boolean },
): Promise<Machine> {
  const name = `${o.prefix}-${randomBytes(3).toString('hex')}`;
  const args = ['-q', '-D', o.rootfs, '-b', '--machine', name, '--register=no', '--keep-unit', ...(o.netns ? [`--network-namespace-path=/run/netns/${o.netns}`, '--capability=CAP_NET_ADMIN'] : ['--private-network']), ...(o.volatile === false ? [] : ['--volatile=overlay']), '--console=pipe',
    ...(o.bindRo ?? []).map(([h, g]) => `--bind-ro=${h}:${g}`)];
  const p = spawn('systemd-nspawn', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (c: Buffer) => (out += c));
  p.stderr.on('data', (c: Buffer) => (out += c));
  const exited = new Promise<void>((r) => p.on('exit', () => r()));
  t.teardown(async () => {
    if (p.exitCode === null) {
      p.kill('SIGTERM'); // nspawn shuts the container down cleanly
      const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(`/run/systemd/nspawn/propagate/${name}`, { recursive: true, force: true });
  });
  // nspawn's first child is a short-lived setup process that forks the container's init; wait for
  // the child that is systemd itself (on a loaded machine the setup child lives long enough to be
  // picked, and nsenter into it then fails once it has exited).
  const initOf = (pid: number): number => {
    const file = `/proc/${pid}/task/${pid}/children`;
    const children = existsSync(file) ? readFileSync(file, 'utf8').trim().split(' ').filter(Boolean).map(Number) : [];
    for (const c of children) {
      try {
        if (readFileSync(`/proc/${c}/comm`, 'utf8').trim() === 'systemd') return c;
      } catch {
        /* exited meanwhile */
      }
    }
    return 0;
  };
  let leader = 0;
  // Generous: CI boots these while other suites keep both cores busy.
  const end = Date.now() + 120_000;
  while (!leader) {
    if (p.exitCode !== null || Date.now() > end) throw new Error(`systemd-nspawn did not boot:\n${out}`);
    leader = initOf(p.pid!);
    if (!leader) await new Promise((r) => setTimeout(r, 50));
  }
  const enter = ['-t', String(leader), '-m', '-u', '-i', '-n', '-p', '-C', '--'];
  const m: Machine = {
    name,
    leader,
    root: `/proc/${leader}/root`,
    exec: (cmd, ...a) => {
      const r = spawnSync('nsenter', [...enter, cmd, ...a], { encoding: 'utf8', timeout: 60_000 });
      if (r.status !== 0) throw new Error(`${cmd} ${a.join(' ')} (in ${name}) exited with ${r.status}:\n${r.stdout}${r.stderr}`);
      return r.stdout;
    },
    run: (cmd, ...a) => {
      const r = spawnSync('nsenter', [...enter, cmd, ...a], { encoding: 'utf8', timeout: 60_000 });
      return { code: r.status, out: `${r.stdout}${r.stderr}` };
    },
  };
  // Booted: systemd reached its default target (or says why not).
  // ("offline" until its manager socket is up, so ask again.)
  let state = '';
  while (!/^(running|degraded)/.test(state)) {
    if (Date.now() > end) throw new Error(`${name} did not finish booting: ${state}\n${out}`);
    state = m.run('systemctl', 'is-system-running', '--wait').out.trim();
    if (!/^(running|degraded)/.test(state)) await new Promise((r) => setTimeout(r, 100));
  }
  return m;
}
