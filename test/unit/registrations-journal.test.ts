import t from 'tap';
import { spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Endpoint } from '../../src/registry/types.js';
import { encodeLine, RegistrationStore } from '../../src/state/registrations.js';
import { ROOT } from '../helpers/daemon.js';

// API registrations on a real disk: every change is one journal line, fdatasync'ed before it is
// acknowledged; the journal is replayed at start, a torn last line is ignored, and the journal
// is compacted into the whole file in the background.

const tempDir = (t: { teardown(fn: () => unknown): void }): string => {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
};

const ep = (i: number, service = 'web'): Endpoint =>
  ({
    namespace: 'default',
    service,
    id: `e${i}`,
    addresses: [`10.0.${i >> 8}.${i & 255}`],
    hostname: `host-${i}`,
    ports: { http: { port: 8080, protocol: 'tcp' } },
    weight: 10,
    health: 'none',
    source: 'api',
    lastSeen: 1_700_000_000_000 + i,
  }) as unknown as Endpoint;

const ids = (eps: Endpoint[]): string[] => eps.map((e) => `${e.service}/${e.id}`).sort();
const files = (dir: string): string[] => readdirSync(dir).sort();

/** A store over `dir` that is closed when the test ends. */
function open(t: { teardown(fn: () => unknown): void }, dir: string, compactMin?: number): RegistrationStore {
  const s = new RegistrationStore(dir, compactMin);
  t.teardown(() => s.close());
  return s;
}

t.test('changes are journal lines, replayed at start; the whole file is not rewritten per change', async (t) => {
  const dir = tempDir(t);
  const a = open(t, dir);
  t.same(a.load().endpoints, [], 'nothing saved yet');
  for (let i = 0; i < 5; i++) await a.put(ep(i));
  await a.put({ ...ep(2), addresses: ['10.9.9.9'] } as Endpoint); // replaced (same id)
  await a.remove(ep(3));
  t.notOk(existsSync(join(dir, 'api-endpoints.json')), 'no whole file was written for five changes');
  const journal = readFileSync(join(dir, 'api-endpoints.journal.0'), 'utf8');
  t.equal(journal.split('\n').length - 1, 7, 'one line per change');
  await a.close();

  const b = open(t, dir);
  const loaded = b.load();
  t.same(ids(loaded.endpoints), ['web/e0', 'web/e1', 'web/e2', 'web/e4'], 'the removal is replayed');
  t.same(loaded.endpoints.find((e) => e.id === 'e2')!.addresses, ['10.9.9.9'], 'the replacement is replayed');
  t.same(loaded.endpoints.find((e) => e.id === 'e0')!.ports, { http: { port: 8080, protocol: 'tcp' } });
  t.same(loaded.warnings, []);
  t.equal(loaded.problem, null);
  await b.close(); // waits for the compaction a replay starts
  t.same(files(dir), ['api-endpoints.json'], 'after the replay the journal is compacted into the whole file and removed');
  const c = open(t, dir);
  t.same(ids(c.load().endpoints), ['web/e0', 'web/e1', 'web/e2', 'web/e4'], 'the whole file alone holds the same');
});

t.test('a torn last line (a crash mid-append) is ignored with a warning; the lines before it count', async (t) => {
  const dir = tempDir(t);
  const a = open(t, dir);
  a.load();
  await a.put(ep(1));
  await a.put(ep(2));
  await a.close();
  const path = join(dir, 'api-endpoints.journal.0');
  const line = encodeLine({ op: 'put', namespace: 'default', service: 'web', id: 'e3', address: '10.0.0.3', hostname: 'h', ports: {}, weight: 10, health: 'none', registered: 0 });
  appendFileSync(path, line.slice(0, 40)); // cut short: no newline

  const b = open(t, dir);
  const loaded = b.load();
  t.same(ids(loaded.endpoints), ['web/e1', 'web/e2']);
  t.match(loaded.warnings, [/api-endpoints\.journal\.0: ignored its last line \(40 bytes\), a write cut short by a crash/]);
  await b.put(ep(4)); // goes to a new journal, not after the torn line
  await b.close();
  const c = open(t, dir);
  const again = c.load();
  t.same(ids(again.endpoints), ['web/e1', 'web/e2', 'web/e4'], 'later changes are kept');
  t.same(again.warnings, [], 'the torn line went with the compaction');
});

t.test('a damaged line (its hash does not match) is left out by name, the others are replayed', async (t) => {
  const dir = tempDir(t);
  const a = open(t, dir);
  a.load();
  for (let i = 1; i <= 3; i++) await a.put(ep(i));
  await a.close();
  const path = join(dir, 'api-endpoints.journal.0');
  const lines = readFileSync(path, 'utf8').split('\n');
  lines[1] = lines[1]!.replace('10.0.0.2', '10.0.0.7'); // a flipped byte on the disk
  writeFileSync(path, lines.join('\n'));
  const loaded = open(t, dir).load();
  t.same(ids(loaded.endpoints), ['web/e1', 'web/e3']);
  t.match(loaded.warnings, [/journal\.0: line 2 is damaged/]);
});

t.test('compaction: past the bound the whole file is written in the background, appends go on meanwhile', async (t) => {
  const dir = tempDir(t);
  const a = open(t, dir, 2048);
  a.load();
  // Not awaited one by one: appends and compactions overlap.
  await Promise.all(Array.from({ length: 200 }, (_, i) => a.put(ep(i, `s${i % 7}`))));
  for (let i = 0; i < 200; i += 3) await a.remove(ep(i, `s${i % 7}`));
  await a.close();
  const whole = JSON.parse(readFileSync(join(dir, 'api-endpoints.json'), 'utf8')) as { format: number; journal: number; endpoints: unknown[] };
  t.equal(whole.format, 1);
  t.ok(whole.journal > 1, `compacted more than once (generation ${whole.journal})`);
  const journals = files(dir).filter((f) => f.startsWith('api-endpoints.journal.'));
  t.ok(journals.length <= 2, `older journals are removed (${journals.join(', ')})`);
  for (const f of journals) t.ok(Number(f.split('.').pop()) >= whole.journal, `${f} is not older than the whole file`);
  const size = journals.reduce((n, f) => n + statSync(join(dir, f)).size, 0);
  t.ok(size <= 3 * Math.max(2048, statSync(join(dir, "api-endpoints.json")).size), `the journal stays bounded (${size} bytes)`);

  const expected = Array.from({ length: 200 }, (_, i) => i).filter((i) => i % 3 !== 0).map((i) => `s${i % 7}/e${i}`).sort();
  t.same(ids(open(t, dir).load().endpoints), expected, 'whole file + journal = every acknowledged change');
});

t.test('a journal older than the whole file (its removal cut short) is not replayed, and is removed', async (t) => {
  const dir = tempDir(t);
  const a = open(t, dir, 512);
  a.load();
  await a.put(ep(1));
  await a.put(ep(2));
  copyFileSync(join(dir, 'api-endpoints.journal.0'), join(dir, 'old-copy'));
  await a.remove(ep(1));
  for (let i = 10; i < 20; i++) await a.put(ep(i)); // past 512 bytes: compacted
  await a.close();
  t.notOk(existsSync(join(dir, 'api-endpoints.journal.0')));
  copyFileSync(join(dir, 'old-copy'), join(dir, 'api-endpoints.journal.0')); // puts e1 back, if it were replayed
  const loaded = open(t, dir).load();
  t.notOk(ids(loaded.endpoints).includes('web/e1'), 'the removal held');
  t.equal(loaded.endpoints.length, 11);
  t.notOk(existsSync(join(dir, 'api-endpoints.journal.0')), 'removed at start');
});

t.test('a whole file from before the journal (no generation) loads, and journals replay on top', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'api-endpoints.json'), JSON.stringify({ format: 1, endpoints: [{ namespace: 'default', service: 'old', id: 'x', address: '10.1.1.1', hostname: 'x', ports: {}, weight: 10, health: 'none', registered: 1 }] }));
  const a = open(t, dir);
  t.same(ids(a.load().endpoints), ['old/x']);
  await a.put(ep(1));
  await a.close();
  t.same(ids(open(t, dir).load().endpoints), ['old/x', 'web/e1']);
});

t.test('a short write is refused with the kernel’s reason and cut from the journal; what was acknowledged stays', async (t) => {
  const dir = tempDir(t);
  // RLIMIT_FSIZE (ulimit -f 8: 4 KB files) makes the kernel write part of a line, then refuse the
  // rest with EFBIG, as a filling disk does with ENOSPC.
  const code = `
    process.on('SIGXFSZ', () => {});
    import { RegistrationStore } from './dist/state/registrations.js';
    const s = new RegistrationStore(${JSON.stringify(dir)});
    s.load();
    const ep = (i) => ({ namespace: 'default', service: 'web', id: 'e' + i, addresses: ['10.0.0.1'], hostname: 'h'.repeat(60) + i, ports: {}, weight: 10, health: 'none', lastSeen: 0 });
    let ok = 0, refused = null;
    for (let i = 0; i < 200 && !refused; i++) {
      try { await s.put(ep(i)); ok++; } catch (e) { refused = e.constructor.name + ' ' + e.code; }
    }
    await s.close();
    console.log(JSON.stringify({ ok, refused }));
  `;
  const r = spawnSync('sh', ['-c', 'ulimit -f 8 && exec "$0" --input-type=module -e "$1"', process.execPath, code], { cwd: ROOT, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const { ok, refused } = JSON.parse(r.stdout) as { ok: number; refused: string };
  t.equal(refused, 'StateWriteError EFBIG');
  t.ok(ok > 5, `${ok} lines fit before the limit`);
  const text = readFileSync(join(dir, 'api-endpoints.journal.0'), 'utf8');
  t.ok(text.endsWith('\n'), 'no part of the refused line is left');
  const loaded = open(t, dir).load();
  t.equal(loaded.endpoints.length, ok, 'exactly the acknowledged registrations come back');
  t.same(loaded.warnings, []);
});

t.test('the whole file alone: each registration is restored once, the last of a key counts, refused ones are named', async (t) => {
  const dir = tempDir(t);
  const stored = (id: string, address: string) => ({ namespace: 'default', service: 'web', id, address, hostname: id, ports: {}, weight: 10, health: 'none', registered: 1_700_000_000_000 });
  const endpoints = [
    stored('a', '10.0.0.1'),
    stored('b', '0.0.0.0'), // refused: unspecified
    stored('a', '10.0.0.2'), // the last of key a: restored
    stored('c', 'nope'), // refused first, then
    stored('c', '10.0.0.3'), // restored
    stored('d', '10.0.0.4'), // restored first, then
    stored('d', '224.0.0.1'), // refused: d is not restored
  ];
  writeFileSync(join(dir, 'api-endpoints.json'), JSON.stringify({ format: 1, journal: 0, endpoints }));
  const loaded = open(t, dir).load();
  t.same(loaded.endpoints.map((e) => `${e.id} ${e.addresses[0]}`).sort(), ['a 10.0.0.2', 'c 10.0.0.3']);
  t.equal(loaded.skipped.length, 2, 'b and the last d');
  t.match(loaded.skipped.sort(), [/^default\/web b: address: "0\.0\.0\.0" is an unspecified/, /^default\/web d: address: "224\.0\.0\.1" is a multicast/]);
  t.same(loaded.warnings, []);
  t.equal(loaded.problem, null);
});

t.test('a registration replaced and then compacted: the whole file holds the new one, once', async (t) => {
  const dir = tempDir(t);
  const a = open(t, dir, 512);
  a.load();
  for (let i = 0; i < 5; i++) await a.put(ep(i));
  await a.put({ ...ep(2), addresses: ['10.9.9.9'] } as Endpoint);
  for (let i = 10; i < 20; i++) await a.put(ep(i)); // past 512 bytes: compacted
  await a.close();
  const whole = JSON.parse(readFileSync(join(dir, 'api-endpoints.json'), 'utf8')) as { endpoints: { id: string; address: string }[] };
  t.same(whole.endpoints.filter((e) => e.id === 'e2').map((e) => e.address), ['10.9.9.9']);
  const loaded = open(t, dir).load().endpoints;
  t.same(loaded.find((e) => e.id === 'e2')?.addresses, ['10.9.9.9']);
  t.equal(loaded.length, 15);
});
