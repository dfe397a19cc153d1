import t from 'tap';
import { createServer, Socket, type AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { parseQueryLogMode, QueryLog, queryLine, type QueryLogEntry } from '../../src/dns/querylog.js';

// The query log's JS side: the modes, the line, and a sink that does not keep up (a real socket
// whose reader stops reading) — lines are dropped and counted, memory stays bounded, and
// logging resumes once the reader catches up.

const ENTRY: QueryLogEntry = { client: '10.88.0.7', name: 'web.default.cluster.local', type: 'A', rcode: 'NOERROR', answers: 2, path: 'js', us: 12.6 };

t.test('modes: off, errors, all, sample:N; anything else says what is wrong', async (t) => {
  t.same(parseQueryLogMode('off'), { kind: 'off', every: 1 });
  t.same(parseQueryLogMode('errors'), { kind: 'errors', every: 1 });
  t.same(parseQueryLogMode('all'), { kind: 'sample', every: 1 });
  t.same(parseQueryLogMode('sample:100'), { kind: 'sample', every: 100 });
  t.throws(() => parseQueryLogMode('sample:0'), /sample:N needs N from 1/);
  t.throws(() => parseQueryLogMode('sample:x'), /not off, errors, all or sample:N/);
  t.throws(() => parseQueryLogMode('debug'), /not off, errors, all or sample:N/);
});

t.test('which JS-path queries are logged', async (t) => {
  const ql = new QueryLog(pino({ level: 'silent' }));
  const picked = (mode: string, rcodes: string[]) => {
    ql.configure(mode, '/dev/null');
    return rcodes.filter((r) => ql.wants(r)).length;
  };
  const rcodes = Array.from({ length: 30 }, (_, i) => (i % 10 === 0 ? 'SERVFAIL' : 'NOERROR'));
  t.equal(picked('off', rcodes), 0);
  t.equal(picked('errors', rcodes), 3, 'the SERVFAILs only');
  t.equal(picked('sample:10', rcodes), 3, 'one in ten');
  t.equal(picked('all', rcodes), 30);
  ql.close();
});

t.test('the line: one JSON object, the fields in order, microseconds whole', async (t) => {
  const line = queryLine({ ...ENTRY, name: 'a"b\\c.example' }, Date.UTC(2026, 11, 6, 6, 1, 34, 123));
  t.ok(line.endsWith('}\n') && !line.slice(0, -1).includes('\n'), 'one line');
  const o = JSON.parse(line);
  t.same(Object.keys(o), ['level', 'time', 'msg', 'client', 'name', 'type', 'rcode', 'answers', 'path', 'us']);
  t.match(o, { time: '2026-12-06T06:01:34.123Z', msg: 'query', name: 'a"b\\c.example', us: 13, answers: 2 });
});

t.test('a log stream that does not keep up: lines dropped and counted, memory bounded, resumes', async (t) => {
  const held: Socket[] = [];
  const server = createServer((s) => {
    s.pause(); // the reader stops reading
    held.push(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const stream = new Socket();
  await new Promise<void>((r) => stream.connect((server.address() as AddressInfo).port, '127.0.0.1', r));
  t.teardown(() => {
    stream.destroy();
    for (const s of held) s.destroy();
    server.close();
  });
  const prom = new Registry();
  const ql = new QueryLog(pino({ level: 'info' }, stream), prom);
  ql.configure('all', '');
  const dropped = async () => Number(/reason="sink_busy"\} (\d+)/.exec(await prom.metrics())?.[1] ?? 0);

  // Far more than the kernel's socket buffers hold: 200k lines of ~200 bytes.
  for (let i = 0; i < 200_000; i++) if (ql.wants('NOERROR')) ql.record(ENTRY);
  const busy = await dropped();
  t.ok(busy > 100_000, `${busy} lines dropped and counted`);
  t.ok(stream.writableLength < 64 * 1024, `${stream.writableLength} bytes queued in the process (one write past the stream's buffer at most)`);

  // The reader catches up: the stream drains and lines are written again.
  for (const s of held) s.resume();
  await new Promise((r) => stream.once('drain', r));
  const before = stream.bytesWritten;
  ql.record(ENTRY);
  t.equal(await dropped(), busy, 'no drop once drained');
  t.ok(stream.bytesWritten + stream.writableLength > before, 'the line went to the stream');
  ql.close();
});
