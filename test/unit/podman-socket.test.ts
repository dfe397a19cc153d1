import t from 'tap';
import { loadConfig } from '../../src/config/load.js';
import { podmanSocket } from '../../src/podman/setup.js';

// Which Podman API socket the daemon follows: rootless Podman serves it under the user's runtime
// directory, so a normal user's default is there; root's, or an explicit one, is taken as given.

const ctx = (flags: Array<[string, string]>, env: NodeJS.ProcessEnv) => {
  const loaded = loadConfig({ flags: new Map(flags.map(([k, v]) => [k, [v]])), env, readFile: () => '' });
  return { opts: loaded.options, origin: loaded.origin, env };
};

t.test('a normal user with XDG_RUNTIME_DIR follows the rootless socket', async (t) => {
  t.equal(podmanSocket(ctx([], { XDG_RUNTIME_DIR: '/run/user/1000' }), 1000), '/run/user/1000/podman/podman.sock');
});

t.test('root follows the system socket', async (t) => {
  const c = ctx([], { XDG_RUNTIME_DIR: '/run/user/0' });
  t.equal(podmanSocket(c, 0), c.opts.podmanSocket);
  t.match(c.opts.podmanSocket, /^\/run\/podman\/podman\.sock$/);
});

t.test('an explicit --podman-socket wins, for anyone', async (t) => {
  t.equal(podmanSocket(ctx([['podman-socket', '/tmp/p.sock']], { XDG_RUNTIME_DIR: '/run/user/1000' }), 1000), '/tmp/p.sock');
});

t.test('without XDG_RUNTIME_DIR a normal user keeps the default', async (t) => {
  const c = ctx([], {});
  t.equal(podmanSocket(c, 1000), c.opts.podmanSocket);
});
