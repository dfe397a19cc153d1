import t from 'tap';
import { ClientPolicy } from '../../src/dns/clients.js';

t.test("this host's addresses: recursion and local at once; a gone one is dropped by the second pruning read", async (t) => {
  const p = new ClientPolicy([]);
  let changes = 0;
  p.onChange = () => changes++;
  p.setHostAddresses(['10.223.0.10', '10.88.0.1']);
  t.ok(p.recursionAllowed('10.223.0.10') && p.isLocal('10.223.0.10') && p.isHost('10.223.0.10'));
  t.notOk(p.recursionAllowed('10.223.0.11'), 'another address: no');
  p.setHostAddresses(['10.223.0.10', '10.88.0.1'], true);
  t.equal(changes, 1, 'the same set again changes nothing');
  p.setHostAddresses(['10.223.0.10']);
  t.ok(p.isHost('10.88.0.1'), 'gone from a non-pruning read: still counted');
  p.setHostAddresses(['10.223.0.10'], true);
  t.ok(p.isHost('10.88.0.1'), 'missing once from a pruning read: still counted');
  t.equal(changes, 1, 'and no rebuild for it');
  p.setHostAddresses(['10.223.0.10'], true);
  t.notOk(p.isHost('10.88.0.1'), 'missing twice: dropped');
  t.notOk(p.recursionAllowed('10.88.0.1'));
  t.equal(changes, 2);
  p.setHostAddresses(['10.223.0.10', '10.88.0.1'], true);
  p.setHostAddresses(['10.223.0.10'], true);
  p.setHostAddresses(['10.223.0.10', '10.88.0.1'], true);
  p.setHostAddresses(['10.223.0.10'], true);
  t.ok(p.isHost('10.88.0.1'), 'a bridge that comes back resets its count');
});
