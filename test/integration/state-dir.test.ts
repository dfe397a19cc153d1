import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiOverSocket, runCli, startDaemon } from '../helpers/daemon.js';
import { expectLog } from '../helpers/until.js';

// The state directory under bad luck: a disk that fills up while registrations come in, temp
// files a killed daemon left behind, a node-id file that is garbage.

const isRoot = process.getuid?.() === 0;

t.test('a full disk: every 201 survives kill -9 and a restart, every refusal is a 507 with JSON', { skip: isRoot ? false : 'needs root to mount a tmpfs' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0750', 'tmpfs', dir]);
  t.teardown(() => {
    execFileSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  const args = ['--state-dir', dir];
  const d = await startDaemon(t, { args });
  const path = (id: string) => `/api/v1/services/default/full/endpoints${id ? `/${id}` : ''}`;
  const accepted: string[] = [];
  const refused: string[] = [];
  // Bounded: 64 KB holds far fewer than 2,000 registrations of this size.
  for (let i = 0; i < 2000 && refused.length < 20; i++) {
    const id = `ep-${i}`;
    const body = { id, address: `10.1.${i >> 8}.${i & 255}`, hostname: `host-with-a-long-name-${i}`, ports: { http: '8080/tcp', https: '8443/tcp', admin: '9000/tcp' }, health: 'none' };
    const res = await fetch(`${d.api}${path('')}`, { method: 'POST', headers: { 'content-type': 'application/json', ...d.auth() }, body: JSON.stringify(body) });
    if (res.status === 201) {
      accepted.push(id);
      await res.arrayBuffer();
      continue;
    }
    t.equal(res.status, 507, `${id}: refused as insufficient storage`);
    t.match(res.headers.get('content-type'), /application\/json/);
    t.match(((await res.json()) as { error: string }).error, /nothing was changed: the registrations could not be saved .*ENOSPC/);
    refused.push(id);
  }
  t.ok(accepted.length > 10, `${accepted.length} registrations were accepted before the disk filled`);
  t.equal(refused.length, 20, 'then the disk was full');

  const listed = (await apiOverSocket(d, 'GET', path(''))).body as Array<{ id: string }>;
  t.same(listed.map((e) => e.id).sort(), [...accepted].sort(), 'the registry holds exactly the accepted registrations');
  const status = (await apiOverSocket(d, 'GET', '/api/v1/status')).body;
  t.match(status.state, { dir, healthy: false, failing: { 'api-endpoints.json': /ENOSPC/ } });
  t.match(status.problems.join('\n'), /state directory .*: cannot write .*api-endpoints\.json.*ENOSPC/);
  const metrics = await (await fetch(`${d.api}/metrics`)).text();
  t.match(metrics, /podman_swarm_dns_state_write_errors_total\{file="api-endpoints\.json"\} ([2-9]\d|1\d\d)/);
  t.match(metrics, /podman_swarm_dns_state_dir_healthy 0/);
  t.same(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temp file is left on the full disk');
  await expectLog(t, d, /cannot write .*api-endpoints\.json.*ENOSPC.*the previous api-endpoints\.json is kept/);
  const cli = await runCli(['status', '--api-socket', d.socket]);
  t.match(cli.stdout, /^state\s+.*writes FAILING: api-endpoints\.json not saved/m, '`podman-swarm-dns status` shows it');

  // Room again (the tmpfs grows): the next registration is saved and the directory is healthy.
  execFileSync('mount', ['-o', 'remount,size=256k', dir]);
  const retry = await fetch(`${d.api}${path('')}`, { method: 'POST', headers: { 'content-type': 'application/json', ...d.auth() }, body: JSON.stringify({ id: refused[0], address: '10.9.9.9' }) });
  t.equal(retry.status, 201, 'a refused registration is accepted once there is room');
  accepted.push(refused.shift()!);
  t.match((await apiOverSocket(d, 'GET', '/api/v1/status')).body.state, { healthy: true, failing: {} });
  t.match(await (await fetch(`${d.api}/metrics`)).text(), /podman_swarm_dns_state_dir_healthy 1/);
  await expectLog(t, d, /api-endpoints\.json is written again/);

  await d.stop('SIGKILL');
  const again = await startDaemon(t, { args });
  const restored = (await apiOverSocket(again, 'GET', path(''))).body as Array<{ id: string }>;
  t.same(restored.map((e) => e.id).sort(), [...accepted].sort(), 'every 201 is back after kill -9, and nothing that was refused');
  t.notOk(restored.some((e) => refused.includes(e.id)));
});

t.test('a read-only state directory: 503 with JSON, nothing applied, and back when it is writable', { skip: isRoot ? false : 'needs root to mount a tmpfs' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-ro-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0750', 'tmpfs', dir]);
  t.teardown(() => {
    execFileSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  const d = await startDaemon(t, { args: ['--state-dir', dir] });
  const post = (id: string) => fetch(`${d.api}/api/v1/services/default/ro/endpoints`, { method: 'POST', headers: { 'content-type': 'application/json', ...d.auth() }, body: JSON.stringify({ id, address: '10.0.0.1' }) });
  t.equal((await post('before')).status, 201);
  execFileSync('mount', ['-o', 'remount,ro', dir]);
  const refused = await post('during');
  t.equal(refused.status, 503, 'not a full disk: 503');
  t.match(((await refused.json()) as { error: string }).error, /nothing was changed: .*EROFS/);
  const del = await fetch(`${d.api}/api/v1/services/default/ro/endpoints/before`, { method: 'DELETE', headers: d.auth() });
  t.equal(del.status, 503, 'a DELETE that cannot be saved is refused too');
  const ids = ((await apiOverSocket(d, 'GET', '/api/v1/services/default/ro/endpoints')).body as Array<{ id: string }>).map((e) => e.id);
  t.same(ids, ['before'], 'the registry is as the disk says');
  t.match((await apiOverSocket(d, 'GET', '/api/v1/status')).body.state, { healthy: false, failing: { 'api-endpoints.json': /EROFS/ } });
  execFileSync('mount', ['-o', 'remount,rw', dir]);
  t.equal((await post('after')).status, 201);
  t.match((await apiOverSocket(d, 'GET', '/api/v1/status')).body.state, { healthy: true });
});

t.test('temp files a killed daemon left are removed at start', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'psdns-tmp-'));
  t.teardown(() => rmSync(parent, { recursive: true, force: true }));
  const state = join(parent, 'state');
  mkdirSync(state);
  // What kill -9 in the middle of a write leaves: a temp file next to the real one.
  writeFileSync(join(state, 'api-endpoints.json.0123abcd.tmp'), '{"format": 1, "endpoi');
  writeFileSync(join(state, 'keep.tmp'), 'not one of ours');
  const d = await startDaemon(t, { args: ['--state-dir', state] });
  t.same(readdirSync(state).filter((f) => f.endsWith('.tmp')), ['keep.tmp'], "the daemon's temp file is gone, others are kept");
  await expectLog(t, d, /removed 1 temp file a killed daemon left in/);
});

t.test('a corrupt node key is replaced, with a warning; node-id follows the key', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'psdns-id-'));
  t.teardown(() => rmSync(parent, { recursive: true, force: true }));
  const state = join(parent, 'state');
  mkdirSync(state);
  writeFileSync(join(state, 'node.key'), 'not a key');
  writeFileSync(join(state, 'node-id'), '"not-hex"');
  const d = await startDaemon(t, { args: ['--state-dir', state] });
  const id = ((await apiOverSocket(d, 'GET', '/api/v1/status')).body as { node: { id: string } }).node.id;
  t.match(id, /^[0-9a-f]{32}$/);
  const warn = d.events().find((e) => /node\.key is not a usable key/.test(String(e.msg)));
  t.ok(warn, 'a log line says the key was replaced');
  t.match(warn, { level: /warn|40/, msg: /moved to .*node\.key\.corrupt-.*a new member with a new key and id/ });
  await expectLog(t, d, new RegExp(`node id not-hex is replaced by ${id}`));
  t.equal(JSON.parse(readFileSync(join(state, 'node-id'), 'utf8')), id);
});
