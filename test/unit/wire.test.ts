import t from 'tap';
import * as packet from 'dns-packet';
import type { Answer as RR } from 'dns-packet';
import { decodeQuery, encodeAnswer, encodeRcode, udpLimit, type Query } from '../../src/dns/wire.js';
import { decode, query } from '../helpers/dns.js';

const decoded = (buf: Buffer): Query => {
  const d = decodeQuery(buf);
  if (!d.ok) throw new Error(d.reason);
  return d.query;
};

const many = (n: number): RR[] =>
  Array.from({ length: n }, (_, i) => ({ type: 'A', name: 'web.default.cluster.local', ttl: 5, class: 'IN', data: `10.0.${i >> 8}.${i & 255}` }) as RR);

t.test('EDNS payload size: 512 without EDNS, the client size up to 1232 with it', async (t) => {
  t.equal(udpLimit(decoded(query('a.cluster.local'))), 512);
  t.equal(udpLimit(decoded(query('a.cluster.local', 'A', { edns: 4096 }))), 1232);
  t.equal(udpLimit(decoded(query('a.cluster.local', 'A', { edns: 800 }))), 800);
  t.equal(udpLimit(decoded(query('a.cluster.local', 'A', { edns: 100 }))), 512);
});

t.test('an answer larger than the limit: additionals dropped first, then TC with the records that fit', async (t) => {
  const q = decoded(query('web.default.cluster.local', 'A', { edns: 1232 }));
  const big = { rcode: 'NOERROR' as const, authoritative: true, answers: many(100), authorities: [], additionals: [] };
  const out = encodeAnswer(q, big, { limit: udpLimit(q), recursionAvailable: true, zone: 'cluster.local' });
  t.ok(out.length <= 1232);
  const d = decode(out);
  t.ok(d.flag_tc, 'TC set');
  t.equal(d.answers!.length, 73, 'as many whole records as fit: (1232 - 58) / 16');
  t.same(d.answers!.map((a) => (a as { data: string }).data), many(73).map((a) => (a as { data: string }).data), 'the first ones, in order');
  t.ok(out.length > 1232 - 16, 'no room left for one more');
  t.equal(d.additionals!.filter((a) => a.type === 'OPT').length, 1, 'OPT kept so the client knows our size');
  const overTcp = decode(encodeAnswer(q, big, { limit: 65535, recursionAvailable: true }));
  t.notOk(overTcp.flag_tc);
  t.equal(overTcp.answers!.length, 100, 'TCP carries everything');

  const withExtra = { ...big, answers: many(10), additionals: many(60) };
  const lean = decode(encodeAnswer(q, withExtra, { limit: 512, recursionAvailable: true }));
  t.notOk(lean.flag_tc, 'dropping the additional section is enough');
  t.equal(lean.answers!.length, 10);
});

t.test('name compression: 28 A records of a svc.cluster.local name in 512 bytes', async (t) => {
  const name = 'web.default.svc.cluster.local';
  const q = decoded(query(name, 'A'));
  const out = encodeAnswer(q, { rcode: 'NOERROR', authoritative: true, answers: many(40).map((r) => ({ ...r, name })), authorities: [], additionals: [] }, { limit: 512, recursionAvailable: true, zone: 'cluster.local' });
  const d = decode(out);
  t.ok(out.length <= 512);
  t.ok(d.answers!.length >= 28, `${d.answers!.length} records fit`);
  t.ok(d.answers!.every((a) => a.name === name), 'every owner decodes to the question name');
  // Each record: pointer (2) + type, class, TTL, length (10) + address (4).
  t.equal(out.readUInt16BE(12 + name.length + 2 + 4), 0xc00c, 'the owner is a pointer to the question');
});

t.test('compression points into the question: the zone for other names, never in SRV targets', async (t) => {
  const q = decoded(query('_http._tcp.Web.Default.cluster.LOCAL', 'SRV'));
  const target = 'web-1.web.default.svc.cluster.local';
  const soa = { type: 'SOA', name: 'cluster.local', ttl: 5, class: 'IN', data: { mname: 'ns.dns.cluster.local', rname: 'hostmaster.cluster.local', serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5 } } as RR;
  const answer = {
    rcode: 'NOERROR' as const, authoritative: true, authorities: [soa],
    answers: [{ type: 'SRV', name: '_http._tcp.Web.Default.cluster.LOCAL', ttl: 5, class: 'IN', data: { priority: 0, weight: 1, port: 80, target } } as RR],
    additionals: [{ type: 'A', name: target, ttl: 5, class: 'IN', data: '10.0.0.1' } as RR],
  };
  const out = encodeAnswer(q, answer, { limit: 65535, recursionAvailable: false, zone: 'cluster.local' });
  const d = decode(out);
  t.equal((d.answers![0] as { data: { target: string } }).data.target, target, 'SRV target intact');
  t.ok(out.includes(Buffer.from('\x05web-1\x03web\x07default\x03svc\x07cluster\x05local\x00', 'latin1')), 'SRV target written in full');
  t.equal(d.additionals![0]!.name.toLowerCase(), target, 'the additional record owner decodes (zone labels from the question)');
  t.equal(d.authorities![0]!.name.toLowerCase(), 'cluster.local');
  const data = (d.authorities![0] as { data: { mname: string; rname: string } }).data;
  t.same([data.mname.toLowerCase(), data.rname.toLowerCase()], ['ns.dns.cluster.local', 'hostmaster.cluster.local'], 'SOA names decode');
  const zoneAt = 12 + '_http._tcp.Web.Default.'.length;
  t.ok(out.includes(Buffer.from([0xc0, zoneAt])), 'pointer to the zone inside the question');
  const outside = decode(encodeAnswer(decoded(query('example.com', 'A')), { ...answer, answers: [] }, { limit: 65535, recursionAvailable: false, zone: 'cluster.local' }));
  t.equal(outside.authorities![0]!.name, 'cluster.local', 'a question outside the zone: names written in full');
});

t.test('flags: AA, RA, RD echoed, id and question echoed', async (t) => {
  const q = decoded(query('Web.Default.Cluster.Local', 'A', { id: 777 }));
  const d = decode(encodeAnswer(q, { rcode: 'NXDOMAIN', authoritative: true, answers: [], authorities: [], additionals: [] }, { limit: 512, recursionAvailable: false }));
  t.equal(d.id, 777);
  t.equal(d.rcode, 'NXDOMAIN');
  t.ok(d.flag_aa);
  t.notOk(d.flag_ra);
  t.ok(d.flag_rd);
  t.equal(d.questions![0]!.name, 'Web.Default.Cluster.Local');
});

t.test('malformed queries: FORMERR when the header is readable, else dropped', async (t) => {
  const short = decodeQuery(Buffer.from([1, 2, 3]));
  t.same([short.ok, short.ok ? null : short.reply], [false, null], 'truncated header dropped');

  const bad = query('a.cluster.local');
  bad[12] = 200; // label length that is neither a label nor a pointer
  const r = decodeQuery(bad);
  t.notOk(r.ok);
  t.equal(!r.ok && r.reply && decode(r.reply).rcode, 'FORMERR');
  t.equal(!r.ok && r.reply && r.reply.readUInt16BE(0), 4242, 'id echoed');

  const zero = Buffer.from(query('a.cluster.local').subarray(0, 12));
  zero.writeUInt16BE(0, 4);
  const z = decodeQuery(zero);
  t.equal(!z.ok && z.reply && decode(z.reply).rcode, 'FORMERR', 'no question');

  const loop = Buffer.concat([query('a.cluster.local').subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
  const l = decodeQuery(loop);
  t.equal(!l.ok && l.reply && decode(l.reply).rcode, 'FORMERR', 'compression loop');

  const resp = query('a.cluster.local');
  resp.writeUInt16BE(resp.readUInt16BE(2) | 0x8000, 2);
  const rr = decodeQuery(resp);
  t.same([rr.ok, !rr.ok && rr.reply], [false, null], 'a response sent to us is dropped, never answered');

  const notify = query('a.cluster.local');
  notify.writeUInt16BE((notify.readUInt16BE(2) & ~0x7800) | (4 << 11), 2);
  const n = decodeQuery(notify);
  t.equal(!n.ok && n.reply && decode(n.reply).rcode, 'NOTIMP', 'opcode NOTIFY');
});

t.test('EDNS version 1 gets BADVERS', async (t) => {
  const raw = packet.encode({
    id: 1, type: 'query', questions: [{ name: 'a.cluster.local', type: 'A', class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, ednsVersion: 1 } as RR],
  });
  const q = decoded(raw);
  const d = decode(encodeRcode(q, 'NOERROR', true));
  const opt = d.additionals!.find((a) => a.type === 'OPT') as { extendedRcode: number };
  t.equal(opt.extendedRcode, 1, 'extended rcode 1 + header 0 = BADVERS (16)');
});
