import t from 'tap';
import { addressProblem } from '../../src/registry/input.js';

// Which addresses an endpoint may not have: the same answers whatever way they are checked
// (IPv4 by its first number, IPv6 by a BlockList).

t.test('unreachable addresses are refused, with the reason', async (t) => {
  for (const a of ['0.0.0.0', '0.1.2.3', '::', '0::0', '0:0:0:0:0:0:0:0']) t.match(addressProblem(a), /unspecified/, a);
  for (const a of ['224.0.0.1', '230.1.2.3', '239.255.255.255', '255.255.255.255', 'ff02::1', 'FF05::2']) t.match(addressProblem(a), /multicast or broadcast/, a);
  t.match(addressProblem('fe80::1%eth0'), /scoped/);
  for (const a of ['10.0.0.1.5', 'example.com', '', '1.2.3']) t.match(addressProblem(a), /not an IPv4 or IPv6 address/, a);
});

t.test('ordinary addresses pass', async (t) => {
  for (const a of ['1.0.0.0', '10.0.0.1', '192.0.2.7', '223.255.255.255', '240.0.0.1', '255.255.255.254', '127.0.0.1', 'fd00::1', '2001:db8::1', '::1', 'fe80::1']) {
    t.equal(addressProblem(a), null, a);
  }
});
