import t from 'tap';
import { join } from 'node:path';
import { startDaemon } from '../helpers/daemon.js';
import { decode, query, udpExchange } from '../helpers/dns.js';
import { until } from '../helpers/until.js';

// No false NXDOMAIN at start: a daemon waiting for its first Podman sync (here Podman's socket is
// missing, so it never comes) answers unknown names in the zone with SERVFAIL until --start-grace
// has passed, known ones at once — on the native path as on the JS one. On the native path the
// JS path answers right after READY until the first table is in (READY does not wait for it);
// then the native threads answer both from their table (the grace does not keep the table out).

const CONFIG = `
services:
  - name: web
    endpoints:
      - address: 10.0.0.1
`;

const rcode = async (port: number, name: string): Promise<string | undefined> => {
  const reply = await udpExchange(port, query(name), { timeoutMs: 3000 });
  if (!reply) throw new Error(`no answer for ${name}`);
  return decode(reply).rcode;
};

for (const native of [true, false]) {
  t.test(`SERVFAIL, not NXDOMAIN, until the grace has passed (${native ? 'native' : 'JS'} path)`, async (t) => {
    const d = await startDaemon(t, {
      config: CONFIG,
      env: native ? {} : { PODMAN_SWARM_DNS_NATIVE: '0' },
      args: ['--podman-socket', join('/nonexistent', 'podman.sock'), '--start-grace', '3s'],
    });
    t.equal(await rcode(d.dnsPort, 'web.default.cluster.local'), 'NOERROR', 'a known name is answered at once');
    t.equal(await rcode(d.dnsPort, 'db.default.cluster.local'), 'SERVFAIL', 'an unknown one gets SERVFAIL while Podman has not synced');
    if (native) {
      // The grace does not hide what the daemon knows: once the first table is in, the native
      // threads answer both from it.
      const metrics = async (): Promise<string> => (await fetch(`${d.api}/metrics`)).text();
      await until('the first native table', async () => /podman_swarm_dns_native_table_builds_total [1-9]/.test(await metrics()), 10_000);
      const count = async (rcode: string): Promise<number> => Number(new RegExp(`dns_queries_total\\{type="A",rcode="${rcode}",source="zone",path="native"\\} (\\d+)`).exec(await metrics())?.[1] ?? 0);
      const [noerror, servfail] = [await count('NOERROR'), await count('SERVFAIL')];
      t.equal(await rcode(d.dnsPort, 'web.default.cluster.local'), 'NOERROR');
      t.equal(await rcode(d.dnsPort, 'db.default.cluster.local'), 'SERVFAIL');
      t.equal(await count('NOERROR'), noerror + 1, 'the known name answered by the native threads during the grace');
      t.equal(await count('SERVFAIL'), servfail + 1, 'and the SERVFAIL too');
    }
    await until('the grace to pass', () => /start grace over after \d+ ms without the first Podman sync/.test(d.logs()), 15_000);
    t.equal(await rcode(d.dnsPort, 'db.default.cluster.local'), 'NXDOMAIN', 'then NXDOMAIN');
    t.equal(await rcode(d.dnsPort, 'web.default.cluster.local'), 'NOERROR');
  });
}

t.test('--start-grace 0: NXDOMAIN at once', async (t) => {
  const d = await startDaemon(t, { config: CONFIG, args: ['--podman-socket', '/nonexistent/podman.sock', '--start-grace', '0'] });
  t.equal(await rcode(d.dnsPort, 'db.default.cluster.local'), 'NXDOMAIN');
});
