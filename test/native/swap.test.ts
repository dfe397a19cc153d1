import t from 'tap';
import { createSocket } from 'node:dgram';
import { request } from 'node:http';
import * as packet from 'dns-packet';
import { startDaemon } from '../helpers/daemon.js';
import { skip } from '../helpers/native-world.js';

// Table swaps under load: while the registry changes 100 times a second (API registrations), a
// stream of UDP queries must only ever see complete, consistent answers: every SRV answer's port
// belongs to the additional address of the same version of the endpoint, never a mix.

const VERSIONS = [
  { address: '10.5.0.1', port: 1111 },
  { address: '10.6.0.2', port: 2222 },
];

function post(api: string, path: string, body: unknown, auth: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${api}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** The flip SRV answer as "port address", from a socket of its own (retried: under the load
 *  above the daemon's receive queue may drop a query). */
async function probe(dnsPort: number): Promise<string> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      const id = 1000 + attempt;
      const q = packet.encode({ id, type: 'query', questions: [{ name: '_p._tcp.flip.default.svc.cluster.local', type: 'SRV' }] });
      const reply = await new Promise<packet.DecodedPacket | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), 1000);
        sock.on('message', (m) => {
          const p = packet.decode(m);
          if (p.id === id) {
            clearTimeout(timer);
            resolve(p);
          }
        });
        sock.send(q, dnsPort, '127.0.0.1');
      });
      sock.removeAllListeners('message');
      if (reply) {
        const srv = (reply.answers ?? []).map((a) => (a as { data: { port: number } }).data.port);
        const add = (reply.additionals ?? []).map((a) => (a as { data: string }).data);
        return `${srv.join(',')} ${add.join(',')}`;
      }
    }
    return 'no reply to 5 queries';
  } finally {
    sock.close();
  }
}

t.test('answers stay whole while the table is swapped 100 times a second', { skip }, async (t) => {
  const d = await startDaemon(t, {
    config: 'services:\n  - name: steady\n    endpoints:\n      - address: 10.9.0.1\n',
    env: { PODMAN_SWARM_DNS_NATIVE: '1' },
  });
  const auth = d.auth();
  const flip = (v: number) => post(d.api, '/api/v1/services/default/flip/endpoints', { id: 'f1', hostname: 'f1', address: VERSIONS[v]!.address, ports: { p: `${VERSIONS[v]!.port}/tcp` } }, auth);
  t.equal(await flip(0), 201);

  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  t.teardown(() => sock.close());
  const seen = { srv: [0, 0], steady: 0, bad: [] as string[], replies: 0 };
  sock.on('message', (m) => {
    seen.replies++;
    let p: packet.DecodedPacket;
    try {
      p = packet.decode(m);
    } catch (e) {
      seen.bad.push(`undecodable: ${(e as Error).message}`);
      return;
    }
    const q = p.questions?.[0];
    if (q?.type === 'SRV') {
      const srv = (p.answers ?? []).map((a) => (a as { data: { port: number } }).data.port);
      const add = (p.additionals ?? []).map((a) => (a as { data: string }).data);
      const v = VERSIONS.findIndex((x) => x.port === srv[0]);
      if (srv.length !== 1 || add.length !== 1 || v < 0 || VERSIONS[v]!.address !== add[0]) seen.bad.push(`mixed SRV answer: ${(p as { rcode?: string }).rcode} ports ${srv} addresses ${add}`);
      else seen.srv[v]!++;
    } else if (q?.type === 'A') {
      const a = (p.answers ?? []).map((x) => (x as { data: string }).data);
      if (a.length !== 1 || a[0] !== '10.9.0.1') seen.bad.push(`steady service answered ${a}`);
      else seen.steady++;
    }
  });
  const srvQuery = packet.encode({ id: 1, type: 'query', questions: [{ name: '_p._tcp.flip.default.svc.cluster.local', type: 'SRV' }] });
  const aQuery = packet.encode({ id: 2, type: 'query', questions: [{ name: 'steady.default.cluster.local', type: 'A' }] });

  let running = true;
  const load = (async () => {
    while (running) {
      for (let i = 0; i < 20; i++) {
        sock.send(srvQuery, d.dnsPort, '127.0.0.1');
        sock.send(aQuery, d.dnsPort, '127.0.0.1');
      }
      await new Promise((r) => setTimeout(r, 1));
    }
  })();
  // 200 changes at (about) 100 per second. Every 25th change is checked right after its
  // acknowledgement: a small registry's table is swapped within the change, so a query sent
  // then gets that version (the load above only shows that answers stay whole, not which).
  const statuses = new Set<number>();
  const afterChange: string[] = [];
  for (let i = 1; i <= 200; i++) {
    const started = Date.now();
    statuses.add(await flip(i % 2));
    if (i % 25 === 0) {
      const want = VERSIONS[i % 2]!;
      const got = await probe(d.dnsPort);
      if (got !== `${want.port} ${want.address}`) afterChange.push(`change ${i}: wanted ${want.port} ${want.address}, got ${got}`);
    }
    const rest = 10 - (Date.now() - started);
    if (rest > 0) await new Promise((r) => setTimeout(r, rest));
  }
  running = false;
  await load;
  t.same([...statuses].filter((s) => s !== 200 && s !== 201), [], 'every change accepted (201 created, 200 replaced)');
  t.same(afterChange, [], 'a query right after a change gets the version just written');
  await new Promise((r) => setTimeout(r, 300));
  t.same(seen.bad.slice(0, 5), [], `no malformed or mixed answer (${seen.srv.join(' / ')} SRV answers of each version, ${seen.steady} steady, ${seen.replies} replies)`);
  t.ok(seen.srv[0]! + seen.srv[1]! > 0 && seen.steady > 0, 'the queries under load were answered');
  const metrics = await (await fetch(`${d.api}/metrics`)).text();
  t.match(metrics, /dns_queries_total\{type="SRV",rcode="NOERROR",source="zone",path="native"\} [1-9]/, 'answered by the native path');
});
