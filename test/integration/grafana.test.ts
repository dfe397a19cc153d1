import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startDaemon } from '../helpers/daemon.js';
import { digShort } from '../helpers/dns.js';

// contrib/grafana/podman-swarm-dns.json queries only metrics a real daemon exports, grouped by
// labels those metrics have: a renamed metric or label breaks this test, not the dashboard.

interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: Array<{ expr: string }>;
}

const dashboard = JSON.parse(readFileSync(join(ROOT, 'contrib/grafana/podman-swarm-dns.json'), 'utf8')) as {
  panels: Panel[];
  templating: { list: Array<{ name: string; definition?: string }> };
};

t.test('every metric and label the dashboard queries is in /metrics', async (t) => {
  const d = await startDaemon(t, { config: 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.1\n' });
  await digShort(d.dnsPort, 'web.default.cluster.local'); // so the per-query series have samples
  const text = await (await fetch(`${d.api}/metrics`)).text();
  const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  /** Label names seen on each metric's samples. */
  const labels = new Map<string, Set<string>>();
  for (const m of text.matchAll(/^([a-z_:][a-z0-9_:]*)\{([^}]*)\}/gm)) {
    const set = labels.get(m[1]!) ?? new Set<string>();
    for (const l of m[2]!.matchAll(/([a-z_]+)="/g)) set.add(l[1]!);
    labels.set(m[1]!, set);
  }

  const exprs = [
    ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => ({ where: p.title, expr: x.expr }))),
    ...dashboard.templating.list.filter((v) => v.definition).map((v) => ({ where: `variable ${v.name}`, expr: v.definition! })),
  ];
  t.ok(exprs.length > 20, `${exprs.length} queries`);
  const queried = new Set<string>();
  for (const { where, expr } of exprs) {
    const names = [...expr.matchAll(/podman_swarm_dns_[a-z0-9_]+/g)].map((m) => m[0]);
    t.ok(names.length > 0, `${where}: queries a podman-swarm-dns metric`);
    for (const name of names) {
      queried.add(name);
      const base = name.replace(/_(bucket|sum|count)$/, '');
      const type = types.get(name) ?? (types.get(base) === 'histogram' ? 'histogram' : undefined);
      t.ok(type, `${where}: ${name} is exported`);
      // Grouping labels must exist on the metric, where it has samples to show them.
      const by = /by \(([^)]*)\)/.exec(expr)?.[1]?.split(',').map((s) => s.trim()).filter((l) => l !== 'le' && l !== 'instance') ?? [];
      const seen = labels.get(name);
      if (seen && names.length === 1) for (const l of by) t.ok(seen.has(l), `${where}: ${name} has the label ${l}`);
    }
  }
  for (const family of ['dns_queries_total', 'dns_query_duration_seconds_bucket', 'dns_cache_hits_total', 'dns_upstream_failures_total', 'registry_endpoints',
    'gossip_bytes_sent_total', 'lb_active_connections', 'lb_bytes_to_backend_total', 'health_transitions_total']) {
    t.ok(queried.has(`podman_swarm_dns_${family}`), `the dashboard shows ${family}`);
  }
});

t.test('the dashboard is well-formed', async (t) => {
  const ids = dashboard.panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
    t.ok(p.targets?.length, `${p.title}: has queries`);
    t.ok(JSON.stringify(p).includes('${datasource}'), `${p.title}: uses the data source variable`);
  }
});
