import t from 'tap';
import { ChangeIndex } from '../../src/api/blocking.js';
import { Registry } from '../../src/registry/registry.js';
import { ep, node } from '../helpers/registry.js';

// Blocking reads wait on what they read: a service's watcher returns when that service changes
// and keeps waiting through changes to others; a node-list watcher returns on a node change.

const turn = () => new Promise((r) => setImmediate(r));

t.test('a blocking read returns on a change to what it reads, not before', async (t) => {
  const r = new Registry({ localNode: 'a', routableContainerIps: false, defaultMode: 'dnsrr' });
  const changes = new ChangeIndex(r);
  t.teardown(() => changes.close());
  r.apply(node('b', 1, [ep('web', '10.0.0.1', { id: 'w' }), ep('db', '10.0.0.2', { id: 'd' })]));
  const done = { web: false, db: false, nodes: false, all: false };
  const web = { service: 'default/web' };
  void changes.wait(web, changes.index(web), 60_000).then(() => (done.web = true));
  void changes.wait({ service: 'default/db' }, changes.index({ service: 'default/db' }), 60_000).then(() => (done.db = true));
  void changes.wait('global', changes.index('global'), 60_000).then(() => (done.all = true));
  r.apply(node('b', 2, [ep('web', '10.0.0.1', { id: 'w' }), ep('db', '10.0.0.3', { id: 'd' })]));
  await turn();
  t.same(done, { web: false, db: true, nodes: false, all: true }, 'db changed: db and global readers return, web keeps waiting');
  void changes.wait('nodes', changes.index('nodes'), 60_000).then(() => (done.nodes = true));
  r.apply(node('b', 3, [ep('web', '10.0.0.9', { id: 'w' }), ep('db', '10.0.0.3', { id: 'd' })]));
  await turn();
  t.same(done, { web: true, db: true, nodes: true, all: true }, 'web changed: its reader returns, and the node list\'s');
  t.ok(changes.index(web) > changes.index({ service: 'default/db' }), 'each service has its own index');
  let late = false;
  void changes.wait(web, changes.index(web), 60_000).then(() => (late = true));
  changes.close();
  await turn();
  t.ok(late, 'close releases every waiter');
});
