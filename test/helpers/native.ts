import { loadAddon } from '../../src/native/index.js';

// Whether the tests that need the native addon run. Without it they skip with the reason, except
// with PODMAN_SWARM_DNS_REQUIRE_NATIVE=1 (.ci/run sets it on a machine with cargo, where the addon
// must have been built): then a missing addon fails the test file instead of hiding behind a skip.

export const REQUIRE_NATIVE = process.env.PODMAN_SWARM_DNS_REQUIRE_NATIVE === '1';

/** tap `skip` option for a test that needs the addon: false when it loads, else the reason. */
export function nativeSkip(): string | false {
  const loaded = loadAddon();
  if (loaded.addon) return false;
  if (REQUIRE_NATIVE) throw new Error(`PODMAN_SWARM_DNS_REQUIRE_NATIVE=1 but ${loaded.reason}`);
  return `native addon not built (${loaded.reason}); run npm run build:native`;
}
