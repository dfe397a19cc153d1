import { join } from 'node:path';
import type { DnsSetup } from '../dns/setup.js';
import type { HealthChecker } from '../health/checker.js';
import { hostAddresses } from '../net/host-addresses.js';
import type { Context, Part } from '../part.js';
import type { LocalNode } from '../registry/local.js';
import { PodmanSource } from './source.js';
import { ownerName, socketOrigin, UserSockets } from './users.js';

// Podman as a source of endpoints (docs/architecture.md#podman, src/podman/README.md): started
// last, once DNS serves, so the first containers are answered as soon as they are known.

export interface PodmanSetup extends Part {
  /** Following Podman; null with --podman-socket none or before the start. */
  source(): PodmanSource | null;
}

/**
 * The Podman API sockets: the --podman-socket values after the last `none` (so `none` turns
 * Podman off, and a later flag adds a socket again). Rootless Podman serves it under the user's
 * runtime directory: a user's default is there.
 */
export function podmanSockets(c: Pick<Context, 'opts' | 'origin' | 'env'>, uid = process.getuid?.()): string[] {
  const xdg = c.env.XDG_RUNTIME_DIR;
  if (c.origin.podmanSocket === 'default' && uid !== 0 && xdg) return [join(xdg, 'podman', 'podman.sock')];
  const all = c.opts.podmanSocket;
  return all.slice(all.lastIndexOf('none') + 1);
}

/** Whether users' rootless sockets are followed: `auto` means when running as root with Podman on. */
export const followsUserSockets = (c: Pick<Context, 'opts' | 'origin' | 'env'>, uid = process.getuid?.()): boolean =>
  c.opts.podmanUserSockets === 'auto' && uid === 0 && podmanSockets(c, uid).length > 0;

export function setupPodman(c: Context, d: { local: LocalNode; dns: DnsSetup; health: HealthChecker }): PodmanSetup {
  const { opts: o, log, problems } = c;
  const { dns } = d;
  let source: PodmanSource | null = null;
  let users: UserSockets | null = null;
  const uid = process.getuid?.() ?? 0;
  return {
    source: () => source,
    async start() {
      const sockets = podmanSockets(c);
      if (sockets.length === 0) return;
      const s = (source = new PodmanSource(
        { resyncIntervalMs: o.resyncInterval, nodeAddress: c.rt.advertise, maxPorts: o.maxPortsPerEndpoint, maxEndpoints: o.maxEndpointsPerService, failures: c.failures },
        {
          local: d.local,
          names: (containers) => {
            // A container's start may have brought up its network's bridge and gateway address:
            // taken in the same table update as the container (a no-op when nothing is new).
            dns.clients.setHostAddresses(hostAddresses());
            dns.names.setContainers(containers.map((x) => x.names));
          },
          ownerNames: (uid, containers) => dns.names.setOwnerContainers(uid, containers && containers.map((x) => x.names)),
          networks: (nets) => dns.names.setNetworks(nets),
          bridgeSubnets: (subnets) => dns.clients.setBridgeSubnets(subnets),
          gateways: (gws) => {
            dns.clients.setHostAddresses(hostAddresses());
            if (c.priv.bindLowPorts) void dns.gateways.set(gws);
            else if (gws.length) problems.set('gateways', `not root (no CAP_NET_BIND_SERVICE): not serving DNS on the gateways of Podman networks ${gws.join(', ')}`);
          },
          healthEvent: (id) => d.health.checkContainer(id),
          batch: (update) => (dns.native.table ? dns.native.table.batch(update) : update()),
        },
        log,
      ));
      for (const socket of sockets) s.add(socket, await socketOrigin(socket, uid));
      s.start();
      if (followsUserSockets(c, uid)) {
        users = new UserSockets(
          {
            appeared: (userId, socket) => void ownerName(userId).then((owner) => s.add(socket, { owner, rootless: true, qualify: true, uid: userId }, false)),
            left: (socket, why) => s.remove(socket, why),
          },
          log,
          { skip: (socket) => sockets.includes(socket) },
        );
        users.start();
      }
    },
    async stop() {
      users?.stop();
      source?.stop();
    },
  };
}
