import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as packet from 'dns-packet';
import { BUCKETS } from '../../src/api/metrics.js';
import * as clients from '../../src/dns/clients.js';
import { EDNS_PARSED_OPTIONS, FLAG_AA, FLAG_CD, FLAG_QR, FLAG_RA, FLAG_RD, FLAG_TC, FLAGS_ECHOED, MAX_UDP_PAYLOAD } from '../../src/dns/wire.js';
import { CLIENT_HOST, CLIENT_LOCAL, CLIENT_RECURSION, TABLE_VERSION } from '../../src/native/table.js';
import { RCODES, STAT, TYPES } from '../../src/native/udp.js';
import { ROOT } from '../helpers/daemon.js';

// The DNS wire numbers both paths write: defined in src/ (JS) and in native/src/*.rs (Rust).
// This reads the Rust constants from the source and checks every one against its JS twin, so a
// change on one side only fails here instead of making the two paths answer differently.

const TYPE_CODES: Record<string, number> = { A: 1, NS: 2, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33 };

const rust = ['answer.rs', 'udp.rs'].map((f) => readFileSync(join(ROOT, 'native', 'src', f), 'utf8')).join('\n');

/** `const NAME: T = EXPR;` of the Rust sources, evaluated (numbers, hex, _, |, <<, other constants). */
function rustConst(name: string, seen = new Set<string>()): number {
  const m = rust.match(new RegExp(`^\\s*(?:pub )?const ${name}: [\\w\\[\\]; ]+ = ([^;]+);`, 'm'));
  if (!m) throw new Error(`no const ${name} in native/src`);
  if (seen.has(name)) throw new Error(`const ${name} refers to itself`);
  seen.add(name);
  const expr = m[1]!.replace(/\b[A-Z][A-Z0-9_]+\b/g, (n) => String(rustConst(n, seen))).replace(/(\d)_(?=\d)/g, '$1');
  if (!/^[\s\d0-9a-fx|<()]+$/i.test(expr)) throw new Error(`const ${name}: cannot evaluate ${m[1]}`);
  return Function(`return (${expr});`)() as number;
}

/** `const NAME: [T; N] = [a, b, ...];` */
function rustArray(name: string): number[] {
  const m = rust.match(new RegExp(`const ${name}: \\[\\w+; \\d+\\] = \\[([^\\]]+)\\];`));
  if (!m) throw new Error(`no const array ${name} in native/src`);
  return m[1]!.split(',').map((x) => Number(x.trim().replace(/_/g, '')));
}

t.test('header flags and the flags a response echoes', async (t) => {
  t.equal(rustConst('QR'), FLAG_QR, 'QR');
  t.equal(rustConst('AA'), FLAG_AA, 'AA');
  t.equal(rustConst('TC'), FLAG_TC, 'TC');
  t.equal(rustConst('RD'), FLAG_RD, 'RD');
  t.equal(rustConst('RA'), FLAG_RA, 'RA');
  t.equal(rustConst('CD'), FLAG_CD, 'CD');
  t.equal(rustConst('KEEP'), FLAGS_ECHOED, 'echoed query flags');
});

t.test('the EDNS payload limit', async (t) => {
  t.equal(rustConst('MAX_UDP'), MAX_UDP_PAYLOAD);
  t.equal(MAX_UDP_PAYLOAD, 1232);
});

t.test('EDNS options: the ones the JS decoder parses go to JS', async (t) => {
  t.same(rustArray('JS_OPTIONS'), [...EDNS_PARSED_OPTIONS], 'same list on both sides');
  // Every option code that dns-packet decodes into fields of its own must be in the list (the
  // native path would ignore an option that the JS path acts on otherwise).
  const parsed: number[] = [];
  for (let code = 0; code < 0x10000; code++) {
    const data = Buffer.from([0, 1, 24, 0, 10, 0, 0, 1]);
    const q = packet.encode({ type: 'query', id: 1, questions: [{ name: 'a.cluster.local', type: 'A' }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, options: [{ code, data }] }] } as packet.Packet);
    let keys: string[];
    try {
      const opt = packet.decode(q).additionals?.[0] as { options?: Array<Record<string, unknown>> } | undefined;
      keys = Object.keys(opt?.options?.[0] ?? {}).filter((k) => !['code', 'type', 'data'].includes(k));
    } catch {
      keys = ['(decoding throws)'];
    }
    if (keys.length) parsed.push(code);
  }
  t.ok(parsed.length > 0, `dns-packet parses options ${parsed.join(', ')}`);
  for (const code of parsed) t.ok(EDNS_PARSED_OPTIONS.includes(code), `option ${code} is handed to JS`);
});

t.test('client classes of the answer table and of the JS policy', async (t) => {
  t.equal(rustConst('FLAG_RECURSION'), CLIENT_RECURSION);
  t.equal(rustConst('FLAG_LOCAL'), CLIENT_LOCAL);
  t.equal(rustConst('FLAG_HOST'), CLIENT_HOST);
  t.same([clients.RECURSION, clients.LOCAL, clients.HOST], [CLIENT_RECURSION, CLIENT_LOCAL, CLIENT_HOST]);
});

t.test('the answer table format version', async (t) => {
  t.equal(rustConst('TABLE_VERSION'), TABLE_VERSION);
});

t.test('the native stats layout read by src/native/udp.ts', async (t) => {
  t.equal(TYPES.length * RCODES.length, rustConst('STAT_TO_JS'), 'answers by type and rcode come first');
  const names: Array<[string, number]> = [
    ['STAT_TO_JS', STAT.toJs], ['STAT_FORMERR', STAT.formerr], ['STAT_NOTIMP', STAT.notimp], ['STAT_DROPPED', STAT.dropped],
    ['STAT_JS_FULL', STAT.jsFull], ['STAT_LAT', STAT.lat], ['STAT_LAT_SUM_NS', STAT.latSumNs], ['STAT_JS_LATE', STAT.jsLate],
    ['STAT_RRL_DROP', STAT.rrlDrop], ['STAT_RRL_SLIP', STAT.rrlSlip], ['NSTATS', STAT.count],
  ];
  for (const [name, js] of names) t.equal(rustConst(name), js, name);
  const buckets = rustArray('BUCKETS_NS');
  t.same(buckets.map((ns) => ns / 1e9), BUCKETS, 'latency buckets: the JS histogram');
  t.equal(STAT.latSumNs - STAT.lat, BUCKETS.length + 1, 'the buckets and +Inf fit before the sum');
  // The type order: udp.rs type_index() maps a query type to its slot (the last one: other).
  const body = rust.match(/fn type_index\(qtype: u16\) -> usize \{([^}]+)\}/)?.[1] ?? '';
  const slot = new Map([...body.matchAll(/(\d+) => (\d+),/g)].map((m) => [Number(m[1]), Number(m[2])]));
  t.equal(slot.size, TYPES.length - 1, 'one arm per named type');
  TYPES.slice(0, -1).forEach((type, i) => t.equal(slot.get(TYPE_CODES[type]!), i, `slot ${i} is ${type}`));
});

