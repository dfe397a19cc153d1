import t from 'tap';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapshotFile } from '../../src/state/snapshot.js';
import { ep, node } from '../helpers/registry.js';

// The persisted registry: round trip, and a corrupt or foreign file moved aside, never fatal.

t.test('state file round trip, corrupt and foreign files moved aside', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'g4-snap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = new SnapshotFile(dir);
  t.same(f.load(), { kind: 'missing' });
  const data = { nodes: [node('n1', 5, [ep('web', '10.0.0.1', { id: 'w' })])], members: [{ id: 'n1', name: 'n1', addr: '10.0.0.1:7946' }] };
  f.save(data);
  t.same(f.load(), { kind: 'ok', value: data });
  t.notOk(readdirSync(dir).some((n) => n.endsWith('.tmp')), 'no temp file left behind');

  writeFileSync(f.path, '{"format": 1, "nodes": [');
  const bad = f.load();
  t.match(bad, { kind: 'corrupt', movedTo: /state\.corrupt-/ });
  t.notOk(existsSync(f.path), 'moved aside');
  writeFileSync(f.path, JSON.stringify({ format: 99, nodes: [], members: [] }));
  t.match(f.load(), { kind: 'corrupt', reason: /format 1 or 2/ });
  writeFileSync(f.path, JSON.stringify({ format: 1, nodes: [{ id: 'x' }], members: [] }));
  t.match(f.load(), { kind: 'corrupt', reason: /not well-formed/ });
});

t.test('endpoints are saved as rows and come back whole; rows that are not endpoints are refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'g4-snap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = new SnapshotFile(dir);
  const plain = ep('web', '10.0.0.1', { id: 'w', explicit: false, healthy: false });
  const ported = ep('web', ['10.0.0.2', 'fd00::2'], { id: 'p', ports: { http: { port: 80, protocol: 'tcp', hostPort: 8080 } }, weight: 7 });
  const full = ep('db', '10.0.0.3', {
    id: 'c',
    source: 'podman',
    health: 'http:/healthz',
    mode: 'vip',
    ttl: 5,
    container: { id: 'a'.repeat(64), name: 'db1', network: 'podman', owner: 'alice' },
    problems: ['bad label x'],
    lastSeen: 1_700_000_000_123,
  });
  const noPorts = ep('db', '10.0.0.4', { id: 'r', problems: ['p'] });
  const data = { nodes: [node('n1', 5, [full, noPorts, plain, ported])], members: [] };
  f.save(data);
  const lines = readFileSync(f.path, 'utf8').split('\n');
  const head = JSON.parse(lines[0]!);
  const saved = JSON.parse(lines[1]!);
  t.equal(head.format, 2);
  t.same(lines.slice(2), [''], 'a line per node state after the first');
  t.same(saved.endpoints[2], ['w', 'default', 'web', 'w', ['10.0.0.1'], 0, 10, 'none', 'api', 0], 'an endpoint with nothing optional is its ten fields');
  t.same(saved.endpoints[1].slice(10), [0, { problems: ['p'] }], 'no ports before the rest: 0');
  t.same(f.load(), { kind: 'ok', value: data }, 'every field back, the optional ones too');

  const row = saved.endpoints[2];
  for (const [what, bad] of [
    ['too short', row.slice(0, 9)],
    ['unknown flags', [...row.slice(0, 5), 4, ...row.slice(6)]],
    ['an address that is not one', [...row.slice(0, 4), ['nope'], ...row.slice(5)]],
    ['a rest that is not an object', [...row, 0, 'x']],
    ['a container without a name', [...row, 0, { container: { id: 'x' } }]],
    ['an object, not a row', { id: 'w' }],
  ] as const) {
    writeFileSync(f.path, `${lines[0]}\n${JSON.stringify({ ...saved, endpoints: [bad] })}\n`);
    t.match(f.load(), { kind: 'corrupt', reason: /not well-formed/ }, what);
  }
  writeFileSync(f.path, `${lines[0]}\n${lines[1]!.slice(0, 40)}`);
  t.match(f.load(), { kind: 'corrupt', reason: /JSON/ }, 'a node state cut short (a full disk, before files.ts checked writes)');
});

t.test('a state file of format 1 (endpoint objects, as the previous version wrote) is still read', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'g4-snap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = new SnapshotFile(dir);
  const data = { nodes: [node('n1', 5, [ep('web', '10.0.0.1', { id: 'w', ports: { http: { port: 80, protocol: 'tcp' } } })])], members: [{ id: 'n1', name: 'n1', addr: '10.0.0.1:7946' }] };
  writeFileSync(f.path, JSON.stringify({ format: 1, saved_at: new Date().toISOString(), ...data }));
  t.same(f.load(), { kind: 'ok', value: data });
});

t.test('debounced saves are written off the event loop and follow every change of a node state', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'g4-snap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = new SnapshotFile(dir, 1);
  const errors: Error[] = [];
  const members = [{ id: 'n1', name: 'n1', addr: '10.0.0.1:7946' }];
  let nodes = [node('n1', 5, [ep('web', '10.0.0.1', { id: 'w' })]), node('n2', 1, [])];
  /** What the file holds once the save scheduled now is written (bounded wait). */
  const saved = async () => {
    const want = JSON.stringify({ nodes, members });
    f.schedule(() => ({ nodes, members }), (e) => errors.push(e));
    for (let i = 0; i < 400; i++) {
      await new Promise((r) => setTimeout(r, 5));
      await f.written();
      const now = f.load();
      if (now.kind === 'ok' && JSON.stringify(now.value) === want) break;
    }
    return f.load();
  };
  t.same(await saved(), { kind: 'ok', value: { nodes, members } });
  // A new state of n1 (a new object), n2 unchanged: the file has both as they are now.
  nodes = [node('n1', 6, [ep('web', '10.0.0.2', { id: 'w' })]), nodes[1]!];
  t.same(await saved(), { kind: 'ok', value: { nodes, members } });
  // The same object changed in place with a new version is written anew too.
  nodes = [...nodes];
  nodes[1]!.endpoints = [ep('db', '10.0.0.9', { id: 'd' })];
  nodes[1]!.version = 2;
  t.same(await saved(), { kind: 'ok', value: { nodes, members } });
  t.same(errors, []);
  t.notOk(readdirSync(dir).some((n) => n.endsWith('.tmp')), 'no temp file left behind');
});
