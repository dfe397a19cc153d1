import t from 'tap';
import { Registry } from '../../src/registry/registry.js';
import { LocalNode } from '../../src/registry/local.js';
import { RegistrySync } from '../../src/sync/registry-sync.js';
import { NodeIdentity } from '../../src/gossip/identity.js';
import { ep } from '../helpers/registry.js';
import { loneTransport, pushPullSyncs, registryOpts as opts } from '../helpers/sync.js';

// A host keeps the owner's proof of each state it holds and shows it to others in push-pull. The
// proof must be its own bytes, not a view of the buffer the update arrived in: that buffer (a
// packet, a push-pull answer) would stay in memory as long as the version is held, and whatever
// reuses it would corrupt the proof.


t.test('a state received in a packet is proven in push-pull after the packet buffer is reused', async (t) => {
  const key = NodeIdentity.generate();
  const owner = new Registry(opts(key.id));
  const local = new LocalNode(owner, { id: key.id, name: 'a', address: '192.0.2.1', incarnation: 0 });
  const fromOwner: Uint8Array[] = [];
  new RegistrySync(owner, Date.now, {}, { identity: key }).attach(loneTransport(fromOwner));
  local.upsert(ep('web', '10.0.0.1', { id: 'e1' }));

  const relay = new Registry(opts('relay'));
  const relaySync = new RegistrySync(relay);
  relaySync.attach(loneTransport([], key));
  for (const update of fromOwner) {
    // The update inside a larger received buffer, as the membership hands it over.
    const packet = Buffer.alloc(update.length + 64, 0xab);
    packet.set(update, 32);
    relaySync.notifyUpdate(packet.subarray(32, 32 + update.length));
    packet.fill(0);
  }
  t.equal(relay.node(key.id)?.version, local.state.version, 'the relay holds the owner’s state');

  const late = new Registry(opts('late'));
  const lateSync = new RegistrySync(late);
  lateSync.attach(loneTransport([]));
  pushPullSyncs(lateSync, relaySync);
  t.equal(late.node(key.id)?.version, local.state.version, 'a host that missed the update gets it from the relay, its proof intact');
  t.same(late.node(key.id)?.endpoints.map((e) => e.id), ['e1'], 'with its endpoint');
});
