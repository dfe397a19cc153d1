import t from 'tap';
import { join } from 'node:path';
import { startDaemon } from '../helpers/daemon.js';
import { decode, query, udpExchange } from '../helpers/dns.js';
import { until } from '../helpers/until.js';

// No false NXDOMAIN at start: a daemon waiting for its first Podman sync (here Podman's socket is
// missing, so it never comes) answers unknown names in the zone with SERVFAIL until --start-grace
// has passed, known ones at once — on the native path as on the JS one, where the native threads
// answer both from their table (the grace does not keep the table out).

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
      // The grace does not hide what the daemon knows: the native threads answer both from their table.
      const metrics = await (await fetch(`${d.api}/metrics`)).text();
      t.match(metrics, /dns_queries_total\{type="A",rcode="NOERROR",source="zone",path="native"\} 1\b/, 'the known name answered by the native threads during the grace');
      t.match(metrics, /dns_queries_total\{type="A",rcode="SERVFAIL",source="zone",path="native"\} 1\b/, 'and the SERVFAIL too');
      t.notMatch(metrics, /dns_queries_total\{[^}]*path="js"\}/, 'no query handed to JS');
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
