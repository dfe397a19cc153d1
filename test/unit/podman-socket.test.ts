import t from 'tap';
import { loadConfig } from '../../src/config/load.js';
import { followsUserSockets, podmanSockets } from '../../src/podman/setup.js';

// Which Podman API socket the daemon follows: rootless Podman serves it under the user's runtime
// directory, so a normal user's default is there; root's, or an explicit one, is taken as given.

const ctx = (flags: Array<[string, string]>, env: NodeJS.ProcessEnv) => {
  const grouped = new Map<string, string[]>();
  for (const [k, v] of flags) grouped.set(k, [...(grouped.get(k) ?? []), v]);
  const loaded = loadConfig({ flags: grouped, env, readFile: () => '' });
  return { opts: loaded.options, origin: loaded.origin, env };
};

t.test('a normal user with XDG_RUNTIME_DIR follows the rootless socket', async (t) => {
  t.same(podmanSockets(ctx([], { XDG_RUNTIME_DIR: '/run/user/1000' }), 1000), ['/run/user/1000/podman/podman.sock']);
});

t.test('root follows the system socket', async (t) => {
  const c = ctx([], { XDG_RUNTIME_DIR: '/run/user/0' });
  t.same(podmanSockets(c, 0), ['/run/podman/podman.sock']);
});

t.test('an explicit --podman-socket wins, for anyone', async (t) => {
  t.same(podmanSockets(ctx([['podman-socket', '/tmp/p.sock']], { XDG_RUNTIME_DIR: '/run/user/1000' }), 1000), ['/tmp/p.sock']);
});

t.test('without XDG_RUNTIME_DIR a normal user keeps the default', async (t) => {
  const c = ctx([], {});
  t.same(podmanSockets(c, 1000), ['/run/podman/podman.sock']);
});

t.test('--podman-socket is repeatable; none drops the sockets before it (a later flag adds again)', async (t) => {
  t.same(podmanSockets(ctx([['podman-socket', '/a.sock'], ['podman-socket', '/b.sock']], {}), 0), ['/a.sock', '/b.sock'], 'one watcher per socket');
  t.same(podmanSockets(ctx([['podman-socket', '/a.sock,/b.sock']], {}), 0), ['/a.sock', '/b.sock'], 'comma-separated');
  t.same(podmanSockets(ctx([['podman-socket', 'none'], ['podman-socket', '/t.sock']], {}), 0), ['/t.sock'], 'none, then a socket: that socket');
  t.same(podmanSockets(ctx([['podman-socket', '/a.sock'], ['podman-socket', 'none']], {}), 0), [], 'ending with none: Podman off');
});

t.test("users' sockets: followed by default as root, never as a user, never with Podman off or with off", async (t) => {
  t.equal(followsUserSockets(ctx([], {}), 0), true, 'root, defaults');
  t.equal(followsUserSockets(ctx([], {}), 1000), false, 'a user follows only its own');
  t.equal(followsUserSockets(ctx([['podman-socket', 'none']], {}), 0), false, '--podman-socket none');
  t.equal(followsUserSockets(ctx([['podman-user-sockets', 'off']], {}), 0), false, '--podman-user-sockets off');
  t.throws(() => ctx([['podman-user-sockets', 'maybe']], {}), /podman-user-sockets.*auto, off/);
});
