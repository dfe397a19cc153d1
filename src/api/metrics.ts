import { collectDefaultMetrics, Counter, Gauge, Registry as PromRegistry } from 'prom-client';
import type { AnswerSource, DnsMetrics, ShedReason } from '../dns/handler.js';
import type { ResponseCache } from '../dns/cache.js';
import type { FailureLog } from '../log-once.js';
import type { Registry } from '../registry/registry.js';

// Prometheus metrics (text format at /metrics). One registry per daemon, not prom-client's global
// one, so tests can run several daemons' worth of code in one process.

const P = 'podman_swarm_dns_';
const KNOWN_TYPES = new Set(['A', 'AAAA', 'SRV', 'PTR', 'SOA', 'NS', 'TXT', 'ANY', 'CNAME', 'MX', 'HTTPS', 'SVCB', 'CAA', 'DS', 'DNSKEY']);

export interface MetricsSources {
  registry: Registry;
  cache: () => ResponseCache;
  /** Failures that leave the cluster or DNS wrong, by kind (src/log-once.ts). */
  failures?: FailureLog;
}

export const BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5];

/**
 * Per-query DNS counters kept in plain maps and arrays and rendered at scrape time: prom-client's
 * labelled inc()/observe() cost more per query than answering a cached in-zone name.
 */
class QueryStats {
  readonly queries = new Map<string, number>();
  /** path → bucket counts (last slot: +Inf), sum, count */
  readonly latency = new Map<string, { buckets: Float64Array; sum: number; count: number }>();

  count(key: string, n = 1): void {
    this.queries.set(key, (this.queries.get(key) ?? 0) + n);
  }

  /** Adds a histogram measured elsewhere (same buckets, +Inf last). */
  merge(path: string, buckets: number[], sum: number, count: number): void {
    let h = this.latency.get(path);
    if (!h) this.latency.set(path, (h = { buckets: new Float64Array(BUCKETS.length + 1), sum: 0, count: 0 }));
    buckets.forEach((n, i) => (h!.buckets[i]! += n));
    h.sum += sum;
    h.count += count;
  }

  observe(path: string, seconds: number): void {
    let h = this.latency.get(path);
    if (!h) this.latency.set(path, (h = { buckets: new Float64Array(BUCKETS.length + 1), sum: 0, count: 0 }));
    let i = 0;
    while (i < BUCKETS.length && seconds > BUCKETS[i]!) i++;
    h.buckets[i]!++;
    h.sum += seconds;
    h.count++;
  }

  render(): string {
    const out: string[] = [
      `# HELP ${P}dns_queries_total DNS queries answered, by query type, response code, where the answer came from (zone, cache, upstream, stale, refused, failed, error) and which path served it (js, native)`,
      `# TYPE ${P}dns_queries_total counter`,
    ];
    for (const [key, n] of this.queries) {
      const [type, rcode, source, path] = key.split('|');
      out.push(`${P}dns_queries_total{type="${type}",rcode="${rcode}",source="${source}",path="${path}"} ${n}`);
    }
    out.push(`# HELP ${P}dns_query_duration_seconds Time from receiving a DNS query to having its response`, `# TYPE ${P}dns_query_duration_seconds histogram`);
    for (const [path, h] of this.latency) {
      let cumulative = 0;
      BUCKETS.forEach((le, i) => {
        cumulative += h.buckets[i]!;
        out.push(`${P}dns_query_duration_seconds_bucket{le="${le}",path="${path}"} ${cumulative}`);
      });
      out.push(`${P}dns_query_duration_seconds_bucket{le="+Inf",path="${path}"} ${h.count}`);
      out.push(`${P}dns_query_duration_seconds_sum{path="${path}"} ${h.sum}`, `${P}dns_query_duration_seconds_count{path="${path}"} ${h.count}`);
    }
    return `${out.join('\n')}\n`;
  }
}

export class Metrics implements DnsMetrics {
  readonly prom = new PromRegistry();
  private readonly stats = new QueryStats();
  private readonly malformedCount: Counter<'action'>;
  private readonly upstreamFailures: Counter<'upstream'>;
  private readonly shedCount: Counter<'reason'>;
  readonly apiRequests: Counter<'method' | 'route' | 'code'>;

  constructor(src: MetricsSources, readonly path: 'js' | 'native' = 'js') {
    const registers = [this.prom];
    collectDefaultMetrics({ register: this.prom, prefix: P });
    this.malformedCount = new Counter({
      name: `${P}dns_malformed_total`,
      help: 'Malformed DNS queries: answered with FORMERR/NOTIMP (formerr) or dropped (dropped)',
      labelNames: ['action'],
      registers,
    });
    this.shedCount = new Counter({
      name: `${P}dns_shed_total`,
      help: 'DNS work refused to stay responsive under load, by reason: queries handed to the JS path dropped because the queue was full (handoff_full) or they waited too long (handoff_late); TCP connections refused or closed (tcp_total_limit, tcp_client_limit, tcp_idle, tcp_read_timeout, tcp_output_full) and TCP reads paused for a client not reading its answers (tcp_output_paused); UDP responses over the --dns-rrl rate dropped (rrl_drop) or sent truncated (rrl_slip)',
      labelNames: ['reason'],
      registers,
    });
    this.upstreamFailures = new Counter({
      name: `${P}dns_upstream_failures_total`,
      help: 'Upstream DNS servers that stopped answering (each transition from up to down)',
      labelNames: ['upstream'],
      registers,
    });
    const failures = src.failures;
    new Counter({
      name: `${P}failures_total`,
      help: 'Failures that leave the cluster or DNS wrong until they pass, by kind: a container Podman could not inspect (inspect), the Podman event stream lost (reconnect) or a resync failed (resync), a push-pull with a live member (push_pull), a node state fetched from its owner (fetch); each is logged at warn when it starts and at info when it ends',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        for (const [kind, n] of failures?.totals() ?? []) this.inc({ kind }, n);
      },
    });
    new Counter({
      name: `${P}dns_cache_hits_total`,
      help: 'Forwarded queries answered from the cache',
      registers,
      collect() {
        this.reset();
        this.inc(src.cache().hits);
      },
    });
    new Counter({
      name: `${P}dns_cache_misses_total`,
      help: 'Forwarded queries not found in the cache',
      registers,
      collect() {
        this.reset();
        this.inc(src.cache().misses);
      },
    });
    new Counter({
      name: `${P}dns_cache_evictions_total`,
      help: 'Forwarded answers dropped from the cache to stay within --cache-size',
      registers,
      collect() {
        this.reset();
        this.inc(src.cache().evictions);
      },
    });
    new Counter({
      name: `${P}dns_stale_answers_total`,
      help: 'Forwarded queries answered from an expired cache entry because no upstream answered (--serve-stale)',
      registers,
      collect() {
        this.reset();
        this.inc(src.cache().staleHits);
      },
    });
    new Gauge({
      name: `${P}dns_cache_entries`,
      help: 'Responses held in the forwarding cache',
      registers,
      collect() {
        this.set(src.cache().size);
      },
    });
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({ name: `${P}${name}`, help, registers, collect() { this.set(read()); } });
    };
    gauge('registry_services', 'Services known to this node', () => src.registry.serviceCount);
    gauge('registry_endpoints', 'Endpoints known to this node (all nodes)', () => src.registry.endpointCount);
    gauge('registry_nodes', 'Nodes whose state this node holds', () => [...src.registry.nodes()].length);
    gauge('registry_index', 'Registry change counter (the index of blocking queries)', () => src.registry.index);
    this.apiRequests = new Counter({
      name: `${P}api_requests_total`,
      help: 'HTTP API requests by method, route and status code',
      labelNames: ['method', 'route', 'code'],
      registers,
    });
  }

  query(qtype: string, rcode: string, source: AnswerSource, seconds: number): void {
    this.stats.count(`${KNOWN_TYPES.has(qtype) ? qtype : 'OTHER'}|${rcode}|${source}|${this.path}`);
    this.stats.observe(this.path, seconds);
  }

  /** Run before each scrape: counters kept elsewhere (the native path's) are brought in. */
  readonly beforeScrape: Array<() => void> = [];

  /** The Prometheus text of everything: prom-client's metrics and the per-query DNS stats. */
  async text(): Promise<string> {
    for (const f of this.beforeScrape) f();
    return (await this.prom.metrics()) + this.stats.render();
  }

  /** DNS answers so far by response code and path (the status page turns them into rates). */
  dnsTotals(): Array<{ rcode: string; path: string; count: number }> {
    for (const f of this.beforeScrape) f();
    const sums = new Map<string, number>();
    for (const [key, n] of this.stats.queries) {
      const [, rcode, , path] = key.split('|');
      sums.set(`${rcode}|${path}`, (sums.get(`${rcode}|${path}`) ?? 0) + n);
    }
    return [...sums].map(([k, count]) => {
      const [rcode, path] = k.split('|') as [string, string];
      return { rcode, path, count };
    });
  }

  malformed(action: 'formerr' | 'dropped', n = 1): void {
    this.malformedCount.inc({ action }, n);
  }

  shed(reason: ShedReason, n = 1): void {
    this.shedCount.inc({ reason }, n);
  }

  /** Latency of native answers (per batch: receive to send), added in bulk. */
  nativeLatency(buckets: number[], sum: number, count: number): void {
    this.stats.merge('native', buckets, sum, count);
  }

  /** Answers sent by the native fast path (counted there, added here in bulk). */
  nativeAnswers(qtype: string, rcode: string, n: number, source: 'zone' | 'cache' = 'zone'): void {
    this.stats.count(`${qtype}|${rcode}|${source}|native`, n);
  }

  upstreamFailed(upstream: string): void {
    this.upstreamFailures.inc({ upstream });
  }
}
