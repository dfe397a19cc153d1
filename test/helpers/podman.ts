import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './daemon.js';

// A Podman private to one test file: its own `podman system service` on its own socket, its own
// storage (vfs: no mounts to leak), the test containers.conf (runc, low ulimits: what this CI
// machine needs, see TESTING.md) and a busybox image built from busybox-static. Only networks are
// shared with the host (Podman keeps their config in one place): they get unique names and are
// removed at teardown, as are the containers.

export const CONTAINERS_CONF = join(ROOT, 'test', 'fixtures', 'podman', 'containers.conf');
export const IMAGE = 'localhost/psdns-bb:latest';

export const hasPodman = (): boolean => ['/usr/bin/podman', '/usr/sbin/runc', '/bin/busybox'].every((p) => existsSync(p));

export interface TestPodman {
  socket: string;
  dir: string;
  /** podman CLI through the service (what users do with `podman --remote`). */
  run(args: string[]): Promise<string>;
  /** podman CLI straight on the storage, without the service (works while it is down). */
  direct(args: string[]): Promise<string>;
  /** Creates a network (removed at teardown); returns its inspect JSON. */
  network(name: string, args?: string[]): Promise<{ subnets: Array<{ subnet: string; gateway: string }> }>;
  /** `podman run -d` with a name (removed at teardown). */
  container(name: string, args: string[], cmd?: string[]): Promise<string>;
  stopService(): Promise<void>;
  startService(): Promise<void>;
}

type Tap = { teardown(fn: () => unknown): void };

/** Pids of processes whose command line mentions `dir`. */
function usersOf(dir: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(dir)) pids.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

export async function startPodman(t: Tap, prefix: string): Promise<TestPodman> {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-podman-`));
  const socket = join(dir, 'podman.sock');
  const env = { ...process.env, CONTAINERS_CONF };
  const storage = ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--storage-driver', 'vfs', '--events-backend', 'file', '--tmpdir', join(dir, 'tmp')];
  const remote = ['--remote', '--url', `unix://${socket}`];
  const networks: string[] = [];
  const containers: string[] = [];
  let service: ChildProcess | null = null;
  let serviceLog = '';

  const p: TestPodman = {
    socket,
    dir,
    run: (args) => exec('podman', [...remote, ...args], env),
    direct: (args) => exec('podman', [...storage, ...args], env),
    async network(name, args = []) {
      networks.push(name);
      await p.run(['network', 'create', ...args, name]);
      return (JSON.parse(await p.run(['network', 'inspect', name])) as Array<{ subnets: Array<{ subnet: string; gateway: string }> }>)[0]!;
    },
    async container(name, args, cmd = ['httpd', '-f', '-p', '80']) {
      containers.push(name);
      return (await p.run(['run', '-d', '--name', name, ...args, IMAGE, ...cmd])).trim();
    },
    async startService() {
      rmSync(socket, { force: true });
      service = spawn('podman', [...storage, 'system', 'service', '--time=0', `unix://${socket}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      service.stdout!.on('data', (c: Buffer) => (serviceLog += c));
      service.stderr!.on('data', (c: Buffer) => (serviceLog += c));
      const end = Date.now() + 15_000;
      while (Date.now() < end) {
        try {
          await exec('podman', [...remote, 'version', '--format', '{{.Server.Version}}'], env);
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      throw new Error(`podman system service did not come up:\n${serviceLog}`);
    },
    async stopService() {
      const s = service;
      service = null;
      if (!s || s.exitCode !== null) return;
      const gone = new Promise((r) => s.once('exit', r));
      s.kill('SIGTERM');
      await gone;
    },
  };

  t.teardown(async () => {
    for (const c of containers) await p.direct(['rm', '-f', '-t', '0', c]).catch(() => undefined);
    for (const n of networks) await p.direct(['network', 'rm', '-f', n]).catch(() => undefined);
    await p.stopService();
    // conmon starts `podman ... container cleanup` with our --root when a container exits; it may
    // run after the removal above and would recreate the directory: wait for such processes.
    const end = Date.now() + 10_000;
    while (usersOf(dir).length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    rmSync(dir, { recursive: true, force: true });
  });

  await p.startService();
  // The test image: busybox-static and the applets the tests use.
  const bb = join(dir, 'bb');
  mkdirSync(join(bb, 'bin'), { recursive: true });
  mkdirSync(join(bb, 'tmp'), { recursive: true });
  copyFileSync('/bin/busybox', join(bb, 'bin', 'busybox'));
  for (const a of ['sh', 'httpd', 'nc', 'nslookup', 'sleep', 'cat', 'killall', 'rm', 'touch']) symlinkSync('busybox', join(bb, 'bin', a));
  await exec('tar', ['-C', bb, '-cf', join(dir, 'bb.tar'), '.'], env);
  await p.run(['import', join(dir, 'bb.tar'), IMAGE]);
  return p;
}
