import { readFileSync } from 'node:fs';
import { Counter, Gauge } from 'prom-client';
import type { Metrics } from '../api/metrics.js';
import type { MemberJson } from '../api/format.js';
import { ConfigError } from '../config/errors.js';
import type { Context, Part } from '../part.js';
import type { Registry } from '../registry/registry.js';
import type { EtcdBackend } from './backend.js';
import type { EtcdClient, EtcdOptions } from './client.js';

// etcd as the registry's transport (--registry etcd, docs/etcd.md), in place of gossip and its
// sync. The client and the backend are loaded only here, when the part starts: a daemon on gossip
// never loads them. The options are checked first (a ConfigError naming the option and the fix,
// exit 2); a refused password or a failed TLS handshake at the first contact is one too, while a
// cluster that is only unreachable is retried with backoff as the daemon serves its local state.

export interface EtcdInput {
  etcdEndpoints: string[];
  etcdCaFile: string;
  etcdCertFile: string;
  etcdKeyFile: string;
  etcdUsername: string;
  etcdPasswordFile: string;
}

export function etcdClientOptions(o: EtcdInput, read: (path: string) => string = (p) => readFileSync(p, 'utf8')): EtcdOptions {
  if (o.etcdEndpoints.length === 0) throw new ConfigError('ERR_CONFIG_BAD_VALUE', '--registry etcd needs --etcd-endpoints (for example --etcd-endpoints http://10.0.0.1:2379)');
  const file = (flag: string, path: string): string => {
    try {
      return read(path);
    } catch (e) {
      throw new ConfigError('ERR_CONFIG_FILE', `--${flag} ${path}: cannot read it (${(e as Error).message})`);
    }
  };
  if (Boolean(o.etcdCertFile) !== Boolean(o.etcdKeyFile)) throw new ConfigError('ERR_CONFIG_BAD_VALUE', '--etcd-cert-file and --etcd-key-file go together: give both or neither');
  if (Boolean(o.etcdUsername) !== Boolean(o.etcdPasswordFile)) throw new ConfigError('ERR_CONFIG_BAD_VALUE', '--etcd-username and --etcd-password-file go together: give both or neither');
  const tls = o.etcdCaFile || o.etcdCertFile;
  if (tls && !o.etcdEndpoints.every((e) => e.startsWith('https:'))) {
    throw new ConfigError('ERR_CONFIG_BAD_VALUE', `TLS files are given but ${o.etcdEndpoints.filter((e) => !e.startsWith('https:')).join(', ')} is not https://`);
  }
  return {
    endpoints: o.etcdEndpoints,
    ...(o.etcdCaFile ? { ca: file('etcd-ca-file', o.etcdCaFile) } : {}),
    ...(o.etcdCertFile ? { cert: file('etcd-cert-file', o.etcdCertFile), key: file('etcd-key-file', o.etcdKeyFile) } : {}),
    ...(o.etcdUsername ? { username: o.etcdUsername, password: file('etcd-password-file', o.etcdPasswordFile).split('\n')[0]!.trim() } : {}),
  };
}

/** How long the start waits for the first contact with etcd before serving without it. */
const FIRST_CONTACT_MS = 3000;

export interface EtcdStatus {
  state: 'connecting' | 'synced' | 'unavailable';
  endpoint: string;
  /** Seconds since the last working session (null while synced). */
  stale_seconds: number | null;
  last_error: string | null;
  revision: number;
  lease: string | null;
  writes: number;
  watch_events: number;
  relists: number;
  skipped_keys: number;
}

export interface EtcdSetup extends Part {
  /** Null before the start. */
  status(): EtcdStatus | null;
  /** Why the remote nodes' states may be out of date (etcd unreachable), or null. */
  stale(): string | null;
  /** The first listing has been fed to the registry. */
  synced(): boolean;
  /** Registry nodes for the API's members and nodes: `stale` while etcd cannot be reached. */
  nodes(): MemberJson[];
}

export function setupEtcd(c: Context, d: { registry: Registry; metrics: Metrics }): EtcdSetup {
  const { opts: o, log } = c;
  let backend: EtcdBackend | null = null;
  let client: EtcdClient | null = null;
  let synced = false;
  const staleSeconds = (): number | null => (backend?.unavailableSince != null ? (Date.now() - backend.unavailableSince) / 1000 : null);
  const stale = (): string | null => (backend && backend.state !== 'synced' ? `etcd ${backend.state === 'connecting' ? 'not reached yet' : 'unreachable'} (${client!.endpoint}${backend.lastError ? `: ${backend.lastError}` : ''}): other hosts' endpoints are the last known` : null);
  etcdMetrics(d.metrics, () => backend, () => client, staleSeconds);

  return {
    stale,
    synced: () => synced,
    status() {
      if (!backend || !client) return null;
      const p = backend.position;
      return {
        state: backend.state, endpoint: client.endpoint, stale_seconds: staleSeconds(), last_error: backend.lastError, revision: p.revision, lease: p.lease,
        writes: backend.counters.writes, watch_events: backend.counters.watchEvents, relists: backend.counters.relists, skipped_keys: backend.skipped,
      };
    },
    nodes() {
      const local = d.registry.localNode;
      const isStale = backend?.state !== 'synced';
      return [...d.registry.nodes()]
        .map((s): MemberJson => ({
          id: s.id, name: s.name, address: s.address, gossip_address: null, state: s.id !== local && isStale ? 'stale' : 'alive',
          local: s.id === local, incarnation: s.incarnation, version: s.version, endpoints: s.endpoints.length,
        }))
        .sort((a, b) => (a.local ? -1 : b.local ? 1 : a.name.localeCompare(b.name)));
    },
    async start() {
      const options = etcdClientOptions(o);
      checkSkydnsPrefix(o.etcdSkydnsPrefix, o.etcdPrefix);
      const [{ EtcdClient, configFault, endpointOf }, { EtcdBackend }] = await Promise.all([import('./client.js'), import('./backend.js')]);
      client = new EtcdClient(options);
      let waiting = true;
      backend = new EtcdBackend({
        fatalAtStart: (e) => waiting && configFault(e) !== null,
        client, prefix: o.etcdPrefix, leaseTtlSeconds: Math.max(1, Math.round(o.etcdLeaseTtl / 1000)), registry: d.registry, log, maxEndpoints: o.maxEndpointsPerNode,
        ...(o.etcdSkydnsPrefix ? { skydns: { prefix: o.etcdSkydnsPrefix, zone: o.domain } } : {}),
      });
      void backend.synced.then(() => (synced = true));
      let timer: NodeJS.Timeout | undefined;
      const first = await Promise.race([backend.start(), new Promise<null>((r) => (timer = setTimeout(() => r(null), FIRST_CONTACT_MS)))]);
      clearTimeout(timer);
      waiting = false;
      const fault = first && configFault(first);
      // Unreachable for now: the backend warned once and retries; `status` shows it as a problem.
      if (first && fault) throw new ConfigError('ERR_CONFIG_BAD_VALUE', `etcd ${endpointOf(first) ?? client.endpoint}: ${fault}`);
    },
    async stop(restart) {
      // A real stop revokes the lease: every host drops this node's endpoints at once. A restart
      // leaves them; the next process writes them again on its own lease before this one expires.
      await backend?.stop(!restart);
    },
  };
}

/** The SkyDNS prefix is a path apart from the registry's prefix (else each would read the other's keys as junk). */
export function checkSkydnsPrefix(skydns: string, prefix: string): void {
  if (!skydns) return;
  const p = `${skydns.replace(/\/+$/, '')}/`;
  if (!skydns.startsWith('/') || p === '/') throw new ConfigError('ERR_CONFIG_BAD_VALUE', `--etcd-skydns-prefix ${skydns}: give a path such as /skydns (the path in CoreDNS's etcd plugin)`);
  if (p.startsWith(prefix) || prefix.startsWith(p)) throw new ConfigError('ERR_CONFIG_BAD_VALUE', `--etcd-skydns-prefix ${skydns} overlaps --etcd-prefix ${prefix}: give them separate paths (e.g. /skydns and /podman-swarm-dns/)`);
}

function etcdMetrics(metrics: Metrics, backend: () => EtcdBackend | null, client: () => EtcdClient | null, staleSeconds: () => number | null): void {
  const P = 'podman_swarm_dns_etcd_';
  const registers = [metrics.prom];
  new Gauge({ name: `${P}up`, help: 'Whether this node follows etcd now (1: synced; 0: connecting or unreachable, remote endpoints are the last known)', registers, collect() { this.set(backend()?.state === 'synced' ? 1 : 0); } });
  new Gauge({ name: `${P}stale_seconds`, help: 'Seconds since this node last followed etcd (0 while it does)', registers, collect() { this.set(staleSeconds() ?? 0); } });
  const counter = (name: string, help: string, read: () => number | undefined): void => {
    new Counter({ name: `${P}${name}`, help, registers, collect() { this.reset(); this.inc(read() ?? 0); } });
  };
  counter('writes_total', "Transactions writing this node's changed keys", () => backend()?.counters.writes);
  counter('watch_events_total', 'Key events received from the watch', () => backend()?.counters.watchEvents);
  counter('skipped_keys_total', 'Keys under the prefix skipped as not well-formed records', () => backend()?.skipped);
  counter('relists_total', 'Whole listings of the prefix (the first, and after a compacted watch revision)', () => backend()?.counters.relists);
  counter('over_limit_total', 'Node states from etcd not applied: more endpoints than --max-endpoints-per-node', () => backend()?.counters.overLimit);
  counter('failures_total', 'Sessions with etcd that ended in an error (each is retried with backoff)', () => backend()?.counters.failures);
  counter('bytes_sent_total', 'Bytes of request bodies sent to etcd', () => client()?.traffic.sent);
  counter('bytes_received_total', 'Bytes of answers and watch messages received from etcd', () => client()?.traffic.received);
}
