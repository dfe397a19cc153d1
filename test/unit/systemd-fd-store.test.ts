import t from 'tap';
import { FdStore, listenFds } from '../../src/systemd/fd-store.js';
import { createLogger } from '../../src/log.js';
import { socketName } from '../../src/net/sockets.js';

t.test('LISTEN_FDS: only for our PID, bounded, by name from 3 on', async (t) => {
  const env = { LISTEN_PID: '42', LISTEN_FDS: '3', LISTEN_FDNAMES: 'dns-udp/127.0.0.1/53:dns-udp/127.0.0.1/53:api/127.0.0.1/8080' };
  t.same([...listenFds(env, 42)], [['dns-udp/127.0.0.1/53', [3, 4]], ['api/127.0.0.1/8080', [5]]]);
  t.same([...listenFds(env, 43)], [], 'another process\'s descriptors');
  t.same([...listenFds({ ...env, LISTEN_FDS: '99999' }, 42)], [], 'an absurd count is ignored');
  t.same([...listenFds({ ...env, LISTEN_FDS: 'x' }, 42)], []);
  t.same([...listenFds({ LISTEN_PID: '42', LISTEN_FDS: '1' }, 42)], [['unknown', [3]]], 'no names: "unknown", as systemd says');
});

t.test('names carry no ":" (the LISTEN_FDNAMES separator)', async (t) => {
  t.equal(socketName('dns-udp', 'fd00::1', 53), 'dns-udp/fd00__1/53');
});

t.test('kept sockets go to systemd as FDSTORE=1 with their name; not without systemd or the addon', async (t) => {
  const log = createLogger('error');
  const sent: Array<[string, number[]]> = [];
  const send = (m: string, fds: number[]): boolean => (sent.push([m, fds]), true);
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/systemd/notify', LISTEN_PID: '7', LISTEN_FDS: '1', LISTEN_FDNAMES: 'api/127.0.0.1/8080' };
  const store = new FdStore(env, send, log, 7);
  t.notOk('LISTEN_FDS' in env || 'LISTEN_PID' in env || 'LISTEN_FDNAMES' in env, 'children do not see the variables');
  t.same(store.take('api/127.0.0.1/8080'), [3]);
  t.same(store.take('api/127.0.0.1/8080'), [], 'taken once');
  store.keep('dns-udp/127.0.0.1/53', [10, 11]);
  store.forget('dns-udp/10.0.0.1/53');
  t.same(sent, [['FDSTORE=1\nFDNAME=dns-udp/127.0.0.1/53', [10, 11]], ['FDSTOREREMOVE=1\nFDNAME=dns-udp/10.0.0.1/53', []]]);

  const none: Array<[string, number[]]> = [];
  new FdStore({}, (m, f) => (none.push([m, f]), true), log).keep('x', [1]);
  new FdStore({ NOTIFY_SOCKET: '/x' }, null, log).keep('x', [1]);
  new FdStore({ NOTIFY_SOCKET: '/x', FDSTORE: '0' }, (m, f) => (none.push([m, f]), true), log).keep('x', [1]);
  t.same(none, [], 'no systemd, no addon, or a store of 0: nothing sent');
});

t.test('a descriptor notification that cannot be sent: one warning, then no more attempts', async (t) => {
  const lines: string[] = [];
  const log = createLogger('info', { write: (l: string) => lines.push(l) } as unknown as NodeJS.WritableStream);
  let attempts = 0;
  const store = new FdStore({ NOTIFY_SOCKET: '/x' }, () => (attempts++, false), log);
  store.keep('a', [1]);
  store.keep('b', [2]);
  t.equal(attempts, 1);
  t.equal(lines.filter((l) => /did not take socket a/.test(l)).length, 1);
});
