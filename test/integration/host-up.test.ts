import t from 'tap';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { NetTransport } from '../../src/gossip/net-transport.js';
import { createNetns, isRoot } from '../helpers/netns.js';
import { freePort } from '../helpers/ports.js';

// A member found dead keeps its endpoints for --dead-grace only if its host is still there: the
// host's kernel accepts or refuses a connection to the gossip port (its daemon crashed or is
// restarting). A host that does not answer at all (powered off, its link cut) is not there.

t.test('a listening port and a closed one: the host is there', async (t) => {
  const tr = await NetTransport.listen('127.0.0.1', 0, '127.0.0.1');
  t.teardown(() => tr.close());
  t.equal(await tr.reachable(`127.0.0.1:${tr.boundPort}`, 1000), true, 'a daemon listening: there');
  t.equal(await tr.reachable(`127.0.0.1:${await freePort()}`, 1000), true, 'nothing listening, connection refused: the host is there');
});

t.test('a host whose link is cut is not there', { skip: isRoot ? false : 'needs root (a network namespace)' }, async (t) => {
  const tr = await NetTransport.listen('127.0.0.1', 0, '127.0.0.1');
  t.teardown(() => tr.close());
  // A host in its own namespace behind a veth, then its side of the link down: nothing answers.
  const ns = createNetns(t, 'psdup');
  const net = `10.251.${randomBytes(1)[0]! % 250}`;
  const veth = `psdup${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
  t.teardown(() => {
    try {
      execFileSync('ip', ['link', 'del', veth], { stdio: 'ignore' });
    } catch {
      /* gone with the namespace */
    }
  });
  execFileSync('ip', ['addr', 'add', `${net}.1/30`, 'dev', veth]);
  execFileSync('ip', ['link', 'set', veth, 'up']);
  ns.exec('ip', ['addr', 'add', `${net}.2/30`, 'dev', 'eth0']);
  ns.exec('ip', ['link', 'set', 'eth0', 'up']);
  t.equal(await tr.reachable(`${net}.2:7946`, 3000), true, 'the host in the namespace refuses: there');
  ns.exec('ip', ['link', 'set', 'eth0', 'down']);
  t.equal(await tr.reachable(`${net}.2:7946`, 1000), false, 'its link cut: not there');
});
