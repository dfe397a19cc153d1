import t from 'tap';
import { parseCidr } from '../../src/net/cidr.js';
import { Registry } from '../../src/registry/registry.js';
import { parseIngress, Plan, planListeners } from '../../src/lb/plan.js';
import { vipAssigner } from '../../src/lb/setup.js';
import { ep, node } from '../helpers/registry.js';

const range = parseCidr('10.223.0.0/16')!;
const ports = { http: { port: 80, protocol: 'tcp' as const, hostPort: 8080 }, dns: { port: 53, protocol: 'udp' as const } };

function registry(): Registry {
  const r = new Registry({ localNode: 'a', routableContainerIps: false, defaultMode: 'dnsrr' });
  r.setVipAssigner(vipAssigner(range, false));
  r.apply(node('a', 1, [ep('web', '172.16.0.5', { id: 'c1', mode: 'vip', explicit: false, ports })], { address: '192.0.2.1' }));
  r.apply(node('b', 1, [
    ep('web', '172.16.9.5', { id: 'c2', mode: 'vip', explicit: false, ports, weight: 30 }),
    ep('web', '172.16.9.6', { id: 'sick', mode: 'vip', explicit: false, ports, healthy: false }),
  ], { address: '192.0.2.2' }));
  r.apply(node('b', 2, [...r.node('b')!.endpoints, ep('db', '10.0.0.9', { id: 'd', ports: { pg: { port: 5432, protocol: 'tcp' } } })], { address: '192.0.2.2' }));
  return r;
}

t.test('one listener per named port on the VIP; healthy, reachable endpoints as backends', async (t) => {
  const r = registry();
  const vip = r.service('default', 'web')!.vip!;
  const plan = planListeners(r.services(), { failOpen: false, ingress: [], hostAddress: '192.0.2.1' });
  t.same(plan.map((l) => l.key).sort(), [`tcp:${vip}:80`, `udp:${vip}:53`], 'dnsrr service db has none');
  const http = plan.find((l) => l.portName === 'http')!;
  t.same(http.backends, [
    { id: 'a/c1', host: '172.16.0.5', port: 80, weight: 10, local: true },
    { id: 'b/c2', host: '192.0.2.2', port: 8080, weight: 30, local: false },
  ], 'own container directly; the other host\'s through its published port; the unhealthy one left out');
  const dns = plan.find((l) => l.portName === 'dns')!;
  t.same(dns.backends.map((b) => b.id), ['a/c1'], 'no published UDP port on b: not reachable from here');
  const open = planListeners(r.services(), { failOpen: true, ingress: [], hostAddress: '192.0.2.1' });
  t.equal(open.find((l) => l.portName === 'http')!.backends.length, 2, 'fail-open still prefers healthy ones while there are any');
});

t.test('ingress publishes a service port on the host address', async (t) => {
  const r = registry();
  const ing = [parseIngress('default/web:http')!, parseIngress('web:53')!, parseIngress('nope:80')!];
  const plan = planListeners(r.services(), { failOpen: false, ingress: ing, hostAddress: '192.0.2.1' });
  const ingress = plan.filter((l) => l.ingress).map((l) => l.key).sort();
  t.same(ingress, ['tcp:192.0.2.1:80', 'udp:192.0.2.1:53']);
  t.equal(parseIngress('bad/svc/x:1'), null);
  t.same(parseIngress('svc:80'), { namespace: 'default', service: 'svc', port: '80' });
});

t.test('the plan does not depend on the order endpoints arrived in', async (t) => {
  const a = registry();
  const b = new Registry({ localNode: 'a', routableContainerIps: false, defaultMode: 'dnsrr' });
  b.setVipAssigner(vipAssigner(range, false));
  for (const n of [...a.nodes()].reverse()) b.apply(structuredClone(n));
  const o = { failOpen: false, ingress: [], hostAddress: '192.0.2.1' };
  t.same(planListeners(b.services(), o), planListeners(a.services(), o));
});

t.test('planned per service: a change names only its listeners; a socket two services claim goes to the same one in any order', async (t) => {
  const r = registry();
  const o = { failOpen: false, ingress: [parseIngress('web:http')!, parseIngress('db:80')!], hostAddress: '192.0.2.1' };
  const plan = new Plan(o);
  for (const v of r.services()) plan.update(v.key, v);
  const vip = r.service('default', 'web')!.vip!;
  t.same([...plan.keys()].sort(), [`tcp:${vip}:80`, 'tcp:192.0.2.1:80', `udp:${vip}:53`]);
  // db gets a port 80 too: its ingress claims the socket web's ingress has; web stays untouched.
  r.apply(node('b', 3, [...r.node('b')!.endpoints.filter((e) => e.service !== 'db'), ep('db', '10.0.0.9', { id: 'd', ports: { http: { port: 80, protocol: 'tcp' } } })], { address: '192.0.2.2' }));
  t.same(plan.update('default/db', r.service('default', 'db')), ['tcp:192.0.2.1:80'], 'db\'s re-plan names only its own listener');
  t.equal(plan.wanted('tcp:192.0.2.1:80')!.service, 'default/db', 'the lower service key wins the shared socket');
  const other = new Plan(o);
  for (const v of [...r.services()].reverse()) other.update(v.key, v);
  t.same(other.wanted('tcp:192.0.2.1:80'), plan.wanted('tcp:192.0.2.1:80'), 'whatever order the services came in');
  t.same(plan.update('default/db', undefined), ['tcp:192.0.2.1:80'], 'db removed');
  t.equal(plan.wanted('tcp:192.0.2.1:80')!.service, 'default/web', 'the socket goes back to web');
});
