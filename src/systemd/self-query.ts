import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import * as packet from 'dns-packet';
import type { HostPort } from '../config/kinds.js';

// The watchdog's proof that the DNS path works: a real UDP query to one of the daemon's own
// listeners for a name it answers itself (dns-version.<zone> TXT, docs/architecture.md#dns), so the socket, the
// handler and the zone are all exercised.

export async function selfQuery(listen: HostPort, domain: string, timeoutMs: number): Promise<boolean> {
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  const id = Math.floor(Math.random() * 0xffff);
  const query = packet.encode({ id, type: 'query', flags: 0, questions: [{ name: `dns-version.${domain}`, type: 'TXT', class: 'IN' }] });
  const sock = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
  return new Promise<boolean>((resolve) => {
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('error', () => finish(false));
    sock.on('message', (msg) => {
      try {
        const d = packet.decode(msg);
        if (d.id === id) finish((d as { rcode?: string }).rcode === 'NOERROR' && (d.answers?.length ?? 0) > 0);
      } catch {
        /* not our answer */
      }
    });
    sock.send(query, listen.port, host, (err) => {
      if (err) finish(false);
    });
  });
}
