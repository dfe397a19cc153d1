import t from 'tap';
import * as packet from 'dns-packet';
import { startDaemon, writeConfig } from '../helpers/daemon.js';
import { dig, digShort, digStatus, udpExchange } from '../helpers/dns.js';
import { canonical, skip } from '../helpers/native-world.js';
import { expectLog } from '../helpers/until.js';

// The daemon serving UDP from the native threads, asked the way users ask (dig, and raw
// packets): the same answers as a daemon forced onto the JS path, the fallback when the addon is
// missing, and the path shown in status and metrics.

const CONFIG = `services:
  - name: web
    endpoints:
      - { address: 10.0.0.1, hostname: web-1, ports: { http: 8080/tcp } }
      - { address: 10.0.0.2, hostname: web-2, ports: { http: 8080/tcp } }
      - { address: "fd00::3", hostname: web-3, ports: { http: 8080/tcp } }
  - name: db
    namespace: infra
    endpoints:
      - { address: 10.0.1.1, ports: { pg: 5432/tcp } }
`;

t.test('dig against the native path', { skip }, async (t) => {
  const d = await startDaemon(t, { config: CONFIG, env: { PODMAN_SWARM_DNS_NATIVE: '1' }, args: ['--dns-threads', '2'] });
  await expectLog(t, d, /native DNS path: 2 UDP threads/);
  t.same(await digShort(d.dnsPort, 'web.default.cluster.local'), ['10.0.0.1', '10.0.0.2']);
  t.same(await digShort(d.dnsPort, 'WEB.Default.svc.cluster.local', 'AAAA'), ['fd00::3']);
  t.same(await digShort(d.dnsPort, '_http._tcp.web.default.svc.cluster.local', 'SRV'), [
    '0 10 8080 web-1.web.default.svc.cluster.local.', '0 10 8080 web-2.web.default.svc.cluster.local.', '0 10 8080 web-3.web.default.svc.cluster.local.',
  ]);
  t.same(await digShort(d.dnsPort, '-x', '10.0.0.2'), ['web-2.web.default.svc.cluster.local.']);
  t.equal(digStatus(await dig(['@127.0.0.1', '-p', String(d.dnsPort), 'nothing.default.cluster.local'])), 'NXDOMAIN');
  t.equal(digStatus(await dig(['@127.0.0.1', '-p', String(d.dnsPort), 'web.default.cluster.local', 'MX'])), 'NOERROR');
  // Forwarded names are handed to JS (the test upstream is a closed port: SERVFAIL).
  t.equal(digStatus(await dig(['@127.0.0.1', '-p', String(d.dnsPort), 'example.com'])), 'SERVFAIL');
  // TCP stays in JS, on the same port.
  t.same(await digShort(d.dnsPort, '+tcp', 'db.infra.cluster.local'), ['10.0.1.1']);
  const status = (await (await fetch(`${d.api}/api/v1/status`)).json()) as { dns: { path: string } };
  t.equal(status.dns.path, 'native');
  const metrics = await (await fetch(`${d.api}/metrics`)).text();
  t.match(metrics, /dns_queries_total\{type="A",rcode="NOERROR",source="zone",path="native"\} [1-9]/);
  t.match(metrics, /dns_queries_total\{type="A",rcode="SERVFAIL",source="failed",path="js"\} 1/);
});

t.test('the native and the JS daemon answer the same over UDP', { skip }, async (t) => {
  const fast = await startDaemon(t, { config: CONFIG, env: { PODMAN_SWARM_DNS_NATIVE: '1' } });
  const slow = await startDaemon(t, { config: CONFIG, env: { PODMAN_SWARM_DNS_NATIVE: '0' } });
  await expectLog(t, slow, /PODMAN_SWARM_DNS_NATIVE=0/);
  const names = ['web.default.cluster.local', 'Web.default.svc.cluster.local', 'web-1.web.default.svc.cluster.local', '_http._tcp.web.default.cluster.local',
    '_tcp.web.default.cluster.local', 'db.infra.cluster.local', 'nope.infra.cluster.local', 'infra.cluster.local', 'dns-version.cluster.local', 'CLUSTER.LOCAL', '2.0.0.10.in-addr.arpa'];
  const types = ['A', 'AAAA', 'SRV', 'SOA', 'NS', 'TXT', 'PTR', 'MX', 'ANY'];
  let compared = 0;
  const diffs: string[] = [];
  for (const name of names) {
    // Reverse names of other types are forwarded (and the test upstream never answers).
    for (const type of name.endsWith('.arpa') ? ['PTR'] : types) {
      for (const edns of [0, 512, 1232]) {
        const q = packet.encode({ id: 77, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name, type: type as 'A' }], additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: edns } as packet.Answer] : [] });
        const [a, b] = await Promise.all([udpExchange(fast.dnsPort, q), udpExchange(slow.dnsPort, q)]);
        if (!a || !b) {
          diffs.push(`${name} ${type}: no answer`);
          continue;
        }
        // The SOA serial is the start time of each daemon: mask it.
        const mask = (s: string) => s.replace(/serial[^0-9]*[0-9]+/g, 'serial');
        if (mask(canonical(a)) !== mask(canonical(b)) || a.length !== b.length) diffs.push(`${name} ${type} ${edns}:\n${canonical(a)}\n${canonical(b)}`);
        compared++;
      }
    }
  }
  t.same(diffs.slice(0, 3), []);
  t.equal(compared, (names.length - 1) * types.length * 3 + 3);
});

t.test('a missing addon falls back to the JS path with one warning', async (t) => {
  const d = await startDaemon(t, { config: CONFIG, env: { PODMAN_SWARM_DNS_NATIVE_ADDON: '/nonexistent/n5-addon.node', PODMAN_SWARM_DNS_NATIVE: '1' } });
  const warnings = d.events().filter((e) => typeof e.msg === 'string' && /native addon/.test(e.msg));
  t.equal(warnings.length, 1, 'one log line');
  t.equal(warnings[0]!.level, 40, 'a warning');
  t.match(String(warnings[0]!.msg), /serving DNS from the JS path/);
  t.same(await digShort(d.dnsPort, 'web.default.cluster.local'), ['10.0.0.1', '10.0.0.2']);
  const status = (await (await fetch(`${d.api}/api/v1/status`)).json()) as { dns: { path: string } };
  t.equal(status.dns.path, 'js');
});

t.test('a reload reaches the native answers (TTL, services)', { skip }, async (t) => {
  const d = await startDaemon(t, { config: CONFIG, env: { PODMAN_SWARM_DNS_NATIVE: '1' } });
  const ask = async (name: string) => {
    const r = await udpExchange(d.dnsPort, packet.encode({ id: 5, type: 'query', questions: [{ name, type: 'A' }] }));
    return packet.decode(r!).answers!.map((a) => `${(a as { data: string }).data}/${(a as { ttl: number }).ttl}`).sort();
  };
  t.same(await ask('db.infra.cluster.local'), ['10.0.1.1/5']);
  writeConfig(d, `${CONFIG}  - name: api\n    endpoints:\n      - address: 10.0.0.9\nttl: 30s\n`);
  d.proc.kill('SIGHUP');
  // The table follows within a moment of the reload; poll the user-visible answer.
  let answers: string[] = [];
  for (let i = 0; i < 100; i++) {
    answers = await ask('api.default.cluster.local');
    if (answers.length) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.same(answers, ['10.0.0.9/30'], 'a new service, with the new TTL');
  // A new service can be patched in before the whole table that a TTL change needs (a table
  // still compiling when the reload came): the old names follow with that table, within moments.
  let old: string[] = [];
  for (let i = 0; i < 250; i++) {
    old = await ask('db.infra.cluster.local');
    if (old[0] === '10.0.1.1/30') break;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.same(old, ['10.0.1.1/30'], 'old names carry the new TTL too');
  const metrics = await (await fetch(`${d.api}/metrics`)).text();
  t.notMatch(metrics, /dns_queries_total\{type="A",rcode="NOERROR",source="zone",path="js"\}/, 'all answered natively');
});
