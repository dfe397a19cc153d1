import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './daemon.js';
import type { Machine } from './nspawn.js';

/**
 * What the package puts in place, from this checkout (dist and node_modules bind-mounted
 * read-only at /opt/podman-swarm-dns), run by the machine's Node.js; and the daemon's link,
 * made beforehand as a veth: this kernel has no dummy links and a port-less bridge has no
 * carrier, which resolved needs before it uses a link's DNS servers.
 */
export function installUnit(m: Machine): void {
  mkdirSync(join(m.root, 'usr/lib/podman-swarm-dns'), { recursive: true });
  copyFileSync(join(ROOT, 'systemd/notify-socket-exec'), join(m.root, 'usr/lib/podman-swarm-dns/notify-socket-exec'));
  chmodSync(join(m.root, 'usr/lib/podman-swarm-dns/notify-socket-exec'), 0o755);
  writeFileSync(join(m.root, 'usr/bin/podman-swarm-dns'), '#!/bin/sh\nexec /usr/bin/node /opt/podman-swarm-dns/dist/cli.js "$@"\n', { mode: 0o755 });
  copyFileSync(join(ROOT, 'systemd/podman-swarm-dns.service'), join(m.root, 'etc/systemd/system/podman-swarm-dns.service'));
  m.exec('ip', 'link', 'add', 'pswarm0', 'type', 'veth', 'peer', 'name', 'pswarm0p');
  m.exec('ip', 'link', 'set', 'pswarm0p', 'up');
  m.exec('systemctl', 'daemon-reload');
}
