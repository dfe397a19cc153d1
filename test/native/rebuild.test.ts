import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ADDON_NAME } from '../../src/native/index.js';
import { ROOT, startDaemon } from '../helpers/daemon.js';
import { digShort } from '../helpers/dns.js';
import { skip } from '../helpers/native-world.js';

// Rebuilding the checkout while a daemon runs from it: the build must put a new file in place
// (a new inode) and leave the one the daemon has mapped alone; writing into the mapped file
// changes the daemon's code under it (SIGSEGV/SIGBUS).

const ADDON = join(ROOT, 'native', ADDON_NAME);

/** Inodes of the addon files a process has mapped (the inode column of /proc/<pid>/maps). */
const mappedInodes = (pid: number): number[] => [
  ...new Set(readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((l) => l.includes(ADDON_NAME)).map((l) => Number(l.trim().split(/\s+/)[4]))),
];

t.test('npm run build:native replaces the addon without touching the file a running daemon maps', { skip }, async (t) => {
  const d = await startDaemon(t, {
    config: 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.1\n',
    env: { PODMAN_SWARM_DNS_NATIVE: '1' },
  });
  const before = statSync(ADDON).ino;
  t.same(mappedInodes(d.proc.pid!), [before], 'the daemon maps the built addon');

  const build = spawnSync(process.execPath, [join(ROOT, 'native', 'build.mjs'), '--strict'], { encoding: 'utf8', timeout: 600_000 });
  if (build.status !== 0) t.comment(build.stderr);
  t.equal(build.status, 0, 'the build succeeds');
  const after = statSync(ADDON).ino;
  t.not(after, before, 'the rebuilt addon is a new file');
  t.same(mappedInodes(d.proc.pid!), [before], 'the daemon still maps its own (old) file');
  t.same(await digShort(d.dnsPort, 'web.default.cluster.local'), ['10.0.0.1'], 'and still answers');
  t.equal(d.proc.exitCode, null, 'the daemon is alive');
});
