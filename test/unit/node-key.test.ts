import t from 'tap';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNodeKey } from '../../src/state/node-key.js';
import { nodeIdOf, verifyProof } from '../../src/gossip/identity.js';

// The node's signing key in the state directory: made once (0600), the node id derived from it,
// an older version's random node id replaced with a log note, a damaged key moved aside.

t.test('first start makes a 0600 key; the id is derived from it and stays across restarts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'node-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = loadNodeKey(dir);
  t.equal(first.problem, null);
  t.match(first.notes.join('\n'), /made the node's signing key .*node\.key; node id [0-9a-f]{32}/);
  t.equal(statSync(first.path).mode & 0o777, 0o600, 'readable by the daemon only');
  t.equal(first.identity.id, nodeIdOf(first.identity.publicKey));
  t.equal(JSON.parse(readFileSync(join(dir, 'node-id'), 'utf8')), first.identity.id, 'node-id holds it too');
  const again = loadNodeKey(dir);
  t.equal(again.identity.id, first.identity.id, 'same id after a restart');
  t.same(again.notes, [], 'nothing to say the second time');
  const data = new TextEncoder().encode('hello');
  t.ok(verifyProof(first.identity.id, data, again.identity.prove(data)), 'the same key signs');
  chmodSync(first.path, 0o644);
  t.match(loadNodeKey(dir).notes.join(), /readable by other users: made it 0600/);
  t.equal(statSync(first.path).mode & 0o777, 0o600);
});

t.test("an older version's node id is replaced, and said so", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'node-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'node-id'), JSON.stringify('0123456789abcdef'));
  const k = loadNodeKey(dir);
  t.match(k.notes.join('\n'), new RegExp(`node id 0123456789abcdef is replaced by ${k.identity.id}, derived from the node's signing key`));
});

t.test('a damaged key is moved aside and replaced', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'node-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const old = loadNodeKey(dir).identity.id;
  writeFileSync(join(dir, 'node.key'), 'not a key');
  const k = loadNodeKey(dir);
  t.equal(k.problem, null);
  t.match(k.warnings.join('\n'), /node\.key is not a usable key .*moved to .*node\.key\.corrupt-.*a new member/);
  t.not(k.identity.id, old, 'a new id');
  t.ok(readdirSync(dir).some((f) => f.startsWith('node.key.corrupt-')));
});

t.test('forged proofs do not verify', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'node-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const a = loadNodeKey(join(dir, 'a')).identity;
  const b = loadNodeKey(join(dir, 'b')).identity;
  const data = new TextEncoder().encode('state');
  t.notOk(verifyProof(a.id, data, b.prove(data)), "b's key does not speak for a");
  const sig = a.prove(data);
  t.notOk(verifyProof(a.id, new TextEncoder().encode('statE'), sig), 'other bytes');
  t.notOk(verifyProof(a.id, data, { pub: sig.pub, sig: new Uint8Array(64) }), 'a zero signature');
  t.notOk(verifyProof(a.id, data, undefined), 'no proof');
  t.ok(verifyProof(a.id, data, sig));
});
