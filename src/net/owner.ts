import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

// Who holds a local port: so that "address in use" can say "by aardvark-dns (pid 1234)".
// Reads /proc like `ss -p` does; needs root to see other users' processes, else finds nothing.

export function portOwner(port: number, protocol: 'udp' | 'tcp'): string | null {
  const inodes = new Set<string>();
  for (const file of [`/proc/net/${protocol}`, `/proc/net/${protocol}6`]) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      if (!local || parseInt(local.split(':')[1] ?? '', 16) !== port) continue;
      // TCP: only listening sockets (state 0A).
      if (protocol === 'tcp' && cols[3] !== '0A') continue;
      if (cols[9] && cols[9] !== '0') inodes.add(cols[9]);
    }
  }
  if (inodes.size === 0) return null;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return null;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1]!)) {
        let comm = '?';
        try {
          comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        } catch {
          /* gone meanwhile */
        }
        return `${comm} (pid ${pid})`;
      }
    }
  }
  return null;
}
