// Timings of the membership protocol, in one preset object (memberlist's DefaultLANConfig, as
// docs/architecture.md#registry-and-gossip fixes them). Every duration is in milliseconds of the clock the membership runs on, so
// the simulator runs the very same numbers in virtual time.

export interface GossipConfig {
  /** How often this node probes one member (round-robin over a shuffled list). */
  probeInterval: number;
  /** How long a direct probe waits for its ack before asking others to probe indirectly. */
  probeTimeout: number;
  /** Members asked to probe a target indirectly when the direct probe went unanswered. */
  indirectChecks: number;
  /** Suspicion timeout = suspicionMult × log10(n+1) × probeInterval ... */
  suspicionMult: number;
  /** ... but never less than this (docs/architecture.md#registry-and-gossip: at least 4 s). */
  suspicionMin: number;
  /** How often piggy-backed updates are pushed to `gossipNodes` random members. */
  gossipInterval: number;
  gossipNodes: number;
  /** Each update is retransmitted retransmitMult × ceil(log10(n+1)) times. */
  retransmitMult: number;
  /** TCP push-pull anti-entropy period for small clusters; scaled up with the cluster size. */
  pushPullInterval: number;
  /** Dead and left members are forgotten after this long (tombstones stop resurrections). */
  deadReap: number;
  /** Packets stay under this size, after encryption. */
  packetSize: number;
  /** Join: first retry delay, doubling up to joinBackoffMax, forever until one seed answers. */
  joinBackoff: number;
  joinBackoffMax: number;
  /** TCP request timeout (push-pull, state fetch, join). */
  streamTimeout: number;
}

export const LAN: GossipConfig = {
  probeInterval: 1000,
  probeTimeout: 500,
  indirectChecks: 3,
  suspicionMult: 4,
  suspicionMin: 4000,
  gossipInterval: 200,
  gossipNodes: 3,
  retransmitMult: 4,
  pushPullInterval: 30_000,
  deadReap: 24 * 3600_000,
  packetSize: 1400,
  joinBackoff: 1000,
  joinBackoffMax: 30_000,
  streamTimeout: 5000,
};

/** Retransmissions of one update in a cluster of n members (docs/architecture.md#registry-and-gossip). */
export const retransmitLimit = (c: GossipConfig, n: number): number => c.retransmitMult * Math.ceil(Math.log10(n + 1));

/**
 * Suspicion timeout for a cluster of n members. The timer runs from the probe that went
 * unanswered, not from the moment the indirect probes gave up: the suspect had the whole probe
 * interval to answer already, and this keeps "host killed → endpoints gone" under 6 s on small
 * clusters where the 4 s floor dominates (docs/architecture.md#bounds-and-performance).
 */
export const suspicionTimeout = (c: GossipConfig, n: number): number =>
  Math.max(c.suspicionMin, c.suspicionMult * Math.log10(n + 1) * c.probeInterval);

/** Push-pull period scaled like memberlist's pushPullScale: doubles per doubling beyond 32 nodes. */
export function pushPullInterval(c: GossipConfig, n: number): number {
  const threshold = 32;
  if (n <= threshold) return c.pushPullInterval;
  const mult = Math.ceil(Math.log2(n) - Math.log2(threshold)) + 1;
  return c.pushPullInterval * mult;
}
