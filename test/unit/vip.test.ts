import t from 'tap';
import { parseCidr, cidrContains } from '../../src/net/cidr.js';
import { Registry } from '../../src/registry/registry.js';
import { allocateVips, homeSlot, vipSlots, RESERVED_LOW } from '../../src/lb/vip.js';
import { vipAssigner } from '../../src/lb/setup.js';
import { ep, node } from '../helpers/registry.js';

const range = parseCidr('10.223.0.0/16')!;

function shuffle<T>(a: T[], seed: number): T[] {
  const out = [...a];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

t.test('the same services get the same VIPs in any order, inside the range, never the DNS address', async (t) => {
  const keys = Array.from({ length: 2000 }, (_, i) => `ns${i % 7}/svc-${i}`);
  const ref = allocateVips(keys, range);
  t.equal(ref.size, keys.length, 'every service has a VIP');
  t.equal(new Set(ref.values()).size, keys.length, 'no two services share one');
  t.same([...ref.values()].filter((vip) => !cidrContains(range, vip)), [], 'all inside the range');
  t.notOk([...ref.values()].includes('10.223.0.10'), 'the cluster DNS address is never a VIP');
  for (const seed of [1, 2, 3]) t.same(allocateVips(shuffle(keys, seed), range), ref, `order ${seed} gives the same map`);
});

t.test('collisions resolve the same way everywhere: smallest key keeps the home slot', async (t) => {
  // A tiny range forces collisions: /27 has 32 addresses, 15 usable slots.
  const small = parseCidr('10.99.0.0/27')!;
  const slots = vipSlots(small);
  t.equal(slots, 32 - RESERVED_LOW - 1);
  const keys = Array.from({ length: 12 }, (_, i) => `default/s${i}`);
  const byHome = new Map<number, string[]>();
  for (const k of keys) byHome.set(homeSlot(k, slots), [...(byHome.get(homeSlot(k, slots)) ?? []), k]);
  const collided = [...byHome.values()].filter((ks) => ks.length > 1);
  t.ok(collided.length > 0, 'the test range does produce collisions');
  const a = allocateVips(keys, small);
  const b = allocateVips([...keys].reverse(), small);
  t.same(a, b, 'reverse insertion order: same result');
  t.equal(new Set(a.values()).size, keys.length, 'all distinct');
  for (const ks of collided) {
    const winner = [...ks].sort()[0]!;
    const home = homeSlot(winner, slots);
    t.equal(a.get(winner), `10.99.0.${RESERVED_LOW + home}`, `${winner} keeps its home slot`);
  }
  // A full range: the extra services get no VIP, the same ones on every host.
  const many = Array.from({ length: 20 }, (_, i) => `default/x${i}`);
  const full = allocateVips(many, small);
  t.equal(full.size, slots);
  t.same(allocateVips(shuffle(many, 9), small), full);
});

t.test('the registry hands vip-mode services their VIP, the same on two hosts fed in different orders', async (t) => {
  const web = (id: string, a: string) => ep('web', a, { id, mode: 'vip', ports: { http: { port: 80, protocol: 'tcp' } } });
  const db = ep('db', '10.0.0.9', { id: 'd', ports: { pg: { port: 5432, protocol: 'tcp' } } }); // dnsrr
  const states = [node('a', 1, [web('w1', '10.0.0.1'), db]), node('b', 1, [web('w2', '10.0.0.2')]), node('c', 1, [ep('api', '10.0.0.3', { id: 'x', mode: 'vip', ports: { h: { port: 8080, protocol: 'tcp' } } })])];
  const hosts = [states, [...states].reverse()].map((order) => {
    const r = new Registry({ localNode: 'a', routableContainerIps: false, defaultMode: 'dnsrr' });
    r.setVipAssigner(vipAssigner(range, false));
    for (const s of order) r.apply(s);
    return r;
  });
  const vipOf = (r: Registry, s: string) => r.service('default', s)?.vip;
  t.ok(vipOf(hosts[0]!, 'web'));
  t.equal(vipOf(hosts[0]!, 'web'), vipOf(hosts[1]!, 'web'));
  t.equal(vipOf(hosts[0]!, 'api'), vipOf(hosts[1]!, 'api'));
  t.equal(vipOf(hosts[0]!, 'db'), undefined, 'dnsrr services get none');
  t.same(hosts[0]!.lookupAddress(vipOf(hosts[0]!, 'web')!), [{ service: 'default/web' }], 'PTR of the VIP names the service');
  // The last endpoint leaving takes the VIP with it.
  const changes: string[][] = [];
  hosts[0]!.onChange((c) => changes.push(c.services));
  hosts[0]!.apply(node('c', 2, []));
  t.equal(vipOf(hosts[0]!, 'api'), undefined);
  t.same(hosts[0]!.lookupAddress(vipOf(hosts[1]!, 'api')!), []);
  t.ok(changes.flat().includes('default/api'));
  // --lb-all: every service with ports gets one.
  const all = new Registry({ localNode: 'a', routableContainerIps: false, defaultMode: 'dnsrr' });
  all.setVipAssigner(vipAssigner(range, true));
  for (const s of states) all.apply(s);
  t.ok(all.service('default', 'db')?.vip);
});
