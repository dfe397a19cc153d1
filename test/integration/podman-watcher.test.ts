import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { PodmanClient } from '../../src/podman/client.js';
import type { ContainerFacts } from '../../src/podman/endpoints.js';
import { PodmanWatcher } from '../../src/podman/watcher.js';
import { fakeLibpod, fakeLibpodAt } from '../helpers/libpod.js';
import { waiter } from '../helpers/until.js';

const until = waiter(5000);

// The watcher's ordering guard and reconnects. A real Podman cannot be made to answer an inspect
// late on demand, so this drives the watcher with a small server speaking the libpod endpoints
// it uses, over a real unix socket; the e2e tests cover the real Podman.

function watch(t: { teardown(fn: () => unknown): void }, socket: string) {
  const state = { all: [] as ContainerFacts[], emits: 0, logs: [] as string[] };
  const w = new PodmanWatcher(
    new PodmanClient(socket),
    { resyncIntervalMs: 3_600_000, nodeAddress: '192.0.2.1', backoffMinMs: 20, backoffMaxMs: 50 },
    { containers: (all) => ((state.all = all), state.emits++), networks: () => undefined, healthEvent: () => undefined },
    pino({ level: 'info' }, { write: (line: string) => void state.logs.push((JSON.parse(line) as { msg: string }).msg) }),
  );
  w.start();
  t.teardown(() => w.stop());
  return { w, state, endpoints: () => state.all.filter((c) => c.endpoint).map((c) => c.id) };
}

t.test('an inspect answered after the container died does not bring it back', async (t) => {
  const pod = fakeLibpod(t);
  await pod.listening;
  const { w, endpoints } = watch(t, pod.socket);
  await until('connected', () => w.connected);
  pod.running.add('c1');
  pod.hold('c1');
  pod.event('start', 'c1');
  await until('the inspect to be in flight', () => pod.heldCount('c1') === 1);
  pod.running.delete('c1');
  pod.event('died', 'c1');
  await new Promise((r) => setTimeout(r, 50));
  pod.release('c1'); // answers "running" — stale
  await new Promise((r) => setTimeout(r, 100));
  t.same(endpoints(), [], 'still gone');
  pod.running.add('c1');
  pod.event('start', 'c1');
  await until('a later start to register it', () => endpoints().length === 1);
  t.pass('a start after the death registers it again');
});

t.test('stream lost: known containers kept, reconnect, resync drops what went away meanwhile', async (t) => {
  const pod = fakeLibpod(t);
  await pod.listening;
  pod.running.add('a').add('b');
  const { w, endpoints } = watch(t, pod.socket);
  await until('the first resync', () => endpoints().length === 2);
  pod.dropStreams();
  pod.running.delete('b');
  pod.running.add('c');
  await until('the resync after the reconnect', () => endpoints().sort().join() === 'a,c');
  t.ok(w.connected);
});

t.test('Podman absent, then there: one line for each change of state, not one per retry', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'p3-libpod-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, 'later.sock');
  const { w, state } = watch(t, socket);
  await new Promise((r) => setTimeout(r, 400)); // several retries (backoff 20–50 ms)
  t.equal(state.logs.filter((m) => /is not reachable/.test(m)).length, 1, 'one warning while absent');
  t.notOk(w.connected);
  const pod = fakeLibpodAt(t, socket);
  await pod.listening;
  await until('connected', () => w.connected);
  t.equal(state.logs.filter((m) => /connected to Podman/.test(m)).length, 1);
});
