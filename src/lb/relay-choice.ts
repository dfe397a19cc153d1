import { loadAddon } from '../native/index.js';
import type { RelayAddon } from './native-tcp-proxy.js';
import type { UdpRelayAddon } from './native-udp-proxy.js';

// Which proxy serves a VIP:port. The addon's relay wherever it can (it is faster in every case
// bench/lb.mjs measures, see bench/RESULTS.md); the JS proxy when the addon is missing, when
// PODMAN_SWARM_DNS_NATIVE=0 or PODMAN_SWARM_DNS_NATIVE_RELAY=0 says so, and for the PROXY
// protocol, which only the JS TCP proxy writes.

export function relayAddon(proxyProtocol: boolean, env: NodeJS.ProcessEnv = process.env): RelayAddon | null {
  if (proxyProtocol || env.PODMAN_SWARM_DNS_NATIVE === '0' || env.PODMAN_SWARM_DNS_NATIVE_RELAY === '0') return null;
  const { addon } = loadAddon(env);
  if (!addon || typeof addon.relayListen !== 'function') return null;
  return addon;
}

/** The addon's UDP relay, under the same switches (an addon built before it had none: null). */
export function udpRelayAddon(env: NodeJS.ProcessEnv = process.env): UdpRelayAddon | null {
  const addon = relayAddon(false, env);
  return addon && typeof addon.relayUdpListen === 'function' ? addon : null;
}
