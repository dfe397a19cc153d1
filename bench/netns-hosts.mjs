// Simulated hosts for the bench scripts: network namespaces `<prefix>-<i>` on a bridge
// `<prefix>br` (no address in the root namespace, so traffic stays inside the machine), host i at
// `<subnet>.<10+i>` on its eth0. test/helpers/hosts.ts does the same for the e2e tests.
import { execFileSync } from 'node:child_process';

export const ip = (...a) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });

/** The hosts' names and addresses; nothing is created until up(). */
export function netnsHosts(prefix, subnet, count) {
  const hosts = Array.from({ length: count }, (_, k) => ({ i: k + 1, ns: `${prefix}-${k + 1}`, veth: `${prefix}v${k + 1}`, address: `${subnet}.${11 + k}` }));
  return {
    hosts,
    up() {
      ip('link', 'add', `${prefix}br`, 'type', 'bridge');
      ip('link', 'set', `${prefix}br`, 'up');
      for (const h of hosts) {
        ip('netns', 'add', h.ns);
        ip('link', 'add', h.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns);
        ip('link', 'set', h.veth, 'master', `${prefix}br`, 'up');
        ip('-n', h.ns, 'link', 'set', 'lo', 'up');
        ip('-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0');
        ip('-n', h.ns, 'link', 'set', 'eth0', 'up');
      }
    },
    /** Removes what up() made (whatever part of it exists). */
    down() {
      for (const h of hosts) {
        try { ip('netns', 'del', h.ns); } catch { /* gone */ }
        try { ip('link', 'del', h.veth); } catch { /* gone */ }
      }
      try { ip('link', 'del', `${prefix}br`); } catch { /* gone */ }
    },
  };
}
