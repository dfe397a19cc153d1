import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sdNotify } from '../../src/native/index.js';
import { skip } from '../helpers/native-world.js';

// sd_notify through the addon: a real unix datagram socket (bound by python3, since Node has
// none) receives what sdNotify sends, on a path and in the abstract namespace.

/** Binds a unix datagram socket at `address` and resolves with the datagrams it got. */
function receiver(address: string, count: number): { ready: Promise<void>; got: Promise<string[]> } {
  const script = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
a = sys.argv[1]
s.bind('\\0' + a[1:] if a.startswith('@') else a)
print('bound', flush=True)
s.settimeout(10)
for _ in range(int(sys.argv[2])):
    print(repr(s.recv(4096).decode()), flush=True)
`;
  const p = spawn('python3', ['-c', script, address, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let onBound: () => void;
  const ready = new Promise<void>((r) => (onBound = r));
  p.stdout.on('data', (c: Buffer) => {
    out += c.toString();
    if (out.startsWith('bound\n')) onBound();
  });
  const got = new Promise<string[]>((resolve) => p.on('exit', () => resolve(out.split('\n').slice(1).filter(Boolean))));
  return { ready, got };
}

t.test('sdNotify sends READY=1 and STATUS= to NOTIFY_SOCKET', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'n5-notify-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'notify.sock');
  const r = receiver(path, 2);
  await r.ready;
  const env = { NOTIFY_SOCKET: path };
  t.equal(sdNotify('READY=1\nSTATUS=serving 3 services', env), true);
  t.equal(sdNotify('STATUS=reloading', env), true);
  t.same(await r.got, [`'READY=1\\nSTATUS=serving 3 services'`, `'STATUS=reloading'`]);
});

t.test('abstract namespace sockets ("@name")', { skip }, async (t) => {
  const name = `@n5-notify-${process.pid}-${Date.now()}`;
  const r = receiver(name, 1);
  await r.ready;
  t.equal(sdNotify('READY=1', { NOTIFY_SOCKET: name }), true);
  t.same(await r.got, [`'READY=1'`]);
});

t.test('without NOTIFY_SOCKET, or with nobody listening, it returns false', { skip }, async (t) => {
  t.equal(sdNotify('READY=1', {}), false);
  t.equal(sdNotify('READY=1', { NOTIFY_SOCKET: join(tmpdir(), `n5-none-${process.pid}.sock`) }), false);
});
