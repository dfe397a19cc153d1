import t from 'tap';
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import dnsPacket from 'dns-packet';
import pino from 'pino';
import { DnsHandler } from '../../src/dns/handler.js';
import { readFile } from 'node:fs/promises';
import { parseSocketTable, QuerierOwners, socketUid } from '../../src/dns/querier-owner.js';
import { isRoot } from '../helpers/netns.js';
import { world } from '../helpers/native-world.js';

// Who asks, for queries from this host's own address: the uid of the sending socket, read from
// /proc/net/udp (real sockets of this process and of another user's process), and the container
// names the handler answers with it: a rootless user's own, root's for everyone else. The read
// function is wrapped once, to count reads (the bound on work a burst of queries causes).

// /proc/net/udp as a little-endian kernel prints it: 127.0.0.1:53 (uid 0), 0.0.0.0:40000 (uid
// 1000), 10.0.0.5:40001 (uid 1001); /proc/net/udp6: ::ffff:10.0.0.5:40002 (uid 1002), :::40003 (uid 1003).
const UDP4 = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0
  2: 00000000:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 2 2 0000000000000000 0
  3: 0500000A:9C41 00000000:0000 07 00000000:00000000 00:00000000 00000000  1001        0 3 2 0000000000000000 0
  garbage line
`;
const UDP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 0000000000000000FFFF00000500000A:9C42 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000  1002        0 4 2 0000000000000000 0
  2: 00000000000000000000000000000000:9C43 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000  1003        0 5 2 0000000000000000 0
`;

t.test('socketUid: the socket at the address and port, or at the wildcard address', async (t) => {
  t.equal(socketUid(parseSocketTable(UDP4), '127.0.0.1', 53, true), 0);
  t.equal(socketUid(parseSocketTable(UDP4), '10.0.0.5', 40000, true), 1000, 'an unbound sender (0.0.0.0) at that port');
  t.equal(socketUid(parseSocketTable(UDP4), '10.0.0.5', 40001, true), 1001);
  t.equal(socketUid(parseSocketTable(UDP4), '10.0.0.6', 40001, true), undefined, 'another address at that port: not it');
  t.equal(socketUid(parseSocketTable(UDP4), '10.0.0.5', 40009, true), undefined, 'no socket at that port');
  t.equal(socketUid(parseSocketTable(UDP6), '10.0.0.5', 40002, true), 1002, 'a dual-stack socket bound to the v4-mapped address');
  t.equal(socketUid(parseSocketTable(UDP6), '10.0.0.5', 40003, true), 1003, 'a dual-stack socket on the wildcard address');
  t.equal(socketUid(parseSocketTable(UDP4.replace('0100007F', '7F000001')), '127.0.0.1', 53, false), 0, 'a big-endian kernel prints the address as written');
  t.equal(socketUid(parseSocketTable(UDP4), 'not an ip', 53, true), undefined);
  t.equal(socketUid(parseSocketTable(UDP4), '127.0.0.1', 0, true), undefined);
});

async function udpSocket(t: { teardown(fn: () => unknown): void }): Promise<Socket> {
  const s = createSocket('udp4');
  t.teardown(() => s.close());
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

/** A UDP socket of uid 65534 (nobody) on 127.0.0.1, in a process of that user: its port. */
async function nobodysSocket(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const code = "const s=require('dgram').createSocket('udp4');s.bind(0,'127.0.0.1',()=>console.log(s.address().port));setTimeout(()=>{},60000)";
  const p = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void p.kill('SIGKILL'));
  const [line] = (await once(p.stdout!, 'data')) as [Buffer];
  return Number(line.toString().trim());
}

t.test('QuerierOwners: the uid of a real socket on this host', async (t) => {
  const owners = new QuerierOwners();
  const s = await udpSocket(t);
  t.equal(await owners.uid({ address: '127.0.0.1', port: s.address().port, transport: 'udp' }), process.getuid!(), "this process's own socket");
  t.equal(await owners.uid({ address: '127.0.0.1', port: s.address().port, transport: 'tcp' }), undefined, 'no TCP socket there');
  if (isRoot) {
    const port = await nobodysSocket(t);
    t.equal(await owners.uid({ address: '127.0.0.1', port, transport: 'udp' }), 65534, "another user's socket: that user");
  }
});

t.test('a burst of lookups shares the reads of /proc/net: one running and one waiting per table', async (t) => {
  const reads: string[] = [];
  const owners = new QuerierOwners((path) => {
    reads.push(path);
    return readFile(path, 'latin1');
  });
  const sockets = await Promise.all(Array.from({ length: 20 }, () => udpSocket(t)));
  const asked: Array<Promise<number | undefined>> = [];
  for (let round = 0; round < 10; round++) {
    for (const s of sockets) asked.push(owners.uid({ address: '127.0.0.1', port: s.address().port, transport: 'udp' }));
    await new Promise((r) => setImmediate(r));
  }
  const uids = await Promise.all(asked);
  t.equal(uids.filter((u) => u === process.getuid!()).length, 200, 'all 200 lookups find the socket');
  t.ok(reads.length <= 20, `${reads.length} reads of /proc/net/udp for 200 lookups in 10 turns`);
  t.same([...new Set(reads)], ['/proc/net/udp'], 'found in the IPv4 table: the IPv6 one is not read');
});

t.test("the handler: a query from this host's address gets the names of the user whose socket sent it", { skip: !isRoot && 'needs root (a process of another user)' }, async (t) => {
  const w = world();
  t.teardown(() => w.close());
  w.clients.setHostAddresses(['127.0.0.1']);
  // Root's "db" is on n1 (world); user 65534 follows a Podman with its own "db" on a same-named network.
  w.containerNames.setOwnerContainers(65534, [{ names: ['db'], networks: { n1: ['10.88.0.99'] } }]);
  const handler = new DnsHandler({
    zone: w.zone, clients: w.clients, forwarder: w.forwarder, metrics: { query: () => undefined, malformed: () => undefined }, log: pino({ level: 'silent' }),
    containerNames: w.containerNames, querierUid: (q) => new QuerierOwners().uid(q),
  });
  const ask = async (port: number): Promise<string[]> => {
    const raw = dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'db' }] });
    const reply = await handler.handle(raw, { address: '127.0.0.1', port, transport: 'udp' });
    return (dnsPacket.decode(reply!).answers ?? []).map((a) => String((a as { data?: unknown }).data));
  };
  t.same(await ask(await nobodysSocket(t)), ['10.88.0.99'], "the user's own db");
  t.same(await ask((await udpSocket(t)).address().port), ['10.88.0.20'], "root's socket: root's db");
});
