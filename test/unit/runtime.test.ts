import t from 'tap';
import { apiSocketCandidates, defaultApiSocket, defaultStateDir } from '../../src/config/runtime.js';

// The default API socket belongs to the state dir: two daemons with different state dirs (one per
// network namespace, say) never share a socket path.

t.test('the default state dir keeps the well-known socket; any other state dir has <dir>/api.sock', async (t) => {
  const env = { XDG_RUNTIME_DIR: '/run/user/1000', XDG_STATE_HOME: '/home/u/.local/state' };
  const usual = defaultApiSocket(env);
  t.equal(defaultApiSocket(env, defaultStateDir(env)), usual);
  t.equal(defaultApiSocket(env, `${defaultStateDir(env)}/`), usual, 'the same dir written differently');
  t.equal(defaultApiSocket(env, '/srv/psdns/blue'), '/srv/psdns/blue/api.sock');
  t.not(defaultApiSocket(env, '/srv/psdns/blue'), defaultApiSocket(env, '/srv/psdns/green'));
});

t.test('the read commands look where the daemon of the given state dir listens', async (t) => {
  t.same(apiSocketCandidates({}, '/srv/psdns/blue'), ['/srv/psdns/blue/api.sock']);
  t.same(apiSocketCandidates({ PODMAN_SWARM_DNS_STATE_DIR: '/srv/psdns/green' }), ['/srv/psdns/green/api.sock']);
  t.ok(apiSocketCandidates({}).includes('/run/podman-swarm-dns/api.sock'), 'without one: the system daemon among the candidates');
});
