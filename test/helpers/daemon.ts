import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'node:http';
import { freePort } from './ports.js';

// Runs the built daemon (dist/cli.js) as a real process on loopback ports, the way a user
// would, and tears it down (process and temp dir) when the test ends.

export const ROOT = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
export const CLI = join(ROOT, 'dist', 'cli.js');

export interface DaemonOptions {
  /** config.yaml content */
  config?: string;
  args?: string[];
  env?: Record<string, string>;
  /** Upstreams for forwarding (default: a closed port, so nothing leaves the machine). */
  upstreams?: string[];
  /** Node binary (tests of the Debian nodejs 18 pass its path). */
  node?: string;
  /** Command that runs the daemon's node command line (e.g. systemd/notify-socket-exec). */
  wrap?: string[];
  /** Entry point to run instead of dist/cli.js (the packaged bundle). */
  cli?: string;
  /** Wait for readiness (default true). */
  wait?: boolean;
  /** Descriptors the daemon inherits as 3, 4, ... (as systemd passes stored sockets). */
  fds?: number[];
}

export interface RunningDaemon {
  proc: ChildProcess;
  dnsPort: number;
  apiPort: number;
  socket: string;
  dir: string;
  api: string;
  logs: () => string;
  /** Parsed JSON log lines. */
  events: () => Array<Record<string, unknown>>;
  exited: Promise<number | null>;
  /** The exit code, waited for at most `ms`; past that the test fails with the daemon's logs (it is killed at teardown). */
  exitCode: (ms?: number) => Promise<number | null>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
  /** The API token (--api-token-file, or the one the daemon made in its state directory). */
  token: () => string;
  /** Headers that carry the token, for writes over TCP. */
  auth: () => Record<string, string>;
}

export async function startDaemon(t: { teardown(fn: () => unknown): void }, o: DaemonOptions = {}): Promise<RunningDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-test-'));
  const dnsPort = await freePort();
  const apiPort = await freePort();
  const socket = join(dir, 'api.sock');
  const configPath = join(dir, 'config.yaml');
  writeFileSync(configPath, o.config ?? '');
  const args = [
    o.cli ?? CLI, 'daemon',
    '--config', configPath,
    '--link', 'none',
    '--state-dir', join(dir, 'state'),
    '--dns-listen', `127.0.0.1:${dnsPort}`,
    '--api-listen', `127.0.0.1:${apiPort},unix:${socket}`,
    '--upstream-dns', (o.upstreams ?? ['127.0.0.1:9']).join(','),
    // Tests that want Podman pass their own --podman-socket (the last one wins).
    '--podman-socket', 'none',
    ...(o.args ?? []),
  ];
  const argv = [...(o.wrap ?? []), o.node ?? process.execPath, ...args];
  const proc = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...o.env }, stdio: ['ignore', 'pipe', 'pipe', ...(o.fds ?? [])] });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  // Resolved once its output is read too: what it wrote just before exiting can still be in the
  // pipe at 'exit'. Bounded: a child of the daemon that kept the pipe open must not hold the test.
  const exited = new Promise<number | null>((res) =>
    proc.on('exit', (code) => {
      const timer = setTimeout(() => res(code), 2000);
      proc.on('close', () => (clearTimeout(timer), res(code)));
    }),
  );
  let alive = true;
  void exited.then(() => (alive = false));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    if (alive) proc.kill(signal);
    const timer = setTimeout(() => alive && proc.kill('SIGKILL'), 5000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  t.teardown(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const last = (flag: string): string | undefined => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : [])).at(-1);
  const token = (): string => readFileSync(last('--api-token-file') ?? join(last('--state-dir')!, 'api-token'), 'utf8').trim();
  const d: RunningDaemon = {
    proc, dnsPort, apiPort, socket, dir, api: `http://127.0.0.1:${apiPort}`, exited, stop, token,
    exitCode: (ms = 60_000) => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`daemon still running after ${ms} ms:\n${out}`)), ms)));
      return Promise.race([exited, late]).finally(() => clearTimeout(timer));
    },
    auth: () => ({ authorization: `Bearer ${token()}` }),
    logs: () => out,
    events: () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>),
  };
  if (o.wait !== false) await waitReady(d);
  return d;
}

export async function waitReady(d: RunningDaemon, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitCode: number | null | undefined;
  void d.exited.then((c) => (exitCode = c));
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`daemon exited with ${exitCode} before it was ready:\n${d.logs()}`);
    const ok = await new Promise<boolean>((res) => {
      const req = request({ socketPath: d.socket, path: '/readyz', timeout: 1000 }, (r) => {
        r.resume();
        res(r.statusCode === 200);
      });
      req.on('error', () => res(false));
      req.end();
    });
    // The log is written asynchronously: READY can answer before the lines logged until then
    // reach the pipe. Its own "ready" line comes after them, so once it is here they all are.
    if (ok && /"msg":"ready: /.test(d.logs())) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`daemon not ready (or its "ready" log line not seen) after ${timeoutMs} ms:\n${d.logs()}`);
}

/** Runs the CLI once; resolves with its exit code and output. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('exit', (code) => res({ code, stdout, stderr }));
  });
}

export function writeConfig(d: RunningDaemon, config: string): void {
  writeFileSync(join(d.dir, 'config.yaml'), config);
}

/** A JSON request to a daemon's API over its unix socket (where no token is needed); `body` is whatever JSON came back. */
export function apiOverSocket(d: { socket: string }, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ socketPath: d.socket, path, method, headers: data ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null }));
    });
    req.on('error', reject);
    req.end(data);
  });
}
