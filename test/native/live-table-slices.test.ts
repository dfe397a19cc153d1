import t from 'tap';
import * as packet from 'dns-packet';
import { BUDGET_MS, LiveTable } from '../../src/native/live-table.js';
import { ep, node } from '../helpers/registry.js';
import { addon, localEndpoints, skip, world } from '../helpers/native-world.js';

// A change too large for one event-loop turn (a service of hundreds of endpoints changing at
// once) is compiled over several turns: other work runs in between, the previous table answers
// meanwhile, and at the end the native path answers exactly as the JS path. The table's clock
// is a counter (one "millisecond" per look), so how many turns a change takes does not depend on
// how loaded the machine is.

const turn = () => new Promise<void>((r) => setImmediate(r));
const query = (name: string, type: 'A' | 'SRV' = 'A') => packet.encode({ type: 'query', id: 7, flags: packet.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] });

t.test('a large change is patched over several turns, a later change after it', { skip }, async (t) => {
  const w = world();
  let now = 0;
  const sink = { set: (b: Buffer, staged: boolean) => addon!.setTable(b, staged), patch: (p: Buffer) => addon!.patchTable(p), commit: () => addon!.commitTable() };
  const errors: Error[] = [];
  const table = new LiveTable(w.registry, w.zone, w.clients, sink, (e) => errors.push(e), w.containerNames, undefined, () => now++);
  table.start();
  t.teardown(() => {
    table.close();
    w.close();
    addon!.setTable(null);
  });
  for (let i = 0; i < 1000 && table.builds === 0; i++) await turn();
  t.equal(table.builds, 1, 'the first table is in');

  const native = (name: string, type: 'A' | 'SRV' = 'A') => addon!.answer(query(name, type), '127.0.0.1');
  const js = (name: string, type: 'A' | 'SRV' = 'A') => w.handler.handle(query(name, type), { address: '127.0.0.1', port: 5353, transport: 'udp' }) as Buffer;
  const rcode = (b: Buffer | null | undefined) => (b ? (packet.decode(b) as { rcode?: string }).rcode : String(b));
  const before = native('web.default.cluster.local');

  // 600 endpoints of one new service at once: far more names than one turn compiles.
  const wide = Array.from({ length: 600 }, (_, i) => ep('wide', `10.7.${i >> 7}.${(i & 127) + 1}`, { id: `wide${i}`, hostname: `wide-${i}`, ports: { http: { port: 80, protocol: 'tcp' } } }));
  w.registry.apply(node('me', 2, [...localEndpoints(), ...wide]));
  t.equal(table.builds, 1, 'not patched within the change\'s own turn');
  t.equal(rcode(native('wide-599.wide.default.cluster.local')), 'NXDOMAIN', 'meanwhile the previous table answers (the name is not in it yet)');
  t.ok(before && native('web.default.cluster.local')?.equals(before), 'and answers the names it has as before');

  // A small change while the large one is being compiled: patched after it, not lost.
  w.registry.apply(node('other', 2, [ep('late', '10.8.0.1', { id: 'late1', hostname: 'late-1' })], { address: '192.0.2.99' }));
  t.equal(table.builds, 1, 'the small change waits for the large one');

  let turns = 0;
  while (table.builds < 3 && turns < 1000) {
    await turn();
    turns++;
  }
  t.equal(table.builds, 3, 'two patches: the large change, then the one that came meanwhile');
  t.ok(turns >= 3, `the large change took ${turns} turns (at most ${BUDGET_MS} ms each past its first names)`);
  t.ok(table.slicedTurns >= 2, `${table.slicedTurns} turns went on with a compile under way`);
  for (const name of ['wide-0.wide.default.cluster.local', 'wide-599.wide.default.cluster.local', 'wide.default.cluster.local', 'late.default.cluster.local', 'late-1.late.default.cluster.local']) {
    const a = native(name);
    t.ok(a, `${name}: answered natively`);
    t.equal(rcode(a), 'NOERROR', `${name}: found`);
    t.ok(a?.equals(js(name)), `${name}: the same bytes as the JS path`);
  }
  t.ok(native('_http._tcp.wide.default.cluster.local', 'SRV')?.equals(js('_http._tcp.wide.default.cluster.local', 'SRV')), 'the SRV of 600 endpoints as the JS path');
  t.same(errors, [], 'no table errors');
});

t.test('a reload during a sliced patch: the whole table wins, with the change in it', { skip }, async (t) => {
  const w = world();
  let now = 0;
  const sink = { set: (b: Buffer, staged: boolean) => addon!.setTable(b, staged), patch: (p: Buffer) => addon!.patchTable(p), commit: () => addon!.commitTable() };
  const table = new LiveTable(w.registry, w.zone, w.clients, sink, (e) => t.fail(e.message), w.containerNames, undefined, () => now++);
  table.start();
  t.teardown(() => {
    table.close();
    w.close();
    addon!.setTable(null);
  });
  for (let i = 0; i < 1000 && table.builds === 0; i++) await turn();
  const wide = Array.from({ length: 400 }, (_, i) => ep('wide', `10.7.${i >> 7}.${(i & 127) + 1}`, { id: `wide${i}`, hostname: `wide-${i}` }));
  w.registry.apply(node('me', 2, [...localEndpoints(), ...wide]));
  table.schedule();
  for (let i = 0; i < 1000 && table.builds < 2; i++) await turn();
  t.equal(table.builds, 2, 'one whole table (the patch under way was dropped: the table has it)');
  const a = addon!.answer(query('wide-399.wide.default.cluster.local'), '127.0.0.1');
  t.equal(a && (packet.decode(a) as { rcode?: string }).rcode, 'NOERROR', 'the change is answered natively');
});
