import type { EndpointJson, ServiceSummaryJson } from '../api/format.js';
import { apiGet, ClientError } from '../client.js';
import { showDuration } from '../config/kinds.js';
import type { Explanation } from '../dns/explain.js';
import { duration, table } from './table.js';

// The read commands: one API call each, a table for people, the API's JSON with --json.

export interface ReadOptions {
  socket: string;
  json: boolean;
  out: (text: string) => void;
}

/** Exit codes scripts can rely on. */
export const EXIT = { ok: 0, failure: 1, usage: 2, unreachable: 3, notFound: 4 } as const;

async function get<T>(o: ReadOptions, path: string): Promise<T> {
  return (await apiGet<T>(o.socket, path)).body;
}

function print(o: ReadOptions, body: unknown, human: () => string): void {
  o.out(o.json ? JSON.stringify(body, null, 2) : human());
}

export async function status(o: ReadOptions): Promise<number> {
  const s = await get<StatusJson>(o, '/api/v1/status');
  print(o, s, () => {
    const r = s.registry;
    const lines = [
      ['node', `${s.node.name} (id ${s.node.id}, address ${s.node.address})`],
      ['version', `${s.version}, up ${duration(s.uptime_seconds)}, ${s.ready ? 'ready' : 'starting'}`],
      ['dns', `${s.dns.listen.join(', ') || 'not listening'} (${s.dns.path} path), zone ${s.dns.domain}`],
      ['cluster dns', `${s.dns.cluster_address}${s.dns.link ? ` on ${s.dns.link.name}` : ' (no link)'}`],
      ['upstreams', `${s.dns.upstreams.join(', ') || 'none'}${serveStale(s.dns.serve_stale)}`],
      ['api', s.api.listen.join(', ')],
      ['state', s.state ? `${s.state.dir}, ${s.state.healthy ? 'writes ok' : `writes FAILING: ${Object.keys(s.state.failing).join(', ')} not saved (see problems)`}` : 'unknown'],
      ['registry', `${r.services} services, ${r.endpoints} endpoints (${r.healthy_endpoints} healthy), ${r.nodes} node${r.nodes === 1 ? '' : 's'}, index ${r.index}`],
    ];
    // The cluster line (issue 4): gossip address, member count, stale until resynced.
    const e = s.etcd;
    if (e) lines.push(['etcd', `${e.state === 'synced' ? 'synced' : e.state === 'connecting' ? 'connecting' : 'UNREACHABLE, serving the last known state'} via ${e.endpoint}, revision ${e.revision}` +
      `${e.stale_seconds !== null ? `, stale for ${Math.round(e.stale_seconds)} s` : ''}${e.last_error ? ` (${e.last_error})` : ''}`]);
    else lines.push(['gossip', s.cluster ? `${s.cluster.gossip}, ${s.cluster.members} live member${s.cluster.members === 1 ? '' : 's'}${s.cluster.stale ? ', registry stale (not yet resynced)' : ''}` : s.problems.some((p) => /gossip/.test(p)) ? 'off (see problems)' : 'off (a single host: no --join)']);
    const pm = s.podman;
    if (pm) {
      const state = pm.connected ? 'connected' : `not reachable (${pm.last_error ?? 'connecting'})`;
      const nets = pm.networks.length ? `; auto-registered networks ${pm.networks.join(', ')}` : '';
      const gws = pm.dns_gateways.length ? `; DNS on gateways ${pm.dns_gateways.join(', ')}` : '';
      lines.push(['podman', `${pm.socket} ${state}, ${pm.containers} containers, ${pm.endpoints} endpoints${nets}${gws}`]);
      // Every other socket followed (users' rootless Podman), one line each with its owner.
      for (const so of (pm.sockets ?? []).slice(1)) {
        const st = so.connected ? 'connected' : `not reachable (${so.last_error ?? 'connecting'})`;
        lines.push(['podman', `${so.socket} (${so.owner}${so.rootless ? ', rootless' : ''}) ${st}, ${so.containers} containers, ${so.endpoints} endpoints`]);
      }
    }
    if (s.health) {
      const bad = s.health.unhealthy.map((u) => `${u.endpoint} (${u.reason ?? 'failing'})`);
      const notCheckable = (s.health.not_checkable ?? []).map((u) => `${u.endpoint} (${u.reason})`);
      lines.push(['health', `${s.health.checked} endpoints checked, ${bad.length ? `unhealthy: ${bad.join('; ')}` : 'all healthy'}${notCheckable.length ? `; not checkable from here: ${notCheckable.join('; ')}` : ''}`]);
    }
    const width = Math.max(...lines.map(([k]) => k!.length));
    const text = lines.map(([k, v]) => `${k!.padEnd(width)}  ${v}`);
    text.push(`${'problems'.padEnd(width)}  ${s.problems.length ? '' : 'none'}`);
    for (const p of s.problems) text.push(`  - ${p}`);
    return text.join('\n');
  });
  return s.ready ? EXIT.ok : EXIT.failure;
}

export async function services(o: ReadOptions): Promise<number> {
  const list = await get<ServiceSummaryJson[]>(o, '/api/v1/services');
  print(o, list, () =>
    list.length === 0
      ? 'no services'
      : table(
          ['NAMESPACE', 'NAME', 'MODE', 'VIP', 'PORTS', 'ENDPOINTS', 'HEALTHY'],
          list.map((s) => [
            s.namespace,
            s.name,
            s.mode,
            s.vip ?? '-',
            Object.entries(s.ports).map(([n, p]) => `${n}/${p}`).join(',') || '-',
            String(s.endpoints),
            String(s.healthy),
          ]),
        ),
  );
  return EXIT.ok;
}

export async function endpoints(o: ReadOptions, ref: string): Promise<number> {
  const m = /^([^/]+)\/([^/]+)$/.exec(ref);
  const [ns, svc] = m ? [m[1]!, m[2]!] : ['default', ref];
  let list: EndpointJson[];
  try {
    list = await get<EndpointJson[]>(o, `/api/v1/services/${encodeURIComponent(ns)}/${encodeURIComponent(svc)}/endpoints`);
  } catch (e) {
    if (e instanceof ClientError && e.status === 404) {
      if (o.json) o.out(JSON.stringify({ error: e.message }));
      else process.stderr.write(`podman-swarm-dns: ${e.message}\n`);
      return EXIT.notFound;
    }
    throw e;
  }
  print(o, list, () =>
    table(
      ['ID', 'HOSTNAME', 'ADDRESS', 'PORTS', 'NODE', 'HEALTHY', 'SOURCE'],
      list.map((e) => [
        e.id,
        e.hostname,
        e.address,
        Object.entries(e.ports).map(([n, p]) => `${n}=${p.port}/${p.protocol}`).join(',') || '-',
        e.node_name,
        e.healthy ? 'yes' : 'no',
        // A user's rootless container: its owner, and whether it is reachable only inside that user's network namespace.
        e.owner && e.owner !== 'root' ? `${e.source} (${e.owner}${e.isolated ? ', isolated: no published port' : ''})` : e.source,
      ]),
    ),
  );
  return EXIT.ok;
}

export async function members(o: ReadOptions): Promise<number> {
  const list = await get<Array<{ id: string; name: string; address: string; state: string; local: boolean; endpoints: number }>>(o, '/api/v1/nodes');
  print(o, list, () =>
    table(
      ['NAME', 'ID', 'ADDRESS', 'STATE', 'ENDPOINTS'],
      list.map((n) => [n.name + (n.local ? ' (this node)' : ''), n.id, n.address, n.state, String(n.endpoints)]),
    ),
  );
  return EXIT.ok;
}

export async function query(o: ReadOptions, name: string, type: string): Promise<number> {
  const r = await get<QueryJson>(o, `/api/v1/dns?name=${encodeURIComponent(name)}&type=${encodeURIComponent(type)}`);
  if (r.error) {
    o.out(o.json ? JSON.stringify(r, null, 2) : r.error);
    return EXIT.usage;
  }
  print(o, r, () => {
    const rr = (a: QueryJson['answers'][number]) => `${a.name}\t${a.ttl ?? ''}\t${a.type}\t${rdata(a.data)}`;
    const out = [`;; ${r.rcode}${r.authoritative ? ', authoritative' : ''}`];
    if (r.answers.length) out.push(';; ANSWER', ...r.answers.map(rr));
    if (r.authorities.length) out.push(';; AUTHORITY', ...r.authorities.map(rr));
    if (r.additionals.length) out.push(';; ADDITIONAL', ...r.additionals.map(rr));
    return out.join('\n');
  });
  if (r.rcode === 'NXDOMAIN') return EXIT.notFound;
  return r.rcode === 'NOERROR' ? EXIT.ok : EXIT.failure;
}

/** `explain <name> [type]`: how the daemon reads the name and why it answers as it does. */
export async function explain(o: ReadOptions, name: string, type: string): Promise<number> {
  let e: Explanation & { answer: QueryJson };
  try {
    e = await get<Explanation & { answer: QueryJson }>(o, `/api/v1/explain?name=${encodeURIComponent(name)}&type=${encodeURIComponent(type)}`);
  } catch (err) {
    if (!(err instanceof ClientError) || err.status !== 400) throw err;
    if (o.json) o.out(JSON.stringify({ error: err.message }));
    else process.stderr.write(`podman-swarm-dns: ${err.message}\n`);
    return EXIT.usage;
  }
  print(o, e, () => explanationText(e, e.answer));
  const rcode = e.answer.rcode;
  return rcode === 'NXDOMAIN' ? EXIT.notFound : rcode === 'NOERROR' ? EXIT.ok : EXIT.failure;
}

/** The explanation as text for people. */
function explanationText(e: Explanation, answer: QueryJson): string {
  const out = [`${e.name} ${e.type} (asked as ${e.client})`, `  ${e.parse.summary}`];
  if (e.service) {
    out.push('', `service ${e.service.key}, ${e.service.mode}${e.service.vip ? `, VIP ${e.service.vip}` : ''}`, `  ${e.service.order}`);
    if (e.service.endpoints.length === 0) out.push('  no endpoints');
    for (const p of e.service.endpoints) out.push(`  ${p.in_answer ? '+' : '-'} ${p.node}${p.local ? ' (this host)' : ''} ${p.id} ${p.addresses.join(',')}: ${p.why}`);
  }
  if (e.forward) {
    const f = e.forward;
    out.push('', `recursion:      ${f.recursion.why}`, `forward-allow:  ${f.forward_allow.why}`, `cache:          ${f.cache}`);
    out.push(`upstream:       ${f.upstream ?? (f.upstreams.length ? '-' : 'none configured: SERVFAIL')}${f.upstreams.length > 1 ? ` (in order: ${f.upstreams.join(', ')})` : ''}`);
  }
  out.push('', answer.error ? `answer: ${answer.error}` : `answer: ${answer.rcode}${answer.answers?.length ? '' : ', no records'}`);
  for (const a of answer.answers ?? []) out.push(`  ${a.name}\t${a.ttl ?? ''}\t${a.type}\t${rdata(a.data)}`);
  return out.join('\n');
}

/** A record's data on one line, as dig prints it: TXT strings quoted, SRV/SOA fields in order. */
function rdata(d: unknown): string {
  if (Array.isArray(d)) return d.map((s) => JSON.stringify(String(s))).join(' ');
  return d !== null && typeof d === 'object' ? Object.values(d).join(' ') : String(d);
}

interface StatusJson {
  node: { id: string; name: string; address: string };
  version: string;
  uptime_seconds: number;
  ready: boolean;
  dns: { domain: string; listen: string[]; cluster_address: string; link: { name: string } | null; upstreams: string[]; path: string; serve_stale?: { window_seconds: number; answers: number } };
  api: { listen: string[] };
  state?: { dir: string; healthy: boolean; failing: Record<string, string> };
  registry: { services: number; endpoints: number; healthy_endpoints: number; nodes: number; index: number };
  cluster?: { gossip: string; members: number; stale: boolean } | null;
  /** With --registry etcd (src/etcd/setup.ts). */
  etcd?: { state: string; endpoint: string; revision: number; stale_seconds: number | null; last_error: string | null } | null;
  problems: string[];
  podman?: {
    socket: string; connected: boolean; last_error: string | null; containers: number; endpoints: number; networks: string[]; dns_gateways: string[];
    sockets?: Array<{ socket: string; owner: string; rootless: boolean; connected: boolean; last_error: string | null; containers: number; endpoints: number }>;
  } | null;
  health?: { checked: number; unhealthy: Array<{ endpoint: string; reason: string | null }>; not_checkable?: Array<{ endpoint: string; reason: string }> };
}

interface QueryJson {
  error?: string;
  rcode: string;
  authoritative: boolean;
  answers: Array<{ name: string; type: string; ttl?: number; data: unknown }>;
  authorities: QueryJson['answers'];
  additionals: QueryJson['answers'];
}

/** The serve-stale part of the upstreams line (absent from daemons older than the option). */
function serveStale(s: { window_seconds: number; answers: number } | undefined): string {
  if (!s) return '';
  if (s.window_seconds === 0) return '; serve-stale off';
  return `; serve-stale ${showDuration(s.window_seconds * 1000)}, ${s.answers} stale answer${s.answers === 1 ? '' : 's'} so far`;
}
