import { copyFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { execFile, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Host } from './hosts.js';
import { CONTAINERS_CONF, IMAGE } from './podman.js';

// A Podman private to one simulated host (create the host with a mount namespace, see
// createHosts' podmanHosts): its own storage, network config and service socket, started inside
// the host so published ports and container networks live in the host's network namespace.

export interface HostPodman {
  socket: string;
  /** podman --remote through this host's service. */
  run(args: string[]): Promise<string>;
  /** `podman run -d --name <name> <args> IMAGE <cmd>`; the container is removed at teardown. */
  container(name: string, args: string[], cmd: string[]): Promise<string>;
}

async function until(what: string, check: () => unknown, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (e) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export async function hostPodman(t: { teardown(fn: () => unknown): void }, h: Host, dir: string): Promise<HostPodman> {
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, 'podman.sock');
  const env = { ...process.env, CONTAINERS_CONF };
  const storage = ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--tmpdir', join(dir, 'tmp'),
    '--network-config-dir', join(dir, 'net'), '--storage-driver', 'vfs', '--events-backend', 'file'];
  const service = h.spawn('env', [`CONTAINERS_CONF=${CONTAINERS_CONF}`, 'podman', ...storage, 'system', 'service', '--time=0', `unix://${socket}`]);
  service.stdout!.resume();
  service.stderr!.resume();
  const containers: string[] = [];
  const remote = ['--remote', '--url', `unix://${socket}`];
  const run = (args: string[]) => new Promise<string>((resolve, reject) => {
    execFile('podman', [...remote, ...args], { encoding: 'utf8', timeout: 60_000, env }, (err, stdout, stderr) =>
      err ? reject(new Error(`podman ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout));
  });
  t.teardown(() => {
    if (containers.length) try { execFileSync('podman', [...remote, 'rm', '-f', '-t', '0', ...containers], { env, timeout: 60_000, stdio: 'ignore' }); } catch { /* not created */ }
    service.kill('SIGKILL');
  });
  await until(`host${h.index}'s podman service`, () => execFileSync('podman', [...remote, 'version', '--format', '{{.Server.Version}}'], { env, stdio: 'ignore' }), 20_000);
  const bb = join(dir, 'bb');
  mkdirSync(join(bb, 'bin'), { recursive: true });
  mkdirSync(join(bb, 'tmp'), { recursive: true });
  copyFileSync('/bin/busybox', join(bb, 'bin', 'busybox'));
  for (const a of ['sh', 'httpd', 'echo', 'nc', 'tail', 'grep']) symlinkSync('busybox', join(bb, 'bin', a));
  execFileSync('tar', ['-C', bb, '-cf', join(dir, 'bb.tar'), '.']);
  await run(['import', join(dir, 'bb.tar'), IMAGE]);
  return {
    socket,
    run,
    async container(name, args, cmd) {
      containers.push(name);
      return (await run(['run', '-d', '--name', name, ...args, IMAGE, ...cmd])).trim();
    },
  };
}
