import t from 'tap';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiOverSocket, startDaemon } from '../helpers/daemon.js';
import { expectLog } from '../helpers/until.js';

// API registrations on the real daemon: each change is a journal line before the 201, kill -9
// loses none of them, a line a crash cut short is ignored with a log line, and the journal is
// folded into api-endpoints.json after the restart.

t.test('kill -9 after registrations and a removal: a restart has exactly what was acknowledged', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'psdns-journal-'));
  t.teardown(() => rmSync(parent, { recursive: true, force: true }));
  const state = join(parent, 'state');
  const args = ['--state-dir', state];
  const d = await startDaemon(t, { args });
  const path = '/api/v1/services/default/web/endpoints';
  for (let i = 1; i <= 3; i++) {
    const res = await fetch(`${d.api}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...d.auth() }, body: JSON.stringify({ id: `w${i}`, address: `10.0.0.${i}` }) });
    t.equal(res.status, 201);
    t.match(res.headers.get('server-timing'), /^read;dur=[\d.]+, wait;dur=[\d.]+, save;dur=[\d.]+, apply;dur=[\d.]+$/, 'the answer says where its time went');
    await res.arrayBuffer();
  }
  t.equal((await fetch(`${d.api}${path}/w2`, { method: 'DELETE', headers: d.auth() })).status, 204);
  t.notOk(existsSync(join(state, 'api-endpoints.json')), 'no whole file per change');
  const journals = readdirSync(state).filter((f) => f.startsWith('api-endpoints.journal.'));
  t.equal(journals.length, 1);
  await d.stop('SIGKILL');
  // What a crash in the middle of a fifth append would leave.
  appendFileSync(join(state, journals[0]!), '0123456789abcdef {"op":"put","namespace":"default","serv');

  const again = await startDaemon(t, { args });
  const ids = ((await apiOverSocket(again, 'GET', path)).body as Array<{ id: string }>).map((e) => e.id).sort();
  t.same(ids, ['w1', 'w3'], 'the registrations and the removal are back, the torn line is not');
  await expectLog(t, again, /API registrations: .*api-endpoints\.journal\.\d+: ignored its last line \(\d+ bytes\), a write cut short by a crash/);
  await expectLog(t, again, /restored 2 API-registered endpoints/);
  // Bounded: the compaction after the replay is one write of a small file.
  for (let i = 0; i < 100 && readdirSync(state).some((f) => f.startsWith('api-endpoints.journal.')); i++) await new Promise((r) => setTimeout(r, 50));
  const whole = JSON.parse(readFileSync(join(state, 'api-endpoints.json'), 'utf8')) as { endpoints: Array<{ id: string }> };
  t.same(whole.endpoints.map((e) => e.id).sort(), ['w1', 'w3'], 'the journal was folded into api-endpoints.json');
  t.same(readdirSync(state).filter((f) => f.startsWith('api-endpoints.journal.')), [], 'and removed');
});
