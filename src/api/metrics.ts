import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry as PromRegistry } from 'prom-client';
import type { AnswerSource, DnsMetrics } from '../dns/handler.js';
import type { ResponseCache } from '../dns/cache.js';
import type { Registry } from '../registry/registry.js';

// Prometheus metrics (text format at /metrics). One registry per daemon, not prom-client's global
// one, so tests can run several daemons' worth of code in one process.

const P = 'podman_swarm_dns_';
const KNOWN_TYPES = new Set(['A', 'AAAA', 'SRV', 'PTR', 'SOA', 'NS', 'TXT', 'ANY', 'CNAME', 'MX', 'HTTPS', 'SVCB', 'CAA', 'DS', 'DNSKEY']);

export interface MetricsSources {
  registry: Registry;
  cache: () => ResponseCache;
}

export class Metrics implements DnsMetrics {
  readonly prom = new PromRegistry();
  private readonly queries: Counter<'type' | 'rcode' | 'source' | 'path'>;
  private readonly latency: Histogram<'path'>;
  private readonly malformedCount: Counter<'action'>;
  private readonly upstreamFailures: Counter<'upstream'>;
  readonly apiRequests: Counter<'method' | 'route' | 'code'>;

  constructor(src: MetricsSources, readonly path: 'js' | 'native' = 'js') {
    const registers = [this.prom];
    collectDefaultMetrics({ register: this.prom, prefix: P });
    this.queries = new Counter({
      name: `${P}dns_queries_total`,
      help: 'DNS queries answered, by query type, response code, where the answer came from (zone, cache, upstream, refused, failed, error) and which path served it (js, native)',
      labelNames: ['type', 'rcode', 'source', 'path'],
      registers,
    });
    this.latency = new Histogram({
      name: `${P}dns_query_duration_seconds`,
      help: 'Time from receiving a DNS query to having its response',
      labelNames: ['path'],
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5],
      registers,
    });
    this.malformedCount = new Counter({
      name: `${P}dns_malformed_total`,
      help: 'Malformed DNS queries: answered with FORMERR/NOTIMP (formerr) or dropped (dropped)',
      labelNames: ['action'],
      registers,
    });
    this.upstreamFailures = new Counter({
      name: `${P}dns_upstream_failures_total`,
      help: 'Upstream DNS servers that stopped answering (each transition from up to down)',
      labelNames: ['upstream'],
      registers,
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
    this.queries.inc({ type: KNOWN_TYPES.has(qtype) ? qtype : 'OTHER', rcode, source, path: this.path });
    this.latency.observe({ path: this.path }, seconds);
  }

  malformed(action: 'formerr' | 'dropped'): void {
    this.malformedCount.inc({ action });
  }

  upstreamFailed(upstream: string): void {
    this.upstreamFailures.inc({ upstream });
  }
}
