import t from 'tap';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { findUserSockets, passwdName, UserSockets } from '../../src/podman/users.js';
import { ROOT } from '../helpers/daemon.js';
import { until } from '../helpers/until.js';

// Users' rootless Podman sockets under a /run/user-like directory: real unix sockets in a temp
// directory, found as they appear and dropped as they go.

function runUser(t: { teardown(fn: () => unknown): void }): { dir: string; listen(uid: number): Promise<string>; close(uid: number): void } {
  const dir = mkdtempSync(join(tmpdir(), 'psd-runuser-'));
  const servers = new Map<number, Server>();
  t.teardown(() => {
    for (const s of servers.values()) s.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    listen: (uid) => {
      const sock = join(dir, String(uid), 'podman', 'podman.sock');
      mkdirSync(join(dir, String(uid), 'podman'), { recursive: true });
      const s = createServer((c) => c.destroy());
      servers.set(uid, s);
      return new Promise((r) => s.listen(sock, () => r(sock)));
    },
    close: (uid) => {
      servers.get(uid)?.close();
      servers.delete(uid);
    },
  };
}

t.test('only sockets count: a plain file, root (uid 0) and non-numeric entries are not users', async (t) => {
  const r = runUser(t);
  const s1000 = await r.listen(1000);
  await r.listen(0);
  mkdirSync(join(r.dir, '1001', 'podman'), { recursive: true });
  writeFileSync(join(r.dir, '1001', 'podman', 'podman.sock'), 'not a socket');
  mkdirSync(join(r.dir, 'abc', 'podman'), { recursive: true });
  t.same(await findUserSockets(r.dir), { found: [{ uid: 1000, socket: s1000 }], over: [], unreadable: [] });
  t.same(await findUserSockets(join(r.dir, 'missing')), { found: [], over: [], unreadable: [] }, 'no /run/user at all: nothing, no error');
});

t.test('bounded: past the maximum, users are left out and named', async (t) => {
  const r = runUser(t);
  for (const uid of [1000, 1001, 1002]) await r.listen(uid);
  const { found, over } = await findUserSockets(r.dir, 2);
  t.same(found.map((f) => f.uid), [1000, 1001]);
  t.same(over, [1002]);
});

t.test('users appearing and leaving are followed; the over-limit warning is logged once per change', async (t) => {
  const r = runUser(t);
  const events: string[] = [];
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
  const users = new UserSockets({ appeared: (uid) => events.push(`+${uid}`), left: (s) => events.push(`-${s.split('/').at(-3)}`) }, log, { dir: r.dir, intervalMs: 30, max: 1 });
  t.teardown(() => users.stop());
  users.start();
  await r.listen(1000);
  await until('user 1000 appears', () => events.includes('+1000'), 5000);
  await r.listen(1001);
  await until('the over-limit warning', () => lines.some((l) => l.includes('not following those of uid 1001')), 5000);
  rmSync(join(r.dir, '1000'), { recursive: true });
  r.close(1000);
  await until('user 1000 leaves, 1001 takes its place', () => events.includes('-1000') && events.includes('+1001'), 5000);
  t.same(events, ['+1000', '-1000', '+1001']);
  await users.scan();
  t.equal(lines.filter((l) => l.includes('not following')).length, 1, 'logged once, not once per scan');
});

t.test('passwd names', async (t) => {
  const passwd = 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n\nbroken\n';
  t.equal(passwdName(passwd, 1000), 'alice');
  t.equal(passwdName(passwd, 0), 'root');
  t.equal(passwdName(passwd, 4242), undefined);
});

t.test('a runtime directory this process may not look into is named, not skipped silently', { skip: process.getuid?.() === 0 ? false : 'needs root (to run the lookup as nobody)' }, async (t) => {
  const r = runUser(t);
  chmodSync(r.dir, 0o755);
  await r.listen(1000);
  chmodSync(join(r.dir, '1000'), 0o700);
  // The lookup as nobody (what a root daemon without CAP_DAC_OVERRIDE sees of a 0700 directory).
  const script = `import { findUserSockets } from '${join(ROOT, 'dist/podman/users.js')}'; console.log(JSON.stringify(await findUserSockets(${JSON.stringify(r.dir)})));`;
  const out = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH } });
  t.same(JSON.parse(out), { found: [], over: [], unreadable: [1000] });
});
