import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { toLabel } from './labels.js';
import type { PodmanOrigin } from './endpoints.js';

// Rootless Podman of every user: each serves its API at /run/user/<uid>/podman/podman.sock while
// the user's podman.socket (or `podman system service`) runs. The root daemon looks there every
// USER_POLL_MS (a bounded cost: one readdir and at most MAX_USER_SOCKETS lstat calls) and follows
// sockets as they appear and go (socket removed, user session ended and /run/user/<uid> gone).

export const RUN_USER = '/run/user';
export const USER_POLL_MS = 5_000;
/** Users followed at most; more are named in one log line and left out. */
export const MAX_USER_SOCKETS = 256;

export interface UserSocket {
  uid: number;
  socket: string;
}

/** The rootless Podman sockets under `dir` (uid 0 left out: that is root's own Podman), by uid. */
export async function findUserSockets(dir: string, max = MAX_USER_SOCKETS): Promise<{ found: UserSocket[]; over: number[]; unreadable: number[] }> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  const uids = entries.filter((e) => /^[1-9]\d{0,9}$/.test(e)).map(Number).sort((a, b) => a - b);
  const found: UserSocket[] = [];
  const over: number[] = [];
  /** Users whose runtime directory this process may not look into (no CAP_DAC_OVERRIDE). */
  const unreadable: number[] = [];
  for (const uid of uids) {
    const socket = join(dir, String(uid), 'podman', 'podman.sock');
    const st = await lstat(socket).catch((e: NodeJS.ErrnoException) => (e.code === 'EACCES' || e.code === 'EPERM' ? 'denied' : null));
    if (st === 'denied') {
      if (unreadable.length < max) unreadable.push(uid);
      continue;
    }
    if (!st?.isSocket()) continue;
    if (found.length < max) found.push({ uid, socket });
    else over.push(uid);
  }
  return { found, over, unreadable };
}

/** The name of `uid` in passwd(5) text, or undefined. */
export function passwdName(passwd: string, uid: number): string | undefined {
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[2] === String(uid) && f[0]) return f[0];
  }
  return undefined;
}

/** The owner shown for `uid`: root, the user's name when it is a usable label, else uid<N>. */
export async function ownerName(uid: number, passwdFile = '/etc/passwd'): Promise<string> {
  if (uid === 0) return 'root';
  const passwd = await readFile(passwdFile, 'utf8').catch(() => '');
  const name = passwdName(passwd.slice(0, 4 << 20), uid);
  return name && toLabel(name) === name ? name : `uid${uid}`;
}

/** Whose Podman serves `socket`: the socket file's owner (the daemon's own uid when it is not there yet). */
export async function socketOrigin(socket: string, daemonUid: number): Promise<PodmanOrigin> {
  const uid = (await stat(socket).catch(() => null))?.uid ?? daemonUid;
  return { owner: await ownerName(uid), rootless: uid !== 0, qualify: uid !== daemonUid, uid };
}

export interface UserSocketListener {
  appeared(uid: number, socket: string): void;
  left(socket: string, why: string): void;
}

export class UserSockets {
  private readonly known = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private scanning = false;
  private stopped = false;
  private overLogged = '';
  private deniedLogged = '';

  constructor(
    private readonly listener: UserSocketListener,
    private readonly log: Logger,
    private readonly opts: { dir?: string; intervalMs?: number; max?: number; skip?: (socket: string) => boolean } = {},
  ) {}

  start(): void {
    void this.scan();
    this.timer = setInterval(() => void this.scan(), this.opts.intervalMs ?? USER_POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async scan(): Promise<void> {
    if (this.scanning) return;
    this.scanning = true;
    try {
      const { found, over, unreadable } = await findUserSockets(this.opts.dir ?? RUN_USER, this.opts.max ?? MAX_USER_SOCKETS);
      if (this.stopped) return;
      const now = new Set(found.map((f) => f.socket).filter((s) => !this.opts.skip?.(s)));
      for (const s of this.known) {
        if (now.has(s)) continue;
        this.known.delete(s);
        this.listener.left(s, 'its socket is gone');
      }
      for (const f of found) {
        if (!now.has(f.socket) || this.known.has(f.socket)) continue;
        this.known.add(f.socket);
        this.listener.appeared(f.uid, f.socket);
      }
      const deniedText = unreadable.join(',');
      if (deniedText !== this.deniedLogged) {
        this.deniedLogged = deniedText;
        if (unreadable.length) this.log.warn({ uids: unreadable }, `cannot look into ${this.opts.dir ?? RUN_USER}/<uid> of uid ${unreadable.join(', ')} (permission denied): their rootless Podman is not followed; the daemon needs CAP_DAC_OVERRIDE (the system unit has it)`);
      }
      const overText = over.join(',');
      if (overText !== this.overLogged) {
        this.overLogged = overText;
        if (over.length) this.log.warn({ uids: over }, `more than ${this.opts.max ?? MAX_USER_SOCKETS} users run a rootless Podman: not following those of uid ${over.join(', ')}`);
      }
    } finally {
      this.scanning = false;
    }
  }
}
