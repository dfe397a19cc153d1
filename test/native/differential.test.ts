import t from 'tap';
import * as packet from 'dns-packet';
import { NativeCache } from '../../src/native/cache.js';
import { LiveTable } from '../../src/native/live-table.js';
import { reverseName } from '../../src/native/table.js';
import { startUpstream } from '../helpers/upstream.js';
import { ep, node } from '../helpers/registry.js';
import { addon, canonical, CLIENTS, localEndpoints, remoteEndpoints, skip, world, type World } from '../helpers/native-world.js';

// Differential test: the same query corpus answered by the native fast path and by the JS path
// (the daemon's own handler, over the same registry) gives the same bytes — record order
// (rotation by query ID), compression and truncation included. Queries the native path hands to
// JS are answered by JS on both paths, so they are counted but cannot differ.

let seed = 0x5eed1234;
const rand = (n: number): number => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
};
const pick = <T>(list: readonly T[]): T => list[rand(list.length)]!;

function names(): string[] {
  const out = ['cluster.local', 'dns-version.cluster.local', 'dns.cluster.local', 'ns.dns.cluster.local', 'svc.cluster.local'];
  for (const ns of ['default', 'infra', 'svc', 'nope']) out.push(`${ns}.cluster.local`, `${ns}.svc.cluster.local`);
  const eps = [...localEndpoints(), ...remoteEndpoints()];
  for (const e of eps.filter((_, i) => i < 12 || i % 7 === 0)) {
    for (const base of [`${e.service}.${e.namespace}.cluster.local`, `${e.service}.${e.namespace}.svc.cluster.local`]) {
      out.push(base, `${e.hostname}.${base}`, `_http._tcp.${base}`, `_tcp.${base}`, `_udp.${base}`, `_dns._udp.${base}`, `_metrics._tcp.${base}`, `_http._udp.${base}`, `nohost.${base}`, `a.b.${base}`);
    }
    for (const ip of e.addresses) out.push(reverseName(ip)!);
  }
  out.push(
    'nothing.default.cluster.local', 'x.y.z.w.v.cluster.local', 'ns.dns.cluster.local', 'other.dns.cluster.local',
    reverseName('10.9.9.9')!, reverseName('fd00::99')!, '1.0.0.10.in-addr.arpa', 'example.com', 'cluster.local.example.com',
    'xcluster.local', 'web.default.cluster.locall', 'we\\b.default.cluster.local', 'web.default.cluster.local.', 'a',
    // The VIP of the vip-mode service.
    reverseName('10.223.1.1')!,
    // Podman container names (two networks) and their reverse names.
    'db', 'database', 'db.dns.podman', 'cache', 'cache.dns.podman', 'v6only', 'web-1', 'nobody', 'nobody.dns.podman',
    reverseName('10.88.0.20')!, reverseName('10.89.0.30')!, reverseName('fd89::30')!, reverseName('10.88.0.21')!,
    // Names where the `svc.` reading and the namespace "svc" meet.
    'svc.svc.cluster.local', 'svc.svc.svc.cluster.local', 'svc.svc.svc.svc.cluster.local', 'web.default.svc.svc.cluster.local',
    'web-1.web.svc.cluster.local', 'default.svc.cluster.local', 'dns-version.svc.cluster.local', 'ns.dns.svc.cluster.local', 'down.default.svc.cluster.local',
  );
  return out;
}

const CONTAINER_NAMES = ['db', 'database', 'db.dns.podman', 'cache', 'cache.dns.podman', 'v6only', 'web-1', 'nobody', reverseName('10.88.0.20')!, reverseName('fd89::30')!];
const TYPES = ['A', 'AAAA', 'SRV', 'PTR', 'SOA', 'NS', 'TXT', 'MX', 'CAA', 'ANY', 'A', 'A', 'SRV'];

function caseVariant(name: string): string {
  switch (rand(3)) {
    case 0:
      return name;
    case 1:
      return name.toUpperCase();
    default:
      return [...name].map((c) => (rand(2) ? c.toUpperCase() : c)).join('');
  }
}

function corpusQuery(name: string): Buffer {
  const edns = rand(6);
  const additionals: packet.Answer[] = [];
  if (edns > 0) {
    const opt: Record<string, unknown> = { type: 'OPT', name: '.', udpPayloadSize: pick([512, 1232, 4096, 600, 100, 1400]) };
    if (edns === 2) opt.flags = packet.DNSSEC_OK;
    if (edns === 3) opt.options = [{ code: 10, data: Buffer.from('0011223344556677', 'hex') }]; // a cookie, as dig sends
    if (edns === 4) opt.ednsVersion = 1;
    additionals.push(opt as unknown as packet.Answer);
  }
  return packet.encode({
    id: rand(65536),
    type: 'query',
    flags: pick([packet.RECURSION_DESIRED, 0, packet.RECURSION_DESIRED | packet.CHECKING_DISABLED]),
    questions: [{ name: caseVariant(name), type: pick(TYPES) as 'A', class: rand(40) === 0 ? 'CH' : 'IN' }],
    additionals,
  });
}

/**
 * One corpus query for `name` answered by both paths: 'js' when the native path hands it to
 * JS, else the kind of answer (type/rcode/TC) and the difference, if any.
 */
function compare(w: World, name: string, container: boolean, q = corpusQuery(name)): 'js' | { kind?: string; difference?: string; container: boolean } {
  const client = container && rand(4) ? pick(['10.88.0.7', '10.89.3.4']) : pick(CLIENTS);
  const fast = addon!.answer(q, client);
  if (fast === undefined) return 'js';
  const qname = packet.decode(q).questions![0]!.name;
  const isContainer = /^(db|database|cache|v6only|web-1)(\.dns\.podman)?$/i.test(qname);
  const slow = w.handler.handle(q, { address: client, port: 5353, transport: 'udp' });
  if (slow instanceof Promise) return { container: isContainer, difference: `${qname}: native answered, JS forwarded` };
  if (slow === null || fast === null) return { container: isContainer, difference: slow !== fast ? `drop mismatch for ${q.toString('hex')}` : undefined };
  const d = packet.decode(fast);
  const kind = `${d.questions?.[0]?.type}/${(d as { rcode?: string }).rcode}/${d.flag_tc ? `TC${d.answers!.length > 0 ? '+records' : ''}` : ''}`;
  if (fast.equals(slow)) return { kind, container: isContainer };
  return { kind, container: isContainer, difference: `${qname} from ${client}:\n native ${canonical(fast)} ${fast.toString('hex')}\n js     ${canonical(slow)} ${slow.toString('hex')}` };
}

t.test('native and JS answers are the same over an 18 000-query corpus', { skip }, async (t) => {
  for (const [preferLocal, failOpen, udpAnswerLimit] of [[true, false, 0], [false, false, 0], [true, true, 0], [true, false, 3]] as const) {
    const w = world({ preferLocal, failOpen, udpAnswerLimit });
    t.teardown(() => w.close());
    w.install();
    const all = names();
    let native = 0;
    let toJs = 0;
    let containers = 0;
    const differences: string[] = [];
    const kinds = new Map<string, number>();
    for (let i = 0; i < 6000; i++) {
      // One query in eight is a container name, mostly from the two bridge networks.
      const container = rand(8) === 0;
      const r = compare(w, container ? pick(CONTAINER_NAMES) : pick(all), container);
      if (r === 'js') {
        toJs++;
        continue;
      }
      native++;
      if (r.container) containers++;
      if (r.kind) kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
      if (r.difference && differences.length < 5) differences.push(r.difference);
    }
    const config = `prefer-local ${preferLocal}, fail-open ${failOpen}, udp-answer-limit ${udpAnswerLimit}`;
    t.same(differences, [], `${config}: no differences`);
    t.ok(native > 3500, `${config}: ${native} answered natively, ${toJs} handed to JS`);
    t.ok(containers > 200, `${config}: ${containers} container-name queries answered natively`);
    const expected = ['A/NOERROR/', 'AAAA/NOERROR/', 'SRV/NOERROR/', 'PTR/NOERROR/', 'SOA/NOERROR/', 'NS/NOERROR/', 'TXT/NOERROR/', 'A/NXDOMAIN/', 'MX/NOERROR/', 'ANY/NOERROR/', 'ANY/NXDOMAIN/'];
    // Truncation keeps the records that fit (an answer limit of 3 leaves nothing to truncate).
    if (udpAnswerLimit === 0) expected.push('A/NOERROR/TC+records', 'SRV/NOERROR/TC+records');
    for (const k of expected) {
      t.ok((kinds.get(k) ?? 0) > 0, `corpus covers ${k} (${kinds.get(k) ?? 0})`);
    }
  }
});

t.test('answers rotate and local clients get this host\'s endpoints first', { skip }, async (t) => {
  const w = world();
  t.teardown(() => w.close());
  w.install();
  const firsts = new Set<string>();
  for (let i = 0; i < 4; i++) {
    for (const client of ['10.88.0.7', '10.89.3.4']) {
      const r = packet.decode(addon!.answer(packet.encode({ id: i, type: 'query', questions: [{ name: 'web.default.cluster.local', type: 'A' }] }), client)!);
      const ips = r.answers!.map((a) => (a as { data: string }).data);
      t.same(ips.slice(0, 2).sort(), ['10.0.0.1', '10.0.0.2'], `bridge client ${client}: local endpoints first`);
      t.same(ips.slice(2).sort(), ['10.0.1.1', '10.0.1.2']);
      firsts.add(ips[0]!);
    }
  }
  t.same([...firsts].sort(), ['10.0.0.1', '10.0.0.2'], 'the first record rotates');
  const vip = packet.decode(addon!.answer(packet.encode({ id: 1, type: 'query', questions: [{ name: 'api.default.cluster.local', type: 'A' }] }), '10.88.0.7')!);
  t.same(vip.answers!.map((a) => (a as { data: string }).data), ['10.223.1.1'], 'a vip-mode service answers its VIP');
  const far = packet.decode(addon!.answer(packet.encode({ id: 1, type: 'query', questions: [{ name: 'web.default.cluster.local', type: 'A' }] }), '192.0.2.50')!);
  t.equal(far.answers!.length, 4, 'an off-host client gets all endpoints');
  t.notOk((far.flags! & 0x80) !== 0, 'and no recursion-available flag');
});

t.test('container names are answered natively per source network', { skip }, async (t) => {
  const w = world();
  t.teardown(() => w.close());
  w.install();
  const ask = (name: string, type: string, client: string) => {
    const r = addon!.answer(packet.encode({ id: 7, type: 'query', questions: [{ name, type: type as 'A' }] }), client);
    return r ? packet.decode(r).answers!.map((a) => `${(a as { data: string }).data}/${(a as { ttl: number }).ttl}`) : r;
  };
  t.same(ask('db', 'A', '10.88.0.7'), ['10.88.0.20/0'], 'network n1 sees its db');
  t.same(ask('DB', 'A', '10.89.3.4'), ['10.89.0.30/0'], 'network n2 sees its own db, any case');
  t.same(ask('db', 'AAAA', '10.89.3.4'), ['fd89::30/0']);
  t.same(ask('cache.dns.podman', 'A', '10.88.0.7'), ['10.88.0.21/0']);
  t.equal(ask('cache.dns.podman', 'A', '10.89.3.4'), undefined, 'a network without it: the JS path decides (forward or refuse)');
  t.equal(ask('db', 'A', '192.0.2.50'), undefined, 'no network in common: not answered natively');
});

t.test('this host\'s own addresses: recursion and every network\'s container names, on both paths', { skip }, async (t) => {
  const w = world();
  t.teardown(() => w.close());
  w.clients.setHostAddresses(['10.223.0.10', '192.0.2.7']);
  w.install();
  const q = (name: string, type = 'A', id = 9) => packet.encode({ id, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name, type: type as 'A' }] });
  for (const client of ['10.223.0.10', '192.0.2.7']) {
    const fast = addon!.answer(q('cache'), client);
    t.ok(fast, `${client}: a container name answered natively`);
    t.same(packet.decode(fast!).answers!.map((a) => (a as { data: string }).data), ['10.88.0.21']);
    t.ok(fast!.equals(w.handler.handle(q('cache'), { address: client, port: 53, transport: 'udp' }) as Buffer), 'the same bytes from JS');
    const web = packet.decode(addon!.answer(q('web.default.cluster.local'), client)!);
    t.ok((web.flags! & 0x80) !== 0, 'recursion available');
    t.same(web.answers!.slice(0, 2).map((a) => (a as { data: string }).data).sort(), ['10.0.0.1', '10.0.0.2'], 'prefer-local applies');
    const outside = w.handler.handle(q('example.com'), { address: client, port: 53, transport: 'udp' });
    t.ok(outside instanceof Promise, 'an outside name is forwarded, not refused');
    await outside;
  }
  t.equal(addon!.answer(q('cache'), '192.0.2.50'), undefined, 'another address: not a container name here');
  const refused = w.handler.handle(q('example.com'), { address: '192.0.2.50', port: 53, transport: 'udp' }) as Buffer;
  t.equal(refused.readUInt16BE(2) & 0xf, 5, 'and REFUSED for outside names');
});

t.test('cached forwarded answers: native and JS send the same bytes, TTLs aged alike', { skip }, async (t) => {
  const records: Record<string, string[]> = {};
  for (let i = 0; i < 40; i++) records[`host${i}.example.test`] = i % 3 ? [`192.0.2.${i}`] : [`192.0.2.${i}`, `192.0.2.${100 + i}`, `192.0.2.${200 - i}`];
  const many = Array.from({ length: 60 }, (_, i) => `198.51.100.${i}`);
  records['many.example.test'] = many;
  const up = await startUpstream(t, {
    records,
    ttl: 120,
    extra: { 'alias.example.test': [{ type: 'CNAME', name: 'alias.example.test', ttl: 50, data: 'host1.example.test' }] },
  });
  const w = world({ upstream: { host: '127.0.0.1', port: up.port }, cacheSize: 1000 });
  t.teardown(() => {
    w.close();
    addon!.cacheConfigure(0, true);
  });
  w.forwarder.follow(new NativeCache(addon!));
  w.install();
  const outside = [...Object.keys(records), 'alias.example.test', 'missing.example.test', 'nothing.example.org'];
  const recursing = ['127.0.0.1', '10.88.0.7', '10.89.3.4', '::1'];
  const outsideQuery = (name: string, type: string, shape: number, id = rand(65536)): Buffer => packet.encode({
    id,
    type: 'query',
    flags: packet.RECURSION_DESIRED | (shape & 8 ? packet.CHECKING_DISABLED : 0),
    questions: [{ name: caseVariant(name), type: type as 'A' }],
    additionals: shape & 3 ? [{ type: 'OPT', name: '.', udpPayloadSize: shape & 4 ? 512 : 1232, flags: (shape & 3) === 2 ? packet.DNSSEC_OK : 0 } as unknown as packet.Answer] : [],
  });
  const keys = outside.flatMap((name) => ['A', 'AAAA', 'TXT'].flatMap((type) => [0, 1, 2, 5, 8, 9].map((shape) => ({ name, type, shape }))));
  const js = async (q: Buffer, client: string): Promise<Buffer> => (await w.handler.handle(q, { address: client, port: 5353, transport: 'udp' }))!;

  // Warm both caches: JS forwards each question once; its answer is installed natively too.
  const early: string[] = [];
  for (const k of keys) {
    const q = outsideQuery(k.name, k.type, k.shape);
    // Shape 5 differs from shape 1 only in the EDNS size: the same question to both caches.
    if (k.shape !== 5 && addon!.answer(q, '127.0.0.1') !== undefined) early.push(`${k.name}/${k.type}/${k.shape}`);
    await js(q, '127.0.0.1');
  }
  t.same(early, [], `none of ${keys.length} questions answered natively before JS forwarded it`);
  const upstreamQueries = up.udpQueries;

  const compare = async (round: string): Promise<{ native: number; toJs: number; aged: number }> => {
    const differences: string[] = [];
    let native = 0;
    let toJs = 0;
    let aged = 0;
    for (let i = 0; i < 3000; i++) {
      const k = pick(keys);
      const client = pick(recursing);
      // Both caches stored the answer one after the other, microseconds apart (milliseconds on a
      // loaded machine): for that long after each whole second of age they can differ by one.
      // A real difference stays when asked again later.
      let same = false;
      let last = '';
      for (let attempt = 0; attempt < 4 && !same; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, 100 * attempt + 37));
        const q = outsideQuery(k.name, k.type, k.shape);
        const fast = addon!.answer(q, client);
        const slow = await js(q, client);
        if (fast === undefined) {
          toJs++;
          same = true;
          // Only a reply too big for the client's UDP size is left to JS, which truncates it.
          if (!(slow.readUInt16BE(2) & 0x0200) && differences.length < 5) differences.push(`${k.name}/${k.type}/${k.shape}: handed to JS, which answered ${slow.length} bytes without TC`);
          continue;
        }
        same = fast !== null && fast.equals(slow);
        last = `${k.name}/${k.type}/${k.shape} from ${client}:\n native ${fast?.toString('hex')}\n js     ${slow.toString('hex')}`;
        if (same) {
          native++;
          const d = packet.decode(fast!);
          if ([...(d.answers ?? []), ...(d.authorities ?? [])].some((r) => (r as { ttl: number }).ttl < (r.type === 'SOA' ? 60 : r.type === 'CNAME' ? 50 : 120))) aged++;
        }
      }
      if (!same && differences.length < 5) differences.push(last);
    }
    t.same(differences, [], `${round}: no differences`);
    return { native, toJs, aged };
  };

  const fresh = await compare('fresh');
  t.ok(fresh.native > 2500, `fresh: ${fresh.native} answered from the native cache, ${fresh.toJs} handed to JS`);
  t.equal(up.udpQueries, upstreamQueries, 'nothing asked upstream again');
  // Let the entries age by at least one whole second, then again: both paths lower the TTLs alike.
  await new Promise((r) => setTimeout(r, 1100));
  const older = await compare('aged');
  t.ok(older.native > 2500 && older.aged === older.native, `aged: ${older.native} native answers, ${older.aged} with lowered TTLs`);

  // Clients that may not recurse get nothing from the cache: JS refuses them.
  const leaked: string[] = [];
  for (const k of keys) {
    const q = outsideQuery(k.name, k.type, k.shape);
    if (addon!.answer(q, '192.0.2.50') !== undefined || ((await js(q, '192.0.2.50')).readUInt16BE(2) & 0xf) !== 5) leaked.push(`${k.name}/${k.type}/${k.shape}`);
  }
  t.same(leaked, [], 'a client that may not recurse: nothing from the native cache, REFUSED by JS');
});

t.test('a table patched change by change answers as the JS path after every change', { skip }, async (t) => {
  for (const preferLocal of [true, false]) {
    const w = world({ preferLocal });
    const sink = { set: (b: Buffer, staged: boolean) => addon!.setTable(b, staged), patch: (p: Buffer) => addon!.patchTable(p), commit: () => addon!.commitTable() };
    const errors: Error[] = [];
    const table = new LiveTable(w.registry, w.zone, w.clients, sink, (e) => errors.push(e), w.containerNames);
    w.containerNames.onChange = () => table.containersChanged();
    t.teardown(() => {
      table.close();
      w.close();
    });
    table.start();
    for (let i = 0; i < 1000 && table.builds === 0; i++) await new Promise((r) => setImmediate(r));
    t.equal(table.builds, 1, 'the whole table is in (built in parts, staged)');
    const vip = (service: string, id: string, address: string) => ep(service, address, { id, hostname: id, mode: 'vip', ports: { http: { port: 80, protocol: 'tcp' } } });
    const steps: Array<[string, () => void]> = [
      ['a remote node leaves', () => w.registry.removeNode('other')],
      ['it comes back with other endpoints, one in a new namespace', () => w.registry.apply(node('other', 2, [...remoteEndpoints().slice(1), ep('fresh', '10.0.7.1', { id: 'f1', hostname: 'fresh-1', namespace: 'newns' })], { address: '192.0.2.99' }))],
      ['a local endpoint moves, the "svc" namespace grows, a vip-mode service appears (VIPs move)', () => w.registry.apply(node('me', 2, [
        ...localEndpoints().map((e) => (e.id === 'w1' ? { ...e, addresses: ['10.0.0.77'] } : e)),
        ep('svc', '10.0.0.41', { id: 's2', hostname: 'svc-2', namespace: 'svc' }),
        vip('aaa', 'aaa-1', '10.0.0.60'),
      ]))],
      ['the new namespace empties', () => w.registry.apply(node('other', 3, remoteEndpoints(), { address: '192.0.2.99' }))],
      ['container names change', () => w.containerNames.setContainers([
        { names: ['db', 'database'], networks: { n1: ['10.88.0.20'], n2: ['10.89.0.31'] } },
        { names: ['v6only'], networks: { n2: ['fd89::32'] } },
      ])],
      // The reverse name of an address one service answers alone is in that service's group.
      ['a new service takes an address one local service had alone (the change names the new one only)', () => w.registry.apply(node('other', 4, [...remoteEndpoints(), ep('share', '10.0.0.3', { id: 'sh1', hostname: 'share-1' })], { address: '192.0.2.99' }))],
      ['it leaves: the address is the local service\'s alone again', () => w.registry.apply(node('other', 5, remoteEndpoints(), { address: '192.0.2.99' }))],
    ];
    const ptrs = ['10.0.0.3', '10.0.0.1', '10.0.0.77', '10.0.7.1', '10.0.1.1', '10.223.1.1', '10.223.1.2'];
    const extra = [
      'fresh.newns.cluster.local', 'fresh-1.fresh.newns.cluster.local', 'newns.cluster.local', 'newns.svc.cluster.local', 'aaa.default.cluster.local', 'svc-2.svc.svc.cluster.local',
      'svc.svc.svc.cluster.local', reverseName('10.0.0.77')!, reverseName('10.0.7.1')!, reverseName('10.0.0.41')!, reverseName('10.0.0.60')!, reverseName('10.223.1.2')!, reverseName('10.223.1.3')!, reverseName('10.89.0.31')!,
    ];
    for (const [what, change] of steps) {
      const before = table.builds;
      change();
      // A change of more names than one event-loop turn compiles goes on in the next turns.
      for (let i = 0; i < 1000 && table.builds === before; i++) await new Promise((r) => setImmediate(r));
      t.equal(table.builds, before + 1, `${what}: one patch`);
      const all = [...names(), ...extra];
      const differences: string[] = [];
      let native = 0;
      for (let i = 0; i < 2000; i++) {
        const container = rand(8) === 0;
        const r = compare(w, container ? pick(CONTAINER_NAMES) : pick(all), container);
        if (r === 'js') continue;
        native++;
        if (r.difference && differences.length < 5) differences.push(r.difference);
      }
      // Every address the registry knows: its PTR answered natively, as JS answers it.
      for (const ip of ptrs) {
        const q = packet.encode({ id: rand(65536), type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name: reverseName(ip)!, type: 'PTR' }] });
        const r = compare(w, reverseName(ip)!, false, q);
        const known = w.registry.lookupAddress(ip).length > 0;
        const difference = r === 'js' ? (known ? `${ip}: PTR not answered natively` : undefined) : r.difference;
        if (difference && differences.length < 5) differences.push(difference);
      }
      t.same(differences, [], `prefer-local ${preferLocal}, ${what}: no differences`);
      t.ok(native > 1000, `${native} answered natively`);
    }
    t.same(errors, [], 'no table errors');
  }
});
