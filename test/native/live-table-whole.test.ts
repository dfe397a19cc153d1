import t from 'tap';
import * as packet from 'dns-packet';
import { LiveTable } from '../../src/native/live-table.js';
import { ep, node } from '../helpers/registry.js';
import { addon, skip, world } from '../helpers/native-world.js';

// A whole table (a reload, the end of the start grace, a new Podman bridge) is compiled in
// slices into a staged table while the installed one answers. A small registry change meanwhile
// (an API registration) is answered by the installed table at once, not after the whole table
// (~1 s of slices at 10,000 services), and the whole table has it too once it is in. The
// table's clock is a counter (one "millisecond" per look), so the number of turns does not depend
// on the machine's load.

const turn = () => new Promise<void>((r) => setImmediate(r));
const query = (name: string) => packet.encode({ type: 'query', id: 7, flags: packet.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] });
const addresses = (b: Buffer | null | undefined): string[] =>
  b ? ((packet.decode(b).answers ?? []) as Array<{ type: string; data: string }>).filter((a) => a.type === 'A').map((a) => a.data) : [];

t.test('a change during a whole table is answered at once, and is in the whole table', { skip }, async (t) => {
  const w = world();
  let now = 0;
  const sink = {
    set: (b: Buffer, staged: boolean) => addon!.setTable(b, staged),
    patch: (p: Buffer, installed?: boolean) => addon!.patchTable(p, installed),
    commit: () => addon!.commitTable(),
  };
  const errors: Error[] = [];
  const table = new LiveTable(w.registry, w.zone, w.clients, sink, (e) => errors.push(e), w.containerNames, undefined, () => now++);
  t.teardown(() => {
    table.close();
    w.close();
    addon!.setTable(null);
  });
  // 1,500 services on another node: a whole table takes many turns.
  const bulk = Array.from({ length: 1500 }, (_, i) => ep(`bulk${i}`, `10.50.${i >> 8}.${i & 255}`, { id: `b${i}`, hostname: `b-${i}` }));
  w.registry.apply(node('bulk', 1, bulk));
  table.start();
  for (let i = 0; i < 5000 && table.builds === 0; i++) await turn();
  t.equal(table.builds, 1, 'the first table is in');
  const native = (name: string) => addresses(addon!.answer(query(name), '127.0.0.1'));
  t.same(native('bulk7.default.cluster.local'), ['10.50.0.7']);

  table.schedule(); // as a reload does: a whole table, staged
  await turn();
  t.equal(table.builds, 1, 'the whole table is being compiled');

  // A new endpoint of an existing service and a new service, as two API registrations would add.
  w.registry.apply(node('bulk', 2, [...bulk, ep('bulk1400', '10.60.0.1', { id: 'new1', hostname: 'new-1' })]));
  w.registry.apply(node('api', 1, [ep('fresh', '10.60.0.2', { id: 'fresh1', hostname: 'fresh-1' })]));
  t.equal(table.builds, 1, 'the whole table is still not in');
  t.same(native('bulk1400.default.cluster.local').sort(), ['10.50.5.120', '10.60.0.1'], 'the installed table answers the new endpoint at once');
  t.same(native('fresh.default.cluster.local'), ['10.60.0.2'], 'and the new service');
  t.same(native('bulk3.default.cluster.local'), ['10.50.0.3'], 'and the rest as before');

  let turns = 0;
  while (table.builds < 2 && turns < 5000) {
    await turn();
    turns++;
  }
  t.ok(turns > 2, `the whole table took ${turns} more turns`);
  for (let i = 0; i < 100 && table.builds < 3; i++) await turn(); // the changes, patched into the new table
  t.same(native('bulk1400.default.cluster.local').sort(), ['10.50.5.120', '10.60.0.1'], 'the whole table has the change');
  t.same(native('fresh.default.cluster.local'), ['10.60.0.2']);
  t.same(native('bulk1499.default.cluster.local'), ['10.50.5.219']);
  // Removed during the next whole table: gone at once too.
  table.schedule();
  await turn();
  w.registry.apply(node('api', 2, []));
  t.same(native('fresh.default.cluster.local'), [], 'a removal meanwhile is answered at once');
  for (let i = 0; i < 5000 && table.builds < 4; i++) await turn();
  for (let i = 0; i < 100; i++) await turn();
  t.same(native('fresh.default.cluster.local'), [], 'and stays removed in the whole table');
  t.same(errors, [], 'no table errors');
});
