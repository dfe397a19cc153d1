import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, writeConfig, type RunningDaemon } from '../helpers/daemon.js';
import { decode, query, tcpExchange, udpExchange } from '../helpers/dns.js';
import { skip } from '../helpers/native-world.js';
import { startUpstream } from '../helpers/upstream.js';
import { until, expectLog } from '../helpers/until.js';

// --query-log against a real daemon: queries the native UDP threads answer and queries the JS
// path answers (over TCP, forwarded to an upstream, then from the cache) all show up as JSON lines
// with the same fields, in the log stream or a file; errors and sample:N pick what is logged.

const CONFIG = `services:
  - name: web
    endpoints:
      - { address: 10.0.0.1 }
      - { address: 10.0.0.2 }
`;
const WEB = 'web.default.cluster.local';
const NOPE = 'nope.default.cluster.local';

type Line = Record<string, unknown>;
const fromLog = (d: RunningDaemon) => (): Line[] => d.events().filter((e) => e.msg === 'query');
const fromFile = (file: string) => (): Line[] =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line) : [];

/** Waits (bounded) until `n` lines are there, and a little longer to see that no more come. */
async function lines(read: () => Line[], n: number): Promise<Line[]> {
  await until(`${n} query log lines`, () => read().length >= n || undefined, 10_000);
  await new Promise((r) => setTimeout(r, 300)); // two native drains: nothing extra may follow
  return read();
}

const udp = async (d: RunningDaemon, name: string, type = 'A') => decode((await udpExchange(d.dnsPort, query(name, type)))!);

async function dropped(d: RunningDaemon, reason: string): Promise<number> {
  const text = await (await fetch(`${d.api}/metrics`)).text();
  return Number(new RegExp(`query_log_dropped_total\\{reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
}

t.test('--query-log all: native and JS-path queries, each with its path and the fields', { skip }, async (t) => {
  const up = await startUpstream(t, { records: { 'outside.example': ['192.0.2.7'] } });
  const d = await startDaemon(t, { config: CONFIG, upstreams: [`127.0.0.1:${up.port}`], args: ['--query-log', 'all'] });
  t.equal((await udp(d, WEB)).answers?.length, 2, 'native answer');
  t.equal(decode((await tcpExchange(d.dnsPort, [query(WEB, 'A')]))[0]!).answers?.length, 2, 'TCP answer (JS path)');
  t.equal((await udp(d, 'outside.example')).answers?.length, 1, 'forwarded');
  t.equal((await udp(d, 'outside.example')).answers?.length, 1, 'from the cache');
  const got = await lines(fromLog(d), 4);
  t.equal(got.length, 4, 'one line per query');
  const by = (path: string) => got.find((l) => l.path === path);
  t.match(by('native'), { client: '127.0.0.1', name: WEB, type: 'A', rcode: 'NOERROR', answers: 2, level: 30 });
  t.match(by('js'), { client: '127.0.0.1', name: WEB, type: 'A', rcode: 'NOERROR', answers: 2 });
  t.match(by('upstream'), { client: '127.0.0.1', name: 'outside.example', type: 'A', rcode: 'NOERROR', answers: 1 });
  t.match(by('cache'), { client: '127.0.0.1', name: 'outside.example', type: 'A', rcode: 'NOERROR', answers: 1 });
  for (const l of got) {
    t.ok(Number.isInteger(l.us) && (l.us as number) >= 0, `${l.path}: microseconds`);
    t.ok(Math.abs(Date.parse(l.time as string) - Date.now()) < 60_000, `${l.path}: an ISO time of now (${l.time})`);
    t.same(Object.keys(l), ['level', 'time', 'msg', 'client', 'name', 'type', 'rcode', 'answers', 'path', 'us'], `${l.path}: the same fields in the same order`);
  }
});

t.test('--query-log errors: only answers other than NOERROR, from both paths', { skip }, async (t) => {
  const d = await startDaemon(t, { config: CONFIG, args: ['--query-log', 'errors'] });
  t.equal((await udp(d, WEB)).rcode, 'NOERROR');
  t.equal((await udp(d, NOPE)).rcode, 'NXDOMAIN');
  t.equal(decode((await tcpExchange(d.dnsPort, [query(WEB, 'A'), query(NOPE, 'AAAA')]))[1]!).rcode, 'NXDOMAIN');
  const got = await lines(fromLog(d), 2);
  // The JS path writes at once, the native lines at the next drain: compare without the order.
  const seen = got.map((l) => [l.path, l.name, l.type, l.rcode, l.answers].join(' ')).sort();
  t.same(seen, [`js ${NOPE} AAAA NXDOMAIN 0`, `native ${NOPE} A NXDOMAIN 0`], 'the two NXDOMAINs, nothing else');
});

t.test('--query-log sample:10 logs one query in 10 on each path, into --query-log-file', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-qlog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'queries.log');
  // One UDP thread: its one sample counter makes the count exact.
  const d = await startDaemon(t, { config: CONFIG, args: ['--query-log', 'sample:10', '--query-log-file', file, '--dns-threads', '1'] });
  for (let i = 0; i < 50; i++) t.equal((await udp(d, WEB)).rcode, 'NOERROR', `native query ${i}`);
  const replies = await tcpExchange(d.dnsPort, Array.from({ length: 20 }, (_, i) => query(i % 2 ? NOPE : WEB, 'A', { id: i })));
  t.equal(replies.length, 20, 'TCP (JS path) answers');
  const got = await lines(fromFile(file), 7);
  t.equal(got.filter((l) => l.path === 'native').length, 5, '5 of the 50 native queries');
  t.equal(got.filter((l) => l.path === 'js').length, 2, '2 of the 20 JS-path queries');
  t.equal(got.length, 7, 'nothing else');
  t.notOk(fromLog(d)().length, 'none in the log stream');
});

t.test('a --query-log-file that cannot be written: warned once, DNS still answered, lines counted as dropped', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-qlog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'no-such-dir', 'queries.log');
  const d = await startDaemon(t, { config: CONFIG, args: ['--query-log', 'all', '--query-log-file', file] });
  for (let i = 0; i < 5; i++) t.equal((await udp(d, WEB)).answers?.length, 2, `native answer ${i}`);
  t.equal(decode((await tcpExchange(d.dnsPort, [query(WEB, 'A')]))[0]!).answers?.length, 2, 'JS-path answer');
  await until('the dropped lines counted', async () => ((await dropped(d, 'sink_failed')) >= 6 ? true : undefined), 10_000);
  const warned = d.events().filter((e) => typeof e.msg === 'string' && e.msg.startsWith(`query log file ${file} cannot be written`));
  t.equal(warned.length, 1, 'one warning');
  t.match(warned[0]?.msg, /ENOENT/, 'it says why');
  t.equal(d.proc.exitCode, null, 'still running');
});

t.test('a reload tries a failed --query-log-file again and applies a new mode', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-qlog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'later', 'queries.log');
  const d = await startDaemon(t, { config: `${CONFIG}query-log: all\nquery-log-file: ${file}\n` });
  t.equal((await udp(d, WEB)).answers?.length, 2, 'answered while the file cannot be written');
  await until('the line counted as dropped', async () => ((await dropped(d, 'sink_failed')) >= 1 ? true : undefined), 10_000);
  mkdirSync(join(dir, 'later'));
  writeConfig(d, `${CONFIG}query-log: errors\nquery-log-file: ${file}\n`);
  d.proc.kill('SIGHUP');
  await until('reloaded', () => d.events().some((e) => typeof e.msg === 'string' && e.msg.startsWith('reloaded')) || undefined, 10_000);
  t.equal((await udp(d, WEB)).rcode, 'NOERROR', 'not an error: not logged');
  t.equal((await udp(d, NOPE)).rcode, 'NXDOMAIN');
  const got = await lines(fromFile(file), 1);
  t.same(got.map((l) => [l.path, l.name, l.rcode]), [['native', NOPE, 'NXDOMAIN']], 'the file now has the error only');
});

t.test('--query-log with a bad value stops the start with what is wrong', async (t) => {
  const d = await startDaemon(t, { config: CONFIG, args: ['--query-log', 'sample:0'], wait: false });
  t.not(await d.exitCode(), 0, 'exits');
  await expectLog(t, d, /query-log.*sample:N needs N from 1/s);
});
