import { Counter, Gauge, Histogram, type Registry as PromRegistry } from 'prom-client';
import type { Cluster } from './cluster.js';

// Gossip metrics (issue 4): members by state, messages and bytes, rejected packets (decrypt
// failures and the rest, by reason), push-pulls, and the convergence lag of merged states.

const P = 'podman_swarm_dns_gossip_';

export function gossipMetrics(prom: PromRegistry, cluster: () => Cluster | null): { lag(ms: number): void } {
  const registers = [prom];
  const stats = () => cluster()?.membership.stats;
  new Gauge({
    name: `${P}members`, help: 'Cluster members by state (this node included)', labelNames: ['state'], registers,
    collect() {
      const c = cluster();
      for (const s of ['alive', 'suspect', 'dead', 'left'] as const) this.set({ state: s }, c ? c.members(s) : 0);
    },
  });
  const counter = (name: string, help: string, read: () => number | undefined): void => {
    new Counter({ name: `${P}${name}`, help, registers, collect() { this.reset(); this.inc(read() ?? 0); } });
  };
  counter('messages_sent_total', 'Gossip messages sent in UDP packets (piggy-backed updates included)', () => stats()?.messagesSent);
  counter('messages_received_total', 'Gossip messages received in accepted UDP packets', () => stats()?.messagesReceived);
  counter('packets_sent_total', 'Gossip UDP packets sent', () => stats()?.packetsSent);
  counter('packets_received_total', 'Gossip UDP packets received', () => stats()?.packetsReceived);
  counter('bytes_sent_total', 'Gossip bytes sent (UDP packets and TCP frames)', () => stats()?.bytesSent);
  counter('bytes_received_total', 'Gossip bytes received (UDP packets and TCP frames)', () => stats()?.bytesReceived);
  counter('updates_queued_total', 'Registry updates passed on along the broadcast tree (this node\'s changes and those relayed)', () => stats()?.updatesQueued);
  const tree = () => cluster()?.membership.tree.stats;
  counter('tree_pushes_received_total', 'Registry updates pushed to this node along the broadcast tree, duplicates included', () => tree()?.received);
  counter('tree_duplicates_total', 'Pushed registry updates this node had already (each prunes the edge it came over)', () => tree()?.duplicates);
  counter('tree_ihave_ids_sent_total', 'Update ids announced to lazy peers (IHAVE)', () => tree()?.ihaveIds);
  counter('tree_grafts_sent_total', 'Announced updates not received in time, asked of the announcer (GRAFT): lost pushes or a broken tree', () => tree()?.graftsSent);
  counter('deltas_applied_total', 'Registry deltas of other nodes applied here (what a change normally costs)', () => cluster()?.sync.stats.deltas);
  counter('states_merged_total', 'Whole node states merged here (push-pull, repairs, join)', () => cluster()?.sync.stats.states);
  counter('state_repairs_total', 'Whole node states asked of one peer after a lost delta or a change too big for a packet', () => cluster()?.sync.stats.repairs);
  counter('push_pulls_total', 'Completed TCP push-pull state exchanges (either side)', () => stats()?.pushPulls);
  counter('push_pull_failures_total', 'Push-pull exchanges this node started that failed', () => stats()?.pushPullFailures);
  counter('late_timers_total', "Failure-detector timers that fired late (this node's event loop was behind); each raises the local health score", () => cluster()?.membership.awareness.late);
  new Gauge({
    name: `${P}local_health_score`,
    help: "Lifeguard local health score: 0 is healthy; at n this node's probe and suspicion timeouts are n+1 times longer",
    registers,
    collect() {
      this.set(cluster()?.membership.awareness.score ?? 0);
    },
  });
  new Counter({
    name: `${P}rejected_total`,
    help:
      'Gossip input dropped: auth (decrypt failure: wrong key or tampered), replay, decode, version, unencrypted, encrypted; ' +
      "signature (not signed by the node it speaks for), bounds (incarnation or version out of range), limit (over --max-endpoints-per-node); " +
      'frame (stream over the size limit or too slow), connections (over --gossip-max-connections)',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(stats()?.rejected ?? {})) this.inc({ reason }, n);
    },
  });
  new Gauge({
    name: `${P}streams_open`, help: 'Incoming gossip TCP streams open now (capped by --gossip-max-connections)', registers,
    collect() {
      this.set(cluster()?.transport.openStreams ?? 0);
    },
  });
  const lag = new Histogram({
    name: `${P}convergence_lag_seconds`,
    help: "Time from a node changing its state to this node merging it (owners' clocks)",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers,
  });
  return { lag: (ms) => lag.observe(Math.max(0, ms) / 1000) };
}
