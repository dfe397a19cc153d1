import t from 'tap';
import { BroadcastQueue } from '../../src/gossip/queue.js';
import { retransmitLimit, LAN, suspicionTimeout } from '../../src/gossip/config.js';
import { Simulation, type SimNode } from '../../src/gossip/sim/simulation.js';
import type { MemberState } from '../../src/gossip/codec.js';
import { Wire } from '../../src/gossip/crypto.js';
import type { Endpoint } from '../../src/registry/types.js';

// SWIM behaviour of the real membership and registry sync code, on the simulator's virtual
// network (latency, loss, partitions) and clock: deterministic, and hours of protocol in ms.

function watch(sim: Simulation): Array<{ at: number; node: string; member: string; state: MemberState }> {
  const log: Array<{ at: number; node: string; member: string; state: MemberState }> = [];
  for (const n of sim.nodes) {
    const orig = n.sync.delegate.notifyMember.bind(n.sync.delegate);
    n.sync.delegate.notifyMember = (m, prev) => {
      if (m.state !== prev) log.push({ at: sim.clock.now(), node: n.id, member: m.id, state: m.state });
      orig(m, prev);
    };
  }
  return log;
}

t.test('retransmit limit: each update is sent limit times, least-sent first, newer replaces older', async (t) => {
  t.equal(retransmitLimit(LAN, 3), 4);
  t.equal(retransmitLimit(LAN, 1000), 16);
  const q = new BroadcastQueue(() => 3);
  q.push('a', { t: 'userreq', data: new Uint8Array(10) });
  let sent = 0;
  for (let i = 0; i < 10; i++) sent += q.take(1400).length;
  t.equal(sent, 3, 'sent exactly 3 times, then dropped');
  q.push('a', { t: 'userreq', data: new Uint8Array([1]) });
  q.take(1400);
  q.push('b', { t: 'userreq', data: new Uint8Array([2]) });
  t.same(q.take(1400).map((m) => (m.t === 'userreq' ? m.data[0] : -1)), [2, 1], 'the least-sent update goes first');
  q.push('a', { t: 'userreq', data: new Uint8Array([3]) });
  t.equal(q.transmits('a'), 0, 'a newer update about the same subject starts over');
  t.equal(q.length, 2);
  const big = new BroadcastQueue(() => 5);
  for (let i = 0; i < 20; i++) big.push(`k${i}`, { t: 'userreq', data: new Uint8Array(200) });
  t.ok(big.take(1000).length <= 4, 'never more than fits in the packet');
});

t.test('suspicion timeout follows SPEC §5: 4 × log10(n+1) × probe interval, at least 4 s', async (t) => {
  t.equal(suspicionTimeout(LAN, 3), 4000);
  t.equal(Math.round(suspicionTimeout(LAN, 1000)), 12002);
});

t.test('a suspected node refutes with a higher incarnation and is never declared dead', async (t) => {
  const sim = new Simulation({ nodes: 6, seed: 11, network: { loss: 0.02 } });
  const log = watch(sim);
  await sim.start();
  await sim.run(5000);
  const x = sim.nodes[2]!;
  const inc = x.membership.self.inc;
  // Two members "fail" a probe of x at once (as after a lost ack): they suspect it and say so.
  for (const n of [sim.nodes[0]!, sim.nodes[4]!]) {
    n.transport.deliverPacket(new Wire(null, sim.clock).seal([{ t: 'suspect', id: x.id, inc, from: n.id }]), n.addr);
  }
  await sim.run(15_000);
  t.ok(log.some((e) => e.member === x.id && e.state === 'suspect'), 'suspected');
  t.notOk(log.some((e) => e.member === x.id && e.state === 'dead'), 'never declared dead');
  t.ok(x.membership.self.inc > inc, 'refuted with a higher incarnation');
  for (const n of sim.live()) t.equal(n.membership.member(x.id)?.state, 'alive', `${n.id} sees it alive`);
});

t.test('a node cut off for longer than the suspicion timeout is declared dead, then comes back when reachable', async (t) => {
  const sim = new Simulation({ nodes: 6, seed: 12 });
  await sim.start();
  await sim.run(3000);
  const x = sim.nodes[3]!;
  sim.register(x, 'web', '10.1.0.3');
  await sim.run(2000);
  sim.net.partition([x.addr]);
  await sim.run(20_000);
  for (const n of sim.live()) if (n !== x) t.equal(n.views!.service('default', 'web'), undefined, `${n.id} withdrew x's endpoint`);
  sim.net.heal();
  await sim.run(60_000);
  for (const n of sim.live()) t.equal(n.membership.member(x.id)?.state, 'alive', `${n.id} sees x alive again`);
  t.ok(sim.converged(), 'registries converge again');
});

t.test('a crashed node is declared dead by all and its endpoints withdrawn everywhere', async (t) => {
  const sim = new Simulation({ nodes: 8, seed: 3, network: { loss: 0.05 } });
  const log = watch(sim);
  await sim.start();
  const x = sim.nodes[4]!;
  sim.register(x, 'web', '10.1.0.4');
  await sim.run(5000);
  t.equal(sim.holders(x.id, x.local.state.version), 8);
  sim.crash(x);
  await sim.run(20_000);
  for (const n of sim.live()) {
    t.equal(n.membership.member(x.id)?.state, 'dead');
    t.equal(n.views!.service('default', 'web'), undefined, `${n.id} withdrew web`);
  }
  t.ok(log.some((e) => e.member === x.id && e.state === 'suspect'), 'suspected before dead (no false-positive shortcut)');
  t.ok(sim.converged(), 'registries converge on the live nodes');
});

t.test('a graceful leave withdraws the node at once, without suspicion', async (t) => {
  const sim = new Simulation({ nodes: 5, seed: 4 });
  const log = watch(sim);
  await sim.start();
  const x = sim.nodes[1]!;
  sim.register(x, 'db', '10.1.0.1');
  await sim.run(3000);
  const leaving = x.membership.leave(1000);
  await sim.run(1500);
  await leaving;
  x.crashed = true;
  x.membership.stop();
  for (const n of sim.live()) {
    t.equal(n.membership.member(x.id)?.state, 'left', `${n.id} saw the leave`);
    t.equal(n.registry.node(x.id), undefined);
  }
  t.notOk(log.some((e) => e.member === x.id && e.state === 'suspect'));
});

t.test('nodes join through one seed and learn every state by push-pull', async (t) => {
  const sim = new Simulation({ nodes: 12, seed: 9, converged: false });
  for (const n of sim.nodes) sim.register(n, `svc${n.index}`, `10.2.0.${n.index + 1}`);
  await sim.start();
  // Gossip reaches most nodes at once; the periodic push-pull (every 30 s) mends the rest.
  await sim.run(45_000);
  t.ok(sim.converged(), 'every registry holds every state');
  for (const n of sim.nodes) t.equal(n.membership.size, 12);
});

t.test('a state too big for a packet is announced and fetched over a stream', async (t) => {
  const sim = new Simulation({ nodes: 6, seed: 2 });
  await sim.start();
  await sim.run(2000);
  const x = sim.nodes[0]!;
  for (let i = 0; i < 40; i++) sim.register(x, `big${i}`, `10.3.0.${i + 1}`);
  const v = x.local.state.version;
  t.ok(JSON.stringify(x.local.state).length > 1400, 'state larger than a packet');
  await sim.run(3000);
  t.equal(sim.holders(x.id, v), 6, 'everyone has the newest big state');
});

t.test('encrypted packets stay under 1400 bytes, even with many updates queued', async (t) => {
  // Joining one by one: every member's alive is queued everywhere, beside the registry updates.
  const sim = new Simulation({ nodes: 20, seed: 8, key: Buffer.alloc(32, 7), converged: false });
  let max = 0;
  for (const n of sim.nodes) {
    const send = n.transport.sendPacket.bind(n.transport);
    n.transport.sendPacket = (to, data) => {
      max = Math.max(max, data.length);
      send(to, data);
    };
  }
  await sim.start();
  for (const n of sim.nodes) for (let i = 0; i < 3; i++) sim.register(n, `s${n.index}x${i}`, `10.4.${n.index}.${i + 1}`);
  await sim.run(10_000);
  t.ok(max > 1000, `packets were filled (largest ${max} bytes)`);
  t.ok(max < 1400, `largest packet ${max} bytes`);
  t.ok(sim.converged());
});

t.test('SPEC §3 addresses across hosts: container endpoints are the owner address + published port elsewhere', async (t) => {
  const sim = new Simulation({ nodes: 2, seed: 1 });
  await sim.start();
  const [a, b] = sim.nodes as [SimNode, SimNode];
  const container: Endpoint = {
    id: 'c1', namespace: 'default', service: 'web', hostname: 'web-c1', addresses: ['10.88.0.5'], explicit: false,
    ports: { http: { port: 80, protocol: 'tcp', hostPort: 8080 } }, weight: 10, health: 'none', healthy: true, source: 'podman',
    lastSeen: 0, container: { id: 'abc', name: 'web-c1' },
  };
  a.local.upsert(container);
  await sim.run(2000);
  const onA = a.views!.service('default', 'web')!.endpoints[0]!;
  const onB = b.views!.service('default', 'web')!.endpoints[0]!;
  t.same(onA.reach, { direct: true, addresses: ['10.88.0.5'], ports: { http: { port: 80, protocol: 'tcp' } } }, 'own host: container IP and port');
  t.same(onB.reach, { direct: false, addresses: [a.local.state.address], ports: { http: { port: 8080, protocol: 'tcp' } } }, 'other host: host address and published port');
  b.views!.setOptions({ localNode: b.id, routableContainerIps: true, defaultMode: 'dnsrr' });
  t.same(b.views!.service('default', 'web')!.endpoints[0]!.reach?.addresses, ['10.88.0.5'], '--routable-container-ips: container IP everywhere');
});

t.test('forged leaves and deaths: refused, or refuted by the node even when it was not told', async (t) => {
  const sim = new Simulation({ nodes: 5, seed: 21 });
  const log = watch(sim);
  await sim.start();
  const x = sim.nodes[2]!;
  sim.register(x, 'web', '10.1.0.2');
  await sim.run(3000);
  const others = sim.nodes.filter((n) => n !== x);
  const inc = x.membership.self.inc;
  const tell = (msg: Parameters<Wire['seal']>[0][number]) => {
    for (const n of others) n.transport.deliverPacket(new Wire(null, sim.clock).seal([msg]), 'rogue:1');
  };
  // A leave in x's name without x's signature, and a death x could never outrank.
  tell({ t: 'dead', id: x.id, inc: inc + 1, from: x.id });
  tell({ t: 'dead', id: x.id, inc: 2 ** 53 - 2, from: others[0]!.id });
  await sim.run(1000);
  for (const n of others) t.equal(n.membership.member(x.id)?.state, 'alive', `${n.name}: x still alive`);
  t.equal(others.reduce((s, n) => s + n.membership.stats.rejected.signature, 0), 4, 'the forged leave refused by all four');
  t.equal(others.reduce((s, n) => s + n.membership.stats.rejected.bounds, 0), 4, 'the 2^53 death refused by all four');

  // A death at x's own incarnation is believed, until x hears of it (piggy-backed on the
  // others' acks, or at the next push-pull) and refutes.
  tell({ t: 'dead', id: x.id, inc, from: others[0]!.id });
  const back = await sim.run(120_000, () => others.every((n) => n.membership.member(x.id)?.state === 'alive' && n.registry.node(x.id)));
  t.ok(log.some((e) => e.member === x.id && e.state === 'dead'), 'x was declared dead');
  t.ok(back, 'x refuted: alive with its endpoints on every other node');
  t.ok(x.membership.self.inc > inc, 'at a higher incarnation');
  t.ok(x.membership.self.inc < inc + 10, 'its own number plus a few, not a number the claims named');
});

t.test('last contact: each member records when it last heard from every other one', async (t) => {
  const sim = new Simulation({ nodes: 5, seed: 21 });
  await sim.start();
  await sim.run(10_000);
  const now = sim.clock.now();
  for (const n of sim.nodes) {
    for (const m of n.membership.all()) {
      if (m.id === n.id) continue;
      // Each probes one member per second and is probed as often: within a probe round of 5 s.
      t.ok(m.contact !== undefined && now - m.contact <= 5_000, `${n.id} heard from ${m.id} ${m.contact === undefined ? 'never' : `${now - m.contact} ms ago`}`);
    }
  }
  // A member cut off is not heard from any more; the others still are.
  const cut = sim.nodes[3]!;
  sim.net.partition([cut.addr]);
  const at = sim.clock.now();
  await sim.run(3_000);
  for (const n of sim.nodes) {
    if (n === cut) continue;
    t.ok((n.membership.member(cut.id)?.contact ?? 0) <= at, `${n.id}: nothing from the cut-off member since the cut`);
    t.ok(n.membership.all().some((m) => m.id !== n.id && m.id !== cut.id && (m.contact ?? 0) > at), `${n.id}: still hears from the others`);
  }
});
