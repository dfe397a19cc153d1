import t from 'tap';
import * as packet from 'dns-packet';
import { LiveTable } from '../../src/native/live-table.js';
import { addon, skip, world } from '../helpers/native-world.js';

// The native path and rootless users' container names: while some user's names are known, a
// query from this host's own address may be that user's (the JS path finds out by the sending
// socket's uid), so the native table no longer answers container names to this host's addresses
// by address alone; zone names it still answers, and container names to bridge networks too.

t.test("rootless users' names known: container names from this host's address go to JS", { skip }, async (t) => {
  const w = world();
  w.clients.setHostAddresses(['10.223.0.10']);
  const sink = { set: (b: Buffer, staged: boolean) => addon!.setTable(b, staged), patch: (p: Buffer) => addon!.patchTable(p), commit: () => addon!.commitTable() };
  const table = new LiveTable(w.registry, w.zone, w.clients, sink, (e) => t.fail(e.message), w.containerNames);
  // As src/native/dns.ts wires it: a change of what this host's addresses see rebuilds the whole table.
  w.containerNames.onChange = (hostView) => (hostView ? table.schedule() : table.containersChanged());
  t.teardown(() => {
    table.close();
    w.close();
  });
  const settled = async (): Promise<void> => {
    const before = table.builds;
    for (let i = 0; i < 1000 && table.builds === before; i++) await new Promise((r) => setImmediate(r));
    t.ok(table.builds > before, 'the table follows');
  };
  table.start();
  await settled();
  const q = (name: string) => packet.encode({ id: 9, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name, type: 'A' }] });
  const fast = (name: string, client: string) => {
    const r = addon!.answer(q(name), client);
    return r ? packet.decode(r).answers!.map((a) => (a as { data: string }).data) : r;
  };
  t.same(fast('cache', '10.223.0.10'), ['10.88.0.21'], "no user's names: this host's address gets root's natively");

  w.containerNames.setOwnerContainers(1000, [{ names: ['cache'], networks: { n1: ['10.88.0.99'] } }]);
  await settled();
  t.equal(fast('cache', '10.223.0.10'), undefined, "a user's names known: handed to JS, which asks who sent it");
  t.ok(fast('web.default.cluster.local', '10.223.0.10')?.length, 'zone names still answered natively');
  t.same(fast('cache', '10.88.0.7'), ['10.88.0.21'], "a root container on n1 still gets root's natively");

  w.containerNames.setOwnerContainers(1000, null);
  await settled();
  t.same(fast('cache', '10.223.0.10'), ['10.88.0.21'], 'the user gone: natively again');
});
