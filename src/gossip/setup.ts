import { readFileSync } from 'node:fs';
import type { Metrics } from '../api/metrics.js';
import { ConfigError } from '../config/errors.js';
import { showHostPort, type HostPort } from '../config/kinds.js';
import type { Context, Part } from '../part.js';
import type { Registry } from '../registry/registry.js';
import { Cluster } from './cluster.js';
import { Keyring } from './crypto.js';
import type { NodeIdentity } from './identity.js';
import { gossipMetrics } from './metrics.js';
import { decodeToken } from './token.js';

// The cluster options (docs/architecture.md#registry-and-gossip, docs/architecture.md#configuration) turned into what the cluster needs: the keyring (from
// --gossip-key-file, else the join token's key), the seeds (--join plus the token's), and whether
// gossip may run at all (never unencrypted off loopback without --insecure-gossip).

export interface ClusterSettings {
  keyring: Keyring | null;
  seeds: string[];
  /** Why gossip stays off, when it does. */
  disabled: string | null;
}

export interface ClusterInput {
  gossipListen: HostPort;
  advertise: string;
  join: HostPort[];
  joinToken: string;
  gossipKeyFile: string;
  insecureGossip: boolean;
}

const isLoopback = (host: string): boolean => /^127\./.test(host) || host === '::1' || host === 'localhost';

export function clusterSettings(o: ClusterInput): ClusterSettings {
  let keyring: Keyring | null = null;
  if (o.gossipKeyFile) {
    let text: string;
    try {
      text = readFileSync(o.gossipKeyFile, 'utf8');
    } catch (e) {
      throw new ConfigError('ERR_CONFIG_FILE', `--gossip-key-file ${o.gossipKeyFile}: cannot read it (${(e as Error).message})`);
    }
    try {
      keyring = Keyring.parse(text, `--gossip-key-file ${o.gossipKeyFile}`);
    } catch (e) {
      throw new ConfigError('ERR_CONFIG_BAD_VALUE', (e as Error).message);
    }
  }
  const seeds = o.join.map(showHostPort);
  if (o.joinToken) {
    let t;
    try {
      t = decodeToken(o.joinToken);
    } catch (e) {
      throw new ConfigError('ERR_CONFIG_BAD_VALUE', `--join-token: ${(e as Error).message}`);
    }
    seeds.push(...t.seeds.filter((s) => !seeds.includes(s)));
    if (!keyring && t.key) keyring = new Keyring([t.key]);
  }
  // Listening on loopback only is a single-host (or test) setup; anything else is a network.
  const exposed = !isLoopback(o.gossipListen.host) || !isLoopback(o.advertise);
  const disabled =
    !keyring && exposed && !o.insecureGossip
      ? `gossip is off: no --gossip-key-file (or --join-token) and ${showHostPort(o.gossipListen)} is not loopback; make a key with \`podman-swarm-dns keygen > /etc/podman-swarm-dns/gossip.key\` and set gossip-key-file, or pass --insecure-gossip`
      : null;
  return { keyring, seeds, disabled };
}

export interface GossipSetup extends Part {
  /** The gossip layer (docs/architecture.md#registry-and-gossip); null when it is off or not started yet. */
  cluster(): Cluster | null;
  /** Joins `seeds` now (the API's join); with gossip off, says why. */
  join(seeds: string[]): Promise<{ joined: number; errors: string[] }>;
}

/** No gossip at all (another transport carries the registry): the API's join says why. */
export function gossipOff(why: string): GossipSetup {
  return { cluster: () => null, join: async () => ({ joined: 0, errors: [why] }) };
}

export function setupGossip(c: Context, d: { registry: Registry; identity: NodeIdentity; metrics: Metrics }): GossipSetup {
  const { opts: o, rt, log, problems } = c;
  let cluster: Cluster | null = null;
  /** Why this node does not gossip (null when it does, or is trying to). */
  let off: string | null = null;
  const lag = gossipMetrics(d.metrics.prom, () => cluster).lag;
  return {
    cluster: () => cluster,
    join: async (seeds) => (cluster ? cluster.join(seeds) : { joined: 0, errors: [problems.get('gossip') ?? off ?? 'gossip is off'] }),
    async start() {
      const settings = clusterSettings({ ...o, advertise: rt.advertise });
      if (settings.disabled) {
        off = settings.disabled;
        // With no peer to join (a single host) there is no cluster to miss: said once, not a problem.
        if (settings.seeds.length) problems.set('gossip', settings.disabled);
        else log.info(settings.disabled);
        return;
      }
      const unspecified = o.gossipListen.host === '0.0.0.0' || o.gossipListen.host === '::';
      try {
        cluster = await Cluster.start({
          identity: d.identity, name: rt.nodeName, listenHost: o.gossipListen.host, listenPort: o.gossipListen.port,
          advertiseHost: unspecified ? rt.advertise : o.gossipListen.host, keyring: settings.keyring, seeds: settings.seeds,
          registry: d.registry, log, stateDir: rt.stateDir, onMerged: lag,
          maxEndpoints: o.maxEndpointsPerNode, maxConnections: o.gossipMaxConnections, failures: c.failures, deadGraceMs: o.deadGrace,
        });
      } catch (e) {
        const msg = `cannot gossip on ${showHostPort(o.gossipListen)}: ${(e as Error).message}`;
        if (c.origin.gossipListen !== 'default') throw new Error(msg);
        problems.set('gossip', `${msg}; running without the cluster`);
      }
    },
    async stop(restart) {
      // Leave first, so every host withdraws this node's endpoints at once (docs/architecture.md#registry-and-gossip).
      await cluster?.stop(!restart).catch((e: Error) => log.warn(`leaving the cluster failed: ${e.message}`));
    },
  };
}
