import type { NodeIdentity } from '../../src/gossip/identity.js';
import type { Member } from '../../src/gossip/membership.js';
import type { RegistrySync, SyncTransport } from '../../src/sync/registry-sync.js';

/** Registry options of a test registry whose local node is `local`. */
export const registryOpts = (local: string) => ({ localNode: local, routableContainerIps: false, defaultMode: 'dnsrr' as const });

/**
 * A sync's transport for one host with no peers: what it broadcasts lands in `sent`, every member
 * it asks about is alive, and `key`'s node carries that key in its signed alive (as the
 * membership's does), so updates of that node can be checked.
 */
export function loneTransport(sent: Uint8Array[], key?: NodeIdentity, maxUserUpdate = 1200): SyncTransport {
  const member = (id: string): Member => ({ id, name: id, addr: id, inc: 0, state: 'alive', since: 0, ...(id === key?.id ? { proof: { pub: key.publicKey, sig: new Uint8Array(64) } } : {}) });
  return {
    maxUserUpdate,
    broadcast: (_id, data) => void sent.push(data),
    request: () => Promise.reject(new Error('no requests in this test')),
    pushPull: () => Promise.resolve(),
    member,
    all: () => [],
    rand: Math.random,
    now: Date.now,
    after: () => undefined,
  };
}

/** One push-pull between two syncs, every leg, as the membership runs it (`x` starts it). */
export function pushPullSyncs(x: RegistrySync, y: RegistrySync, join = false): void {
  const rest = x.pushPullFinish(y.pushPullAnswer(x.pushPullRequest()), join);
  if (rest) x.pushPullDone(y.pushPullLast(rest));
}
