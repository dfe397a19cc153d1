import { ConfigError } from '../config/errors.js';
import { apiListen as apiListenKind } from '../config/kinds.js';
import type { Context, Part } from '../part.js';
import type { LocalNode } from '../registry/local.js';
import type { Registry } from '../registry/registry.js';
import type { StateSetup } from '../state/setup.js';
import { ChangeIndex } from './blocking.js';
import { membersJson } from './format.js';
import type { Metrics } from './metrics.js';
import { Serial } from './serial.js';
import { ApiServer, ApiSocketInUse, checkApiListen, unixSocketAlive } from './server.js';
import { statusJson, type StatusSources } from './status.js';

// The HTTP API (docs/architecture.md#http-api): reads for `status`, `query` and watches,
// registrations written to the state directory, /metrics; TCP writes need the token.

export interface ApiSetup extends Part {
  server: ApiServer;
  /** Before anything reaches the network: fails when another daemon serves one of our unix sockets. */
  guard(): Promise<void>;
  status(): Record<string, unknown>;
}

export interface ApiDeps extends Omit<StatusSources, 'api' | 'rt' | 'domain' | 'problems' | 'state' | 'ready'> {
  local: LocalNode;
  registry: Registry;
  metrics: Metrics;
  state: StateSetup;
  ready: () => boolean;
}

/** API registration writes waiting for the disk before more get 503. */
const MAX_WAITING_WRITES = 256;

/** Fails the start before anything is created: an API off loopback needs --api-token-file. */
export function checkApiConfig(c: Pick<Context, 'rt' | 'opts'>): void {
  const problem = checkApiListen(c.rt.apiListen, c.opts.apiTokenFile !== '');
  if (problem) throw new ConfigError('ERR_CONFIG_BAD_VALUE', problem);
}

export function setupApi(c: Context, d: ApiDeps): ApiSetup {
  const { rt, log } = c;
  let opts = c.opts;
  checkApiConfig(c);
  const changes = new ChangeIndex(d.registry);
  const status = (): Record<string, unknown> =>
    statusJson({ ...d, rt, domain: opts.domain, problems: c.problems, api: server, state: d.state.health, ready: d.ready() });
  const server: ApiServer = new ApiServer(
    {
      registry: d.registry,
      local: d.local,
      changes,
      metrics: d.metrics,
      log,
      failOpen: () => opts.failOpen,
      ready: d.ready,
      stale: () => d.etcd?.stale() ?? null,
      status,
      query: (name, type, client) => d.dns.query(name, type, client),
      dns: { zone: d.dns.zone, clients: d.dns.clients, forwarder: d.dns.forwarder, containerNames: d.dns.names },
      nodes: () => {
        if (d.etcd) return d.etcd.nodes();
        const cluster = d.gossip.cluster();
        return cluster ? membersJson(cluster.membership.all(), d.registry, (id) => cluster.isStale(id)) : undefined;
      },
      joinToken: () => d.gossip.cluster()?.joinToken() ?? null,
      join: (seeds) => d.gossip.join(seeds),
      registrations: d.state.store,
      writes: new Serial(MAX_WAITING_WRITES),
      limits: () => ({ maxPorts: opts.maxPortsPerEndpoint, maxEndpoints: opts.maxEndpointsPerService }),
      lb: () => d.lb.manager(),
    },
    d.state.apiToken(opts.apiTokenFile),
  );

  /**
   * The default socket belongs to the state dir: a daemon on it is a second one with the same
   * state dir, which would share this node's id and registrations.
   */
  const socketError = (e: Error): Error => {
    if (!(e instanceof ApiSocketInUse)) return e;
    if (rt.apiListenExplicit) return new ConfigError('ERR_CONFIG_BAD_VALUE', `${e.message}; stop that daemon or give --api-listen another unix:PATH`);
    return new ConfigError('ERR_CONFIG_BAD_VALUE', `another podman-swarm-dns daemon already runs with the state dir ${rt.stateDir} ` +
      `(its API answers on unix:${e.path}); two daemons must not share one: give this one its own --state-dir ` +
      '(its API socket is then <state-dir>/api.sock), or stop the other');
  };

  let nextToken: string | null = null;
  return {
    server,
    status,
    async guard() {
      // A gossip leave at the failed start would speak for the other daemon too.
      for (const l of rt.apiListen) {
        if (l.kind === 'unix' && (await unixSocketAlive(l.path))) throw socketError(new ApiSocketInUse(l.path));
      }
    },
    async start() {
      for (const l of rt.apiListen) {
        try {
          const bound = await server.listen(l);
          log.info({ address: apiListenKind.show(bound) }, `serving the API on ${apiListenKind.show(bound)}`);
        } catch (e) {
          if (rt.apiListenExplicit || e instanceof ApiSocketInUse) throw socketError(e as Error);
          c.problems.set(`api:${apiListenKind.show(l)}`, (e as Error).message);
        }
      }
    },
    check(next) {
      if (checkApiListen(rt.apiListen, next.apiTokenFile !== '') !== null) {
        throw new ConfigError('ERR_CONFIG_BAD_VALUE', 'reload refused: the API listens off loopback and the new configuration has no --api-token-file');
      }
      nextToken = d.state.apiToken(next.apiTokenFile);
    },
    reload(next) {
      opts = next;
      if (nextToken !== null) server.setToken(nextToken);
      nextToken = null;
    },
    async stop() {
      changes.close();
      await server.close();
    },
  };
}
