import t from 'tap';
import { decode, encode } from '@msgpack/msgpack';
import { Registry } from '../../src/registry/registry.js';
import { LocalNode } from '../../src/registry/local.js';
import { RegistrySync } from '../../src/sync/registry-sync.js';
import { decodeBody, decodeState } from '../../src/sync/delta.js';
import { NodeIdentity } from '../../src/gossip/identity.js';
import { seeded } from '../../src/gossip/sim/clock.js';
import type { NodeState } from '../../src/registry/types.js';
import { ep } from '../helpers/registry.js';
import { loneTransport, registryOpts as opts } from '../helpers/sync.js';

// The sync's decoders on hostile bytes: real updates and whole states (of every kind the format
// has) mutated — bytes flipped, cut short, grown, replaced by noise — reach a receiver. None may
// throw out of the sync, each is either refused (counted) or old news, and the receiver never
// holds a state its owner did not have.

const canon = (v: unknown): string => JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Uint8Array) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));

t.test('mutated updates, states and push-pull answers are refused or old news, never thrown, never half-applied', async (t) => {
  const key = NodeIdentity.generate();
  const owner = new Registry(opts(key.id));
  let clock = 1_000;
  const local = new LocalNode(owner, { id: key.id, name: 'owner', address: '192.0.2.1', incarnation: 1 }, () => clock);
  const updates: Uint8Array[] = [];
  const ownerSync = new RegistrySync(owner, Date.now, {}, { identity: key });
  ownerSync.attach(loneTransport(updates, key, 100_000));
  const states: NodeState[] = [local.state];
  const container = { id: 'ab'.repeat(32), name: 'web-1', network: 'podman', owner: 'alice', isolated: false };
  for (let i = 0; i < 6; i++) {
    clock += 1000;
    if (i % 3 === 2) local.remove('api', `default/web/w${i - 1}`);
    else local.upsert(ep('web', i % 2 ? `fd00::${i + 1}` : `10.0.0.${i + 1}`, { id: `w${i}`, lastSeen: clock - 5, ports: { http: { port: 80, protocol: 'tcp', hostPort: 8080 + i }, dns: { port: 53, protocol: 'udp' } }, container, problems: ['x'], ttl: 30, mode: 'vip' }));
    states.push(local.state);
  }
  const real = new Set(states.map(canon));
  // Push-pull's legs with the whole state: the owner's leg 3 to a side that holds nothing (one
  // bucket, which differs), and the same states as a leg 4 answer.
  const whole = ownerSync.pushPullFinish(encode([1, new Uint8Array([0, 0]), []]), false)!;
  const answer = ownerSync.pushPullAnswer(encode(new Uint8Array(8)));
  const seeds = [...updates, whole, encode([5, (decode(whole) as unknown[])[1]]), answer];

  const rand = seeded(2024);
  const r = (n: number): number => Math.floor(rand() * n);
  const mutate = (b: Uint8Array): Uint8Array => {
    const x = new Uint8Array(b);
    switch (r(5)) {
      case 0:
        for (let i = 1 + r(4); i > 0; i--) x[r(x.length)] = r(256);
        return x;
      case 1:
        return x.subarray(0, r(x.length));
      case 2:
        return new Uint8Array([...x, ...Array.from({ length: r(40) }, () => r(256))]);
      case 3:
        return new Uint8Array(Array.from({ length: r(300) }, () => r(256)));
      default:
        x[r(x.length)]! ^= 1 << r(8);
        return x;
    }
  };

  let refused = 0;
  const receiver = new Registry(opts('receiver'));
  const sync = new RegistrySync(receiver, Date.now, { invalid: () => refused++, rejected: () => refused++ });
  sync.attach(loneTransport([], key, 100_000));
  const N = 4000;
  for (let i = 0; i < N; i++) {
    const bytes = mutate(seeds[r(seeds.length)]!);
    try {
      const leg = r(4);
      if (leg === 0) sync.notifyUpdate(bytes);
      else if (leg === 1) sync.pushPullLast(bytes);
      else if (leg === 2) sync.pushPullDone(bytes);
      else sync.pushPullFinish(bytes, false);
    } catch (e) {
      return t.fail(`input ${i} threw: ${(e as Error).stack}`);
    }
    const held = receiver.node(key.id);
    if (held && !real.has(canon(held))) return t.fail(`input ${i}: a state the owner never had`);
  }
  t.ok(refused > N / 4, `most mutated inputs are refused and counted (${refused} of ${N})`);
  // The real ones still go through afterwards.
  sync.pushPullLast(whole);
  t.equal(canon(receiver.node(key.id)), canon(local.state), 'the real whole state merges after all that');
  t.ok(real.has(canon(local.state)));
});

t.test('the compact decoders give null, never throw, on any bytes', async (t) => {
  const rand = seeded(7);
  const r = (n: number): number => Math.floor(rand() * n);
  for (let i = 0; i < 20_000; i++) {
    const bytes = new Uint8Array(Array.from({ length: r(200) }, () => r(256)));
    // A msgpack array header first, so that the decoders get past the first check often.
    if (bytes.length) bytes[0] = 0x90 | r(6);
    try {
      decodeBody({ id: 'n', version: 10, base: r(2) ? 0 : 5 }, bytes);
      decodeState('n', 10, bytes);
    } catch (e) {
      return t.fail(`input ${i} threw: ${(e as Error).message}`);
    }
  }
  t.pass('20,000 random bodies and states');
});
