import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { InputError, isLabel, parseEndpoint } from '../registry/input.js';
import type { LbManager } from '../lb/manager.js';
import type { LocalNode } from '../registry/local.js';
import type { Registry } from '../registry/registry.js';
import { endpointKey, serviceKey, type Endpoint } from '../registry/types.js';
import { explain, explainInputs, malformedName, type ExplainSources } from '../dns/explain.js';
import { StateWriteError } from '../state/files.js';
import type { ChangeIndex, Scope } from './blocking.js';
import { endpointJson, nodeJson, serviceAddresses, serviceDetail, serviceSummary } from './format.js';
import { HttpError, parseWait, readJson, sendJson, ServerTiming } from './http.js';
import type { Metrics } from './metrics.js';
import { overview } from './overview.js';
import { sendUiFile } from './ui.js';
import type { Serial } from './serial.js';

// The routes of docs/architecture.md#http-api. Reads may block (`?index=&wait=`); writes change this node's own
// endpoints only.

export interface ApiContext {
  registry: Registry;
  local: LocalNode;
  changes: ChangeIndex;
  metrics: Metrics;
  log: Logger;
  failOpen(): boolean;
  ready(): boolean;
  /** Why other hosts' endpoints may be out of date (the registry's store unreachable), or null. */
  stale?(): string | null;
  status(): Record<string, unknown>;
  /** Answers a DNS question the way the DNS server would (for `podman-swarm-dns query`); `client` defaults to 127.0.0.1. */
  query(name: string, type: string, client?: string): Promise<Record<string, unknown>>;
  /** The DNS server's parts `explain` reads. */
  dns?: ExplainSources;
  /** Cluster members and registry nodes (undefined when gossip is off). */
  nodes?(): unknown[] | undefined;
  /** A join token holding seeds and the gossip key, or null when gossip is off. */
  joinToken?(): string | null;
  join?(seeds: string[]): Promise<{ joined: number; errors: string[] }>;
  /** Saves one API registration or its removal; rejects with StateWriteError when it could not be saved. */
  registrations: { put(e: Endpoint): Promise<void>; remove(e: Endpoint): Promise<void> };
  /** Registration writes run through it one at a time. */
  writes: Serial;
  /** Ports per endpoint and endpoints per service this node takes. */
  limits(): { maxPorts: number; maxEndpoints: number };
  /** The load balancer, for the status page's counters (null when it is off). */
  lb?(): LbManager | null;
}

export interface Request {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: string[];
  signal: AbortSignal;
}

type Handler = (ctx: ApiContext, r: Request) => Promise<void> | void;

interface Route {
  method: string;
  /** Label for metrics: the pattern, not the concrete path. */
  name: string;
  pattern: RegExp;
  handler: Handler;
  write?: boolean;
}

// dns-packet's table of record type names (0 for a name it does not know); its type declarations
// do not cover this file.
/** Record types a question may name (the IANA names in use; the packaged bundle has no dns-packet tables to ask at run time). */
const RECORD_TYPES = new Set(
  ('A NS CNAME SOA NULL PTR HINFO MX TXT RP AFSDB SIG KEY AAAA LOC SRV NAPTR KX CERT DNAME OPT APL DS SSHFP IPSECKEY ' +
    'RRSIG NSEC DNSKEY DHCID NSEC3 NSEC3PARAM TLSA SMIMEA HIP CDS CDNSKEY OPENPGPKEY CSYNC ZONEMD SVCB HTTPS SPF EUI48 ' +
    'EUI64 TKEY TSIG IXFR AXFR ANY URI CAA').split(' '),
);

const SEG = '([^/]+)';
const routes: Route[] = [];
const route = (method: string, path: string, handler: Handler, write = false): void => {
  routes.push({ method, name: path, pattern: new RegExp(`^${path.replace(/\{[a-z]+\}/g, SEG)}$`), handler, write });
};

/** A blocking read: waits per `?index=&wait=`, then sends `body()` with the index header. */
async function blockingRead(r: Request, scope: Scope, ctx: ApiContext, body: () => unknown): Promise<void> {
  const rawIndex = r.url.searchParams.get('index');
  if (rawIndex !== null) {
    if (!/^\d+$/.test(rawIndex)) throw new HttpError(400, `index=${rawIndex} is not a whole number`);
    const wait = parseWait(r.url.searchParams.get('wait') ?? '5m');
    await ctx.changes.wait(scope, Number(rawIndex), wait, r.signal);
  } else if (r.url.searchParams.has('wait')) {
    throw new HttpError(400, 'wait= needs index= (the X-Podman-Swarm-Index of a previous response)');
  }
  sendJson(r.res, 200, body(), { 'x-podman-swarm-index': String(ctx.changes.index(scope)) });
}

function serviceParams(r: Request): { ns: string; svc: string } {
  const [ns, svc] = r.params.map(decodeURIComponent) as [string, string];
  for (const [what, v] of [['namespace', ns], ['service', svc]] as const) {
    if (!isLabel(v)) throw new HttpError(400, `${what} "${v}" is not a DNS label (lower-case letters, digits and '-', at most 63)`);
  }
  return { ns, svc };
}

function getService(ctx: ApiContext, ns: string, svc: string) {
  const v = ctx.registry.service(ns, svc);
  if (!v) throw new HttpError(404, `no service ${ns}/${svc}`);
  return v;
}

route('GET', '/healthz', (_ctx, r) => sendJson(r.res, 200, { status: 'ok' }));
// Stale is still ready: this host answers from what it knows, and failing every host's check at
// once while etcd is away would leave no DNS at all.
route('GET', '/readyz', (ctx, r) => {
  const stale = ctx.stale?.() ?? null;
  sendJson(r.res, ctx.ready() ? 200 : 503, { ready: ctx.ready(), ...(stale ? { stale } : {}) });
});
route('GET', '/metrics', async (ctx, r) => {
  const text = await ctx.metrics.text();
  r.res.writeHead(200, { 'content-type': ctx.metrics.prom.contentType });
  r.res.end(text);
});

route('GET', '/api/v1/status', (ctx, r) =>
  blockingRead(r, 'global', ctx, () => ctx.status()),
);

// The status page: its files, and one blocking read with everything it shows.
route('GET', '/ui', (_ctx, r) => {
  r.res.writeHead(301, { location: '/ui/', 'content-length': 0 });
  r.res.end();
});
route('GET', '/ui/', (_ctx, r) => sendUiFile(r.res, ''));
route('GET', '/ui/{file}', (_ctx, r) => sendUiFile(r.res, decodeURIComponent(r.params[0]!)));

route('GET', '/api/v1/overview', (ctx, r) =>
  blockingRead(r, 'global', ctx, () =>
    overview(
      { registry: ctx.registry, status: ctx.status(), members: ctx.nodes?.(), lb: ctx.lb?.() ?? null, dns: ctx.metrics.dnsTotals(), changes: ctx.changes.recent() },
      (r.url.searchParams.get('q') ?? '').slice(0, 256),
    ),
  ),
);

route('GET', '/api/v1/services', (ctx, r) =>
  blockingRead(r, 'global', ctx, () =>
    [...ctx.registry.services()].map(serviceSummary).sort((a, b) => (a.namespace + '/' + a.name < b.namespace + '/' + b.name ? -1 : 1)),
  ),
);

route('GET', '/api/v1/services/{ns}/{svc}', (ctx, r) => {
  const { ns, svc } = serviceParams(r);
  return blockingRead(r, { service: serviceKey(ns, svc) }, ctx, () => serviceDetail(getService(ctx, ns, svc)));
});

route('GET', '/api/v1/services/{ns}/{svc}/endpoints', (ctx, r) => {
  const { ns, svc } = serviceParams(r);
  return blockingRead(r, { service: serviceKey(ns, svc) }, ctx, () => {
    const v = getService(ctx, ns, svc);
    return v.endpoints.map((e) => endpointJson(v, e));
  });
});

route('GET', '/api/v1/services/{ns}/{svc}/addresses', (ctx, r) => {
  const { ns, svc } = serviceParams(r);
  return blockingRead(r, { service: serviceKey(ns, svc) }, ctx, () => ({
    service: svc,
    namespace: ns,
    addresses: serviceAddresses(getService(ctx, ns, svc), ctx.failOpen()),
  }));
});

route('GET', '/api/v1/nodes', (ctx, r) =>
  blockingRead(r, 'nodes', ctx, () => ctx.nodes?.() ?? [...ctx.registry.nodes()].map((n) => nodeJson(n, ctx.registry.localNode))),
);

// The token holds the gossip key: only for local callers (unix socket, loopback).
const localCaller = (r: Request): boolean => {
  const a = r.req.socket.remoteAddress;
  return a === undefined || a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.');
};

route('GET', '/api/v1/join-token', (ctx, r) => {
  if (!localCaller(r)) throw new HttpError(403, 'the join token is only given to local callers (unix socket or loopback)');
  const token = ctx.joinToken?.() ?? null;
  if (!token) throw new HttpError(409, 'gossip is off on this node (see status): no join token');
  sendJson(r.res, 200, { token });
});

route(
  'POST',
  '/api/v1/join',
  async (ctx, r) => {
    const body = (await readJson(r.req)) as { addresses?: unknown };
    const list = body?.addresses;
    if (!Array.isArray(list) || list.length === 0 || !list.every((a) => typeof a === 'string' && /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(a))) {
      throw new HttpError(400, 'addresses: expected a list of host:port, e.g. {"addresses": ["10.0.0.2:7946"]}');
    }
    if (!ctx.join) throw new HttpError(409, 'gossip is off on this node');
    const result = await ctx.join(list as string[]);
    sendJson(r.res, result.joined > 0 ? 200 : 502, result);
  },
  true,
);

/**
 * Saves a change of the API registrations before it is applied: a registration the API refuses
 * is never in the registry, one it accepts is on disk.
 */
async function persist(save: Promise<void>): Promise<void> {
  try {
    await save;
  } catch (e) {
    if (!(e instanceof StateWriteError)) throw e;
    throw new HttpError(e.full ? 507 : 503, `nothing was changed: the registrations could not be saved (${e.message})`);
  }
}

route(
  'POST',
  '/api/v1/services/{ns}/{svc}/endpoints',
  async (ctx, r) => {
    const { ns, svc } = serviceParams(r);
    const timing = new ServerTiming();
    const body = await readJson(r.req);
    const limits = ctx.limits();
    let ep;
    try {
      ep = parseEndpoint(body, { namespace: ns, service: svc, source: 'api', now: Date.now(), maxPorts: limits.maxPorts });
    } catch (e) {
      if (e instanceof InputError) throw new HttpError(400, `${e.field}: ${e.message}`);
      throw e;
    }
    timing.mark('read');
    await ctx.writes.run(async () => {
      timing.mark('wait');
      const existing = ctx.local.find(ns, svc, ep.id);
      if (existing && existing.source !== 'api') {
        throw new HttpError(409, `endpoint ${ep.id} of ${ns}/${svc} comes from ${existing.source === 'config' ? 'the config file' : 'Podman'}; change it there, or register under another id`);
      }
      if (!existing && ctx.local.serviceEndpoints(ns, svc).length >= limits.maxEndpoints) {
        throw new HttpError(409, `${ns}/${svc} already has ${limits.maxEndpoints} endpoints on this node (--max-endpoints-per-service)`);
      }
      if (!existing && ctx.local.full) {
        throw new HttpError(409, `this node already has ${ctx.local.maxEndpoints} endpoints, the limit (--max-endpoints-per-node): remove some, or raise the limit on every host`);
      }
      await persist(ctx.registrations.put(ep));
      timing.mark('save');
      ctx.local.upsert(ep);
      timing.mark('apply');
      ctx.log.info({ service: `${ns}/${svc}`, id: ep.id, address: ep.addresses[0] }, existing ? 'endpoint updated through the API' : 'endpoint registered through the API');
      const v = ctx.registry.service(ns, svc)!;
      const view = v.endpoints.find((e) => e.local && e.endpoint.id === ep.id)!;
      // 201 only when this created the endpoint; replacing one (same id) is a 200.
      sendJson(r.res, existing ? 200 : 201, endpointJson(v, view), {
        location: `/api/v1/services/${ns}/${svc}/endpoints/${encodeURIComponent(ep.id)}`,
        'server-timing': timing.header(),
      });
    });
  },
  true,
);

route(
  'DELETE',
  '/api/v1/services/{ns}/{svc}/endpoints/{id}',
  async (ctx, r) => {
    const { ns, svc } = serviceParams(r);
    const id = decodeURIComponent(r.params[2]!);
    await ctx.writes.run(async () => {
      const existing = ctx.local.find(ns, svc, id);
      if (!existing) throw new HttpError(404, `no endpoint ${id} of ${ns}/${svc} on this node`);
      if (existing.source !== 'api') {
        throw new HttpError(409, `endpoint ${id} of ${ns}/${svc} comes from ${existing.source === 'config' ? 'the config file' : 'Podman'}; it cannot be removed through the API`);
      }
      await persist(ctx.registrations.remove(existing));
      ctx.local.remove('api', endpointKey(existing));
      ctx.log.info({ service: `${ns}/${svc}`, id }, 'endpoint deregistered through the API');
      sendJson(r.res, 204, undefined);
    });
  },
  true,
);

route('GET', '/api/v1/dns', async (ctx, r) => {
  const name = r.url.searchParams.get('name');
  const type = (r.url.searchParams.get('type') ?? 'A').toUpperCase();
  if (!name) throw new HttpError(400, 'name= is required, e.g. /api/v1/dns?name=web.default.cluster.local&type=A');
  if (!RECORD_TYPES.has(type)) {
    throw new HttpError(400, `type=${type} is not a DNS record type (e.g. A, AAAA, SRV, PTR, TXT, SOA, NS, ANY)`);
  }
  sendJson(r.res, 200, await ctx.query(name, type));
});

// Why a name gets its answer: the explanation first (the cache decision before this query could
// fill the cache), then the real answer path's answer.
route('GET', '/api/v1/explain', async (ctx, r) => {
  const name = r.url.searchParams.get('name');
  const type = (r.url.searchParams.get('type') ?? 'A').toUpperCase();
  const client = r.url.searchParams.get('client') ?? '127.0.0.1';
  if (!name) throw new HttpError(400, 'name= is required, e.g. /api/v1/explain?name=web.default.cluster.local&type=A');
  const bad = malformedName(name);
  if (bad) throw new HttpError(400, `name "${name.slice(0, 300)}" is malformed: ${bad}`);
  if (!RECORD_TYPES.has(type)) throw new HttpError(400, `type=${type.slice(0, 20)} is not a DNS record type (e.g. A, AAAA, SRV, PTR, TXT, SOA, NS, ANY)`);
  if (isIP(client) === 0) throw new HttpError(400, `client=${client.slice(0, 60)} is not an IP address (the address to explain the answer for; default 127.0.0.1)`);
  if (!ctx.dns) throw new HttpError(409, 'this daemon has no DNS server to explain');
  const e = explain(explainInputs(ctx.dns, client), name, type);
  sendJson(r.res, 200, { ...e, answer: await ctx.query(name, type, client) });
});

export interface Match {
  route: Route;
  params: string[];
}

/** The route for a request; an HttpError 404/405 when there is none. */
export function match(method: string, path: string): Match {
  let pathMatched = false;
  for (const r of routes) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    pathMatched = true;
    if (r.method === method || (method === 'HEAD' && r.method === 'GET')) return { route: r, params: m.slice(1) };
  }
  if (pathMatched) throw new HttpError(405, `${method} is not allowed on ${path}`);
  throw new HttpError(404, `no such endpoint: ${path}`);
}
