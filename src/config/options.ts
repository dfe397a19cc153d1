import * as k from './kinds.js';

// Every daemon option, defined once. Flags (`--name`), environment variables
// (`PODMAN_SWARM_DNS_NAME`), YAML keys (`name:`), validation, defaults and `--help` all derive
// from this table. Durations are held in milliseconds, TTLs in seconds.

export interface OptionDef<T> {
  name: string;
  kind: k.Kind<T>;
  default: NoInfer<T>;
  /** Shown in --help instead of the default value when the default is computed at start. */
  defaultText?: string;
  help: string;
  group: Group;
  /** Extra environment variables read for this option (besides PODMAN_SWARM_DNS_<NAME>). */
  env?: string[];
  /** Feature that is accepted and validated now but takes effect in a later release. */
  pending?: string;
  /** A reload (SIGHUP) applies it to the running daemon; any other option needs a restart. */
  live?: true;
  /** Only settable on the command line or environment (e.g. --config itself). */
  noFile?: boolean;
}

export type Group = 'General' | 'DNS' | 'API' | 'Cluster' | 'Podman' | 'Health' | 'Load balancer' | 'systemd';

const def = <T>(d: OptionDef<T>): OptionDef<T> => d;


export const OPTIONS = {
  config: def({
    name: 'config', kind: k.path, default: '/etc/podman-swarm-dns/config.yaml', group: 'General', noFile: true,
    help: 'YAML config file; a missing default file is fine, a missing explicit one is an error',
  }),
  nodeName: def({
    name: 'node-name', kind: k.string, default: '', defaultText: 'hostname', group: 'General',
    help: "this node's name in the cluster",
  }),
  stateDir: def({
    name: 'state-dir', kind: k.path, default: '', group: 'General',
    defaultText: '/var/lib/podman-swarm-dns (root), ~/.local/state/podman-swarm-dns (others)',
    help: 'where the node key and id, API registrations and the persisted registry live',
  }),
  logLevel: def({
    name: 'log-level', live: true, kind: k.oneOf('debug', 'info', 'warn', 'error'), default: 'info', group: 'General',
    help: 'log verbosity; debug logs every DNS query',
  }),
  maxPortsPerEndpoint: def({
    name: 'max-ports-per-endpoint', kind: k.int(1, 4096), default: 64, group: 'General',
    help: 'ports one endpoint may declare (API, config file, Podman labels); each one is health-checked',
  }),
  maxEndpointsPerService: def({
    name: 'max-endpoints-per-service', kind: k.int(1, 100_000), default: 1024, group: 'General',
    help: "endpoints this node may register for one service (API, config file, Podman); more are refused",
  }),

  domain: def({
    name: 'domain', kind: k.domain, default: 'cluster.local', group: 'DNS',
    help: 'cluster zone: <service>.<namespace>.<domain>',
  }),
  dnsListen: def({
    name: 'dns-listen', kind: k.list(k.hostPort()), default: [] as k.HostPort[], group: 'DNS',
    defaultText: 'root: <cluster DNS address>:53 on --link and 127.0.0.1:53; others: 127.0.0.1:5353',
    help: 'UDP+TCP addresses to serve DNS on; replaces the defaults',
  }),
  ttl: def({
    name: 'ttl', live: true, kind: k.seconds(86400), default: 5, group: 'DNS',
    help: 'TTL of in-zone answers (per-service label podman-swarm.ttl overrides)',
  }),
  negativeTtl: def({
    name: 'negative-ttl', live: true, kind: k.seconds(86400), default: 5, group: 'DNS',
    help: 'TTL of NXDOMAIN/NODATA answers (SOA minimum)',
  }),
  upstreamDns: def({
    name: 'upstream-dns', live: true, kind: k.list(k.hostPort({ defaultPort: 53 })), default: [] as k.HostPort[],
    group: 'DNS', env: ['UPSTREAM_DNS'], defaultText: 'nameservers of /etc/resolv.conf',
    help: 'servers that names outside the zone are forwarded to, tried in order',
  }),
  upstreamTimeout: def({
    name: 'upstream-timeout', live: true, kind: k.duration(100, 30_000), default: 2000, group: 'DNS',
    help: 'how long to wait for one upstream before trying the next',
  }),
  cacheSize: def({
    name: 'cache-size', live: true, kind: k.int(0, 10_000_000), default: 10_000, group: 'DNS',
    help: 'forwarded answers kept in the cache, and in the native UDP threads\' copy of it (0 disables both)',
  }),
  serveStale: def({
    name: 'serve-stale', live: true, kind: k.duration(0, 7 * 86_400_000), default: 3_600_000, group: 'DNS',
    help: 'when every upstream fails, answer forwarded names from cache entries expired up to this long ago, with TTL 30s (0: off; never for names in the zone)',
  }),
  startGrace: def({
    name: 'start-grace', kind: k.duration(0, 600_000), default: 5000, group: 'DNS',
    help: 'with no persisted state, names in the zone get SERVFAIL (not NXDOMAIN) until the first Podman and cluster syncs are done or this long has passed (0: off)',
  }),
  allowRecursion: def({
    name: 'allow-recursion', live: true, kind: k.list(k.cidr), default: ['127.0.0.0/8', '::1/128'].map((c) => k.cidr.parse(c)),
    group: 'DNS',
    help: 'clients allowed to use forwarding, besides local Podman bridge subnets; replaces the default',
  }),
  forwardAllow: def({
    name: 'forward-allow', live: true, kind: k.list(k.domain), default: [] as string[], group: 'DNS',
    help: 'when set, only names under these domains are forwarded; others get REFUSED',
  }),
  preferLocal: def({
    name: 'prefer-local', live: true, kind: k.bool, default: true, group: 'DNS',
    help: "answer this host's endpoints first to queries from local bridge subnets",
  }),
  udpAnswerLimit: def({
    name: 'udp-answer-limit', live: true, kind: k.int(0, 1000), default: 0, group: 'DNS',
    help: 'at most this many A/AAAA records in a UDP answer, without TC (0: as many as fit)',
  }),
  failOpen: def({
    name: 'fail-open', live: true, kind: k.bool, default: false, group: 'DNS',
    help: 'when no endpoint of a service is healthy, answer all of them instead of none',
  }),
  tcpIdleTimeout: def({
    name: 'tcp-idle-timeout', live: true, kind: k.duration(1000, 600_000), default: 10_000, group: 'DNS',
    help: 'DNS-over-TCP connections idle this long are closed (also those whose answers stay unread this long)',
  }),
  tcpReadTimeout: def({
    name: 'tcp-read-timeout', live: true, kind: k.duration(100, 600_000), default: 5000, group: 'DNS',
    help: 'a DNS-over-TCP query must arrive whole within this long of its first byte, or the connection is closed',
  }),
  tcpMaxConnections: def({
    name: 'tcp-max-connections', live: true, kind: k.int(1, 1_000_000), default: 1000, group: 'DNS',
    help: 'DNS-over-TCP connections at once; beyond it a new one replaces the oldest with no query in flight',
  }),
  tcpMaxConnectionsPerClient: def({
    name: 'tcp-max-connections-per-client', live: true, kind: k.int(1, 1_000_000), default: 100, group: 'DNS',
    help: 'DNS-over-TCP connections at once from one client address; more are refused',
  }),
  dnsRrl: def({
    name: 'dns-rrl', live: true, kind: k.int(0, 10_000_000), default: 0, group: 'DNS',
    help: 'response rate limiting for UDP: responses per second to one /24 (IPv4) or /56 (IPv6); beyond it responses are dropped (0: off)',
  }),
  dnsRrlSlip: def({
    name: 'dns-rrl-slip', live: true, kind: k.int(0, 10), default: 2, group: 'DNS',
    help: 'with --dns-rrl, every Nth limited response is sent truncated (TC) instead of dropped, so real clients retry over TCP (0: drop all)',
  }),
  queryLog: def({
    name: 'query-log', live: true, kind: k.queryLogMode, default: 'off', group: 'DNS',
    help: 'log DNS queries of both paths as JSON lines (time, client, name, type, rcode, answers, path, us): off, errors (rcode not NOERROR), sample:N (one in N) or all',
  }),
  queryLogFile: def({
    name: 'query-log-file', live: true, kind: k.path, default: '', defaultText: "the daemon's log stream", group: 'DNS',
    help: 'file the query log is appended to; a file that cannot be written is logged once and its lines dropped (counted)',
  }),
  dnsThreads: def({
    name: 'dns-threads', kind: k.int(0, 64), default: 0, group: 'DNS',
    help: 'UDP threads of the native DNS path (0: one per CPU core); env PODMAN_SWARM_DNS_NATIVE=0 serves DNS from JS instead',
  }),
  link: def({
    name: 'link', kind: k.linkName, default: 'pswarm0', group: 'DNS',
    help: 'link holding the cluster DNS address and service VIPs (created when root); none: do not create it',
  }),
  serviceCidr: def({
    name: 'service-cidr', kind: k.cidr, default: k.cidr.parse('10.223.0.0/16'), group: 'DNS',
    help: 'service VIP range; the cluster DNS address is its .0.10',
  }),

  apiListen: def({
    name: 'api-listen', kind: k.list(k.apiListen), default: [] as k.ApiListen[], group: 'API',
    defaultText: '127.0.0.1:8080 and unix:/run/podman-swarm-dns/api.sock (root) or unix:$XDG_RUNTIME_DIR/podman-swarm-dns/api.sock; with a --state-dir other than the default, unix:<state-dir>/api.sock',
    help: 'HTTP API addresses; a non-loopback address needs --api-token-file',
  }),
  apiTokenFile: def({
    name: 'api-token-file', live: true, kind: k.path, default: '', group: 'API', defaultText: '<state-dir>/api-token, made at first start',
    help: 'file holding the Bearer token that TCP listeners need for writes (and for reads off loopback); the unix socket needs none',
  }),

  gossipListen: def({
    name: 'gossip-listen', kind: k.hostPort(), default: k.hostPort().parse('0.0.0.0:7946'), group: 'Cluster',
    help: 'UDP+TCP gossip address',
  }),
  advertiseAddress: def({
    name: 'advertise-address', kind: k.ip, default: '', defaultText: 'first non-loopback address', group: 'Cluster',
    help: 'address other nodes use for this node and its published ports',
  }),
  join: def({
    name: 'join', kind: k.list(k.hostPort({ defaultPort: 7946, names: true })), default: [] as k.HostPort[],
    group: 'Cluster', help: 'existing members to join (retried with backoff until one answers)',
  }),
  joinToken: def({
    name: 'join-token', kind: k.string, default: '', group: 'Cluster',
    help: 'token printed by `podman-swarm-dns join-token` on a member',
  }),
  gossipKeyFile: def({
    name: 'gossip-key-file', kind: k.path, default: '', group: 'Cluster',
    help: 'keyring: one base64 32-byte key per line, the first is used to send',
  }),
  insecureGossip: def({
    name: 'insecure-gossip', kind: k.bool, default: false, group: 'Cluster',
    help: 'allow unencrypted gossip on non-loopback addresses',
  }),
  gossipMaxConnections: def({
    name: 'gossip-max-connections', kind: k.int(1, 10_000), default: 64, group: 'Cluster',
    help: 'incoming gossip TCP streams open at once; more are closed at once (and counted)',
  }),
  deadGrace: def({
    name: 'dead-grace', kind: k.duration(0, 600_000), default: 15_000, group: 'Cluster',
    help: 'a host that stops answering gossip probes (found dead, not a leave) but whose kernel still answers a connection to its gossip port keeps its endpoints in answers this long, so a daemon restart or crash its init system restarts withdraws nothing; a host that does not answer at all is withdrawn at once (0: always withdrawn when found dead)',
  }),
  registry: def({
    name: 'registry', kind: k.oneOf('gossip', 'etcd'), default: 'gossip', group: 'Cluster',
    help: 'how hosts share their registries: SWIM gossip (no server) or an etcd cluster (--etcd-endpoints)',
  }),
  etcdEndpoints: def({
    name: 'etcd-endpoints', kind: k.list(k.url), default: [] as string[], group: 'Cluster',
    help: 'etcd client URLs (repeatable), tried in turn; needed with --registry etcd',
  }),
  etcdPrefix: def({
    name: 'etcd-prefix', kind: k.keyPrefix, default: '/podman-swarm-dns/', group: 'Cluster',
    help: 'where in etcd the nodes and endpoints are kept',
  }),
  etcdLeaseTtl: def({
    name: 'etcd-lease-ttl', kind: k.duration(2000, 300_000), default: 5000, group: 'Cluster',
    help: "a crashed host's endpoints vanish this long after its last lease renewal",
  }),
  etcdCaFile: def({
    name: 'etcd-ca-file', kind: k.path, default: '', group: 'Cluster',
    help: "PEM CA certificate that signed the etcd servers' certificates (https:// endpoints)",
  }),
  etcdCertFile: def({
    name: 'etcd-cert-file', kind: k.path, default: '', group: 'Cluster',
    help: 'PEM client certificate for etcd (with --etcd-key-file)',
  }),
  etcdKeyFile: def({
    name: 'etcd-key-file', kind: k.path, default: '', group: 'Cluster',
    help: 'PEM private key of --etcd-cert-file',
  }),
  etcdUsername: def({
    name: 'etcd-username', kind: k.string, default: '', group: 'Cluster',
    help: 'etcd user (with --etcd-password-file)',
  }),
  etcdPasswordFile: def({
    name: 'etcd-password-file', kind: k.path, default: '', group: 'Cluster',
    help: "file holding the etcd user's password (its first line)",
  }),
  etcdSkydnsPrefix: def({
    name: 'etcd-skydns-prefix', kind: k.string, default: '', group: 'Cluster',
    help: "also write each service's endpoints in SkyDNS form under this prefix (e.g. /skydns), for CoreDNS's etcd plugin; empty: off",
  }),
  maxEndpointsPerNode: def({
    name: 'max-endpoints-per-node', kind: k.int(1, 1_000_000), default: 10_000, group: 'Cluster',
    help: "endpoints one node's state may hold: larger states from the cluster are refused, this node publishes no more",
  }),
  routableContainerIps: def({
    name: 'routable-container-ips', live: true, kind: k.bool, default: false, group: 'Cluster',
    help: "answer other hosts' container IPs directly (needs a routed or overlay network)",
  }),

  podmanSocket: def({
    name: 'podman-socket', kind: k.list(k.path), default: ['/run/podman/podman.sock'], group: 'Podman',
    defaultText: '/run/podman/podman.sock (root), $XDG_RUNTIME_DIR/podman/podman.sock (others)',
    help: 'libpod API socket, one watcher each; none disables Podman (also the user sockets) and drops the sockets given before it',
  }),
  podmanUserSockets: def({
    name: 'podman-user-sockets', kind: k.oneOf('auto', 'off'), default: 'auto', group: 'Podman',
    help: "auto (as root): also follow each user's rootless Podman at /run/user/<uid>/podman/podman.sock while it exists",
  }),
  resyncInterval: def({
    name: 'resync-interval', kind: k.duration(1000, 86_400_000), default: 60_000, group: 'Podman',
    help: 'full Podman resync period (a safety net for missed events)',
  }),
  defaultMode: def({
    name: 'default-mode', live: true, kind: k.oneOf('dnsrr', 'vip'), default: 'dnsrr', group: 'Podman',
    help: 'mode of services that do not choose one',
  }),

  healthInterval: def({
    name: 'health-interval', live: true, kind: k.duration(100, 3_600_000), default: 10_000, group: 'Health',
    help: 'how often each local endpoint is checked',
  }),
  healthTimeout: def({
    name: 'health-timeout', live: true, kind: k.duration(100, 600_000), default: 2000, group: 'Health',
    help: 'time allowed for one check',
  }),
  healthFall: def({
    name: 'health-fall', live: true, kind: k.int(1, 100), default: 3, group: 'Health',
    help: 'consecutive failures before an endpoint is unhealthy',
  }),
  healthRise: def({
    name: 'health-rise', live: true, kind: k.int(1, 100), default: 1, group: 'Health',
    help: 'consecutive successes before it is healthy again',
  }),

  lbAll: def({
    name: 'lb-all', kind: k.bool, default: false, group: 'Load balancer',
    help: 'give every service a VIP, not only vip-mode ones',
  }),
  lbPolicy: def({
    name: 'lb-policy', live: true, kind: k.oneOf('round-robin', 'least-connections', 'power-of-two'), default: 'round-robin',
    group: 'Load balancer', help: 'how the proxies pick an endpoint',
  }),
  lbPreferLocal: def({
    name: 'lb-prefer-local', live: true, kind: k.bool, default: true, group: 'Load balancer',
    help: "prefer this host's endpoints",
  }),
  ingress: def({
    name: 'ingress', live: true, kind: k.list(k.string), default: [] as string[], group: 'Load balancer',
    help: "<ns>/<svc>:<port> to publish on the host's address",
  }),

  lbIdleTimeout: def({
    name: 'lb-idle-timeout', live: true, kind: k.duration(1000, 86_400_000), default: 3_600_000, group: 'Load balancer',
    help: 'close a proxied TCP connection with no bytes either way for this long',
  }),
  lbUdpTimeout: def({
    name: 'lb-udp-timeout', live: true, kind: k.duration(1000, 3_600_000), default: 30_000, group: 'Load balancer',
    help: 'end a proxied UDP session with no datagram either way for this long',
  }),
  lbUdpMaxSessions: def({
    name: 'lb-udp-max-sessions', live: true, kind: k.int(1, 1_000_000), default: 65_536, group: 'Load balancer',
    help: 'UDP sessions (client address:port) one VIP port keeps at once; beyond it the least recently used one ends (counted in lb_udp_sessions_evicted_total)',
  }),
  lbMaxConnections: def({
    name: 'lb-max-connections', live: true, kind: k.int(1, 1_000_000), default: 50_000, group: 'Load balancer',
    help: 'proxied TCP connections open at once (all services); beyond it new ones are closed',
  }),
  lbThreads: def({
    name: 'lb-threads', kind: k.int(0, 64), default: 0, group: 'Load balancer',
    help: "threads of the native TCP relay (0: one per CPU core), each with its own listening socket per VIP port; env PODMAN_SWARM_DNS_NATIVE_RELAY=0 uses the JS proxy instead",
  }),
  lbProxyProtocol: def({
    name: 'lb-proxy-protocol', live: true, kind: k.bool, default: false, group: 'Load balancer',
    help: 'send a PROXY protocol v2 header to backends, so they see the real client address',
  }),

  resolved: def({
    name: 'resolved', kind: k.oneOf('auto', 'on', 'off'), default: 'auto', group: 'systemd',
    help: 'route the zone to this daemon in systemd-resolved (auto: if resolved is there; on: report when it is not)',
  }),
} as const;

export type OptionKey = keyof typeof OPTIONS;
type ValueOf<D> = D extends OptionDef<infer T> ? T : never;
export type Options = { -readonly [K in OptionKey]: ValueOf<(typeof OPTIONS)[K]> };

export const envName = (name: string): string => `PODMAN_SWARM_DNS_${name.toUpperCase().replace(/-/g, '_')}`;
