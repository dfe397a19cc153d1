import t from 'tap';
import { runCli, startDaemon } from '../helpers/daemon.js';

// `podman-swarm-dns explain` and /api/v1/explain against a real daemon: text and JSON, the real
// answer, exit codes like the other read commands, and what a malformed question gets.

const CONFIG = `services:
  - name: web
    endpoints:
      - { address: 10.0.0.1, hostname: web-1, ports: { http: 8080/tcp } }
      - { address: 10.0.0.2, hostname: web-2, ports: { http: 8080/tcp } }
`;

t.test('explain', async (t) => {
  const d = await startDaemon(t, { config: CONFIG, args: ['--forward-allow', 'example.org'] });
  const cli = (...args: string[]) => runCli([...args, '--api-socket', d.socket]);

  await t.test('a service: parse, endpoints in, and the real answer', async (t) => {
    const r = await cli('explain', 'web.default.svc.cluster.local');
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /service web in namespace default/);
    t.match(r.stdout, /\+ \S+ \(this host\) web-1 10\.0\.0\.1: in: healthy and reachable/);
    t.match(r.stdout, /answer: NOERROR/);
    const j = await cli('explain', 'web.default.svc.cluster.local', 'A', '--json');
    const e = JSON.parse(j.stdout);
    t.equal(e.service.endpoints.length, 2);
    t.same(e.answer.answers.map((a: { data: string }) => a.data).sort(), ['10.0.0.1', '10.0.0.2']);
    const q = JSON.parse((await cli('query', 'web.default.svc.cluster.local', '--json')).stdout);
    t.same(e.answer.answers.map((a: { data: string }) => a.data).sort(), q.answers.map((a: { data: string }) => a.data).sort(), 'the same records as `query`');
  });

  await t.test('exit codes: NXDOMAIN 4, REFUSED 1, malformed 2', async (t) => {
    const nx = await cli('explain', 'nope.default.cluster.local');
    t.equal(nx.code, 4);
    t.match(nx.stdout, /no service nope in namespace default: NXDOMAIN/);
    const refused = await cli('explain', 'www.example.com');
    t.equal(refused.code, 1);
    t.match(refused.stdout, /forward-allow: +not under --forward-allow example\.org: REFUSED/);
    t.match(refused.stdout, /answer: REFUSED/);
    const bad = await cli('explain', 'a..b.cluster.local');
    t.equal(bad.code, 2);
    t.match(bad.stderr, /"a\.\.b\.cluster\.local" is malformed: label 2 is empty/);
    t.equal((await cli('explain')).code, 2, 'no name: usage');
  });

  await t.test('API: the client to explain for, and 400s that say what is wrong', async (t) => {
    const far = await (await fetch(`${d.api}/api/v1/explain?name=www.example.org&client=192.0.2.77`)).json();
    t.match(far, { client: '192.0.2.77', forward: { recursion: { allowed: false } }, answer: { rcode: 'REFUSED' } });
    for (const [query, why] of [
      ['', /name= is required/],
      ['name=x&type=BOGUS', /type=BOGUS is not a DNS record type/],
      ['name=x&client=nothere', /client=nothere is not an IP address/],
      [`name=${'a'.repeat(70)}.org`, /70 bytes long/],
    ] as const) {
      const res = await fetch(`${d.api}/api/v1/explain?${query}`);
      t.equal(res.status, 400, query);
      t.match(((await res.json()) as { error: string }).error, why);
    }
  });
});
