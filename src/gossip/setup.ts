import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/errors.js';
import { showHostPort, type HostPort } from '../config/kinds.js';
import { Keyring } from './crypto.js';
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
