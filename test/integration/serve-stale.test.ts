import t from 'tap';
import { runCli, startDaemon, writeConfig } from '../helpers/daemon.js';
import { decode, query, udpExchange } from '../helpers/dns.js';
import { until } from '../helpers/until.js';
import { startUpstream } from '../helpers/upstream.js';

// Serve-stale (RFC 8767) with a real upstream that is stopped: forwarded names keep their last
// answer (TTL 30 s), in-zone names never do, and `--serve-stale 0` turns it off on reload.

const CONFIG = `
services:
  - name: web
    endpoints:
      - address: 10.0.0.1
`;

const ask = async (port: number, name: string) => {
  const reply = await udpExchange(port, query(name), { timeoutMs: 3000 });
  if (!reply) throw new Error(`no answer for ${name}`);
  return decode(reply);
};
const records = (d: ReturnType<typeof decode>) => (d.answers ?? []).map((a) => `${(a as { data: string }).data}/${(a as { ttl: number }).ttl}`);

t.test('a stopped upstream: forwarded names answered stale, in-zone names as always', async (t) => {
  const up = await startUpstream(t, { records: { 'example.test': ['192.0.2.7'] }, ttl: 1 });
  const d = await startDaemon(t, { config: CONFIG, upstreams: [up.address], args: ['--upstream-timeout', '300ms'] });
  t.same(records(await ask(d.dnsPort, 'example.test')), ['192.0.2.7/1'], 'a fresh answer from the upstream');
  await up.close();

  // Once the 1 s TTL has run out, the upstream is asked (and does not answer), then the stale entry is served.
  const stale = await until('a stale answer', async () => {
    const r = await ask(d.dnsPort, 'example.test');
    return r.rcode === 'NOERROR' && records(r)[0] === '192.0.2.7/30' ? r : undefined;
  }, 20_000, 200);
  t.equal(stale.rcode, 'NOERROR');
  t.equal((await ask(d.dnsPort, 'never-asked.test')).rcode, 'SERVFAIL', 'a name never cached: SERVFAIL');

  const inZone = await ask(d.dnsPort, 'web.default.cluster.local');
  t.same(records(inZone), ['10.0.0.1/5'], 'in-zone names come from the registry with their own TTL');
  t.equal((await ask(d.dnsPort, 'nope.default.cluster.local')).rcode, 'NXDOMAIN', 'an unknown in-zone name is NXDOMAIN, not a stale answer');

  const metrics = await (await fetch(`${d.api}/metrics`)).text();
  t.match(metrics, /podman_swarm_dns_dns_stale_answers_total [1-9]/);
  t.match(metrics, /podman_swarm_dns_dns_queries_total\{type="A",rcode="NOERROR",source="stale",path="js"\} [1-9]/);
  const status = await runCli(['status', '--api-socket', d.socket]);
  t.match(status.stdout, /serve-stale 1h, [1-9]\d* stale answers? so far/, 'status shows the window and the count');

  writeConfig(d, `${CONFIG}serve-stale: 0\n`);
  d.proc.kill('SIGHUP');
  await until('the reload', () => /reloaded: applied serve-stale/.test(d.logs()));
  t.equal((await ask(d.dnsPort, 'example.test')).rcode, 'SERVFAIL', '--serve-stale 0: no stale answers');
  t.match((await runCli(['status', '--api-socket', d.socket])).stdout, /serve-stale off/);
});
