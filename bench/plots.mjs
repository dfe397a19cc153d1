#!/usr/bin/env node
// Draws bench/plots/*.svg from the figures recorded in bench/RESULTS.md (each block names its
// section there). The bench scripts draw the same charts from a new run with the same functions
// (bench/plot.mjs); this script is for the recorded runs, so that the charts in the repository
// match the tables next to them.
//
//   node bench/plots.mjs
import { barChart, lineChart, writePlot } from './plot.mjs';

// Plot builders shared with the bench scripts (a new run passes its own figures).

/** dns.mjs: QPS and answers per server CPU-second, per server. */
export const dnsPlot = (title, rows) =>
  barChart({
    title,
    yLabel: 'queries per second',
    categories: rows.map((r) => r.server),
    series: [
      { name: 'QPS (dnsperf, saturating)', values: rows.map((r) => r.qps) },
      { name: 'answers per server CPU-second', values: rows.map((r) => r.perCpu) },
    ],
  });

/** lb.mjs: each case relative to HAProxy in the same run (1 = as fast as HAProxy). */
export const lbPlot = (title, rows) =>
  barChart({
    title,
    yLabel: '× HAProxy (higher is better)',
    categories: rows.map((r) => r.case),
    series: ['direct', 'VIP, native relay', 'VIP, JS proxy', 'HAProxy'].map((name, i) => ({
      name,
      values: rows.map((r) => +(r.values[i] / r.values[3]).toFixed(2)),
    })),
  });

/** gossip-sim.mjs: convergence time and bandwidth against the cluster size. */
export const simPlots = (rows) => ({
  convergence: lineChart({
    title: 'Gossip simulator: one update → 99.9% of nodes',
    xLabel: 'nodes (N)',
    yLabel: 'virtual ms',
    logX: true,
    series: [
      { name: 'simulator, → 99.9%', points: rows.map((r) => [r.n, r.p999]) },
      { name: 'simulator, → 100%', points: rows.map((r) => [r.n, r.all]) },
      { name: 'Serf model, → 99.9%', points: rows.map((r) => [r.n, r.serf]), dashed: true },
    ],
  }),
  bandwidth: lineChart({
    title: 'Gossip simulator: bytes per second per node',
    xLabel: 'nodes (N)',
    yLabel: 'B/s per node',
    logX: true,
    series: [
      { name: 'while an update spreads (2 s)', points: rows.map((r) => [r.n, r.spreading]) },
      { name: 'steady state (push-pull included)', points: rows.map((r) => [r.n, r.steady]) },
    ],
  }),
});

/** changes.mjs: API change → the new address in the DNS answer, against the number of services. */
export const changesPlot = (title, rows) =>
  lineChart({
    title,
    xLabel: 'services in the registry',
    yLabel: 'ms (log scale)',
    logX: true,
    logY: true,
    series: rows.map((r) => ({ name: r.name, points: r.points, dashed: r.dashed })),
  });

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = [];
  // "DNS: native fast path ... Re-run on a quiet machine (2026-11-30 14:50)".
  out.push(writePlot('dns', dnsPlot('DNS: 1000 in-zone A names, 2 cores (2026-11-30, quiet machine)', [
    { server: 'native', qps: 236747, perCpu: 283219 },
    { server: 'knot', qps: 224461, perCpu: 253997 },
    { server: 'dnsmasq', qps: 163746, perCpu: 226850 },
    { server: 'js', qps: 38643, perCpu: 38752 },
    { server: 'aardvark', qps: 7713, perCpu: 7365 },
  ])));
  // "DNS: the query log's cost (issue 21)", run F (the final build).
  out.push(writePlot('dns-query-log', dnsPlot('DNS native path, --query-log off / sample:100 / all (2026-12-06, run F, loaded machine)', [
    { server: 'off', qps: 167802, perCpu: 373111 },
    { server: 'sample:100', qps: 170344, perCpu: 340021 },
    { server: 'all', qps: 165627, perCpu: 309002 },
  ])));
  // "Load balancer: ... two final runs", run 2 (17:14): direct, native relay, JS proxy, HAProxy.
  out.push(writePlot('lb', lbPlot('Load balancer vs HAProxy, same backend (2026-11-30, quiet machine)', [
    { case: 'bulk TCP, Gbit/s', values: [17.23, 14.44, 5.0, 11.56] },
    { case: 'new connections, req/s', values: [25408, 17890, 7088, 16796] },
    { case: 'keep-alive, req/s', values: [112686, 71264, 60488, 63327] },
  ])));
  // "Gossip: simulator convergence (issue 4)".
  const sim = simPlots([
    { n: 10, p999: 243, all: 245, serf: 1000, spreading: 1073, steady: 77 },
    { n: 100, p999: 617, all: 617, serf: 1200, spreading: 2020, steady: 153 },
    { n: 1000, p999: 772, all: 876, serf: 1600, spreading: 6459, steady: 694 },
  ]);
  out.push(writePlot('sim-convergence', sim.convergence), writePlot('sim-bandwidth', sim.bandwidth));
  // "Changes at scale (issue 16)": change → answer, before and after that branch.
  out.push(writePlot('change-answer', changesPlot('API change → new address answered in DNS (2026-12-06, loaded machine)', [
    { name: 'p50', points: [[1000, 110.9], [10000, 1063.5]] },
    { name: 'p90', points: [[1000, 220.6], [10000, 1780.3]] },
    { name: 'max', points: [[1000, 314.9], [10000, 3350.7]] },
    { name: 'p50 before issue 16', points: [[1000, 70.7], [10000, 1797.5]], dashed: true },
  ])));
  for (const f of out) console.log(f);
}
