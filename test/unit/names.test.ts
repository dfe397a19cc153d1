import t from 'tap';
import { reverseAddress, zoneLabels } from '../../src/dns/names.js';
import { addressAt, canonicalIp, cidrContains, ipBytes, parseCidr } from '../../src/net/cidr.js';

t.test('reverse names', async (t) => {
  t.equal(reverseAddress('4.3.2.1.in-addr.arpa'), '1.2.3.4');
  t.equal(reverseAddress('4.3.2.1.IN-ADDR.ARPA.'), '1.2.3.4');
  t.equal(reverseAddress('3.2.1.in-addr.arpa'), null, 'partial');
  t.equal(reverseAddress('256.3.2.1.in-addr.arpa'), null);
  t.equal(reverseAddress('04.3.2.1.in-addr.arpa'), null, 'leading zero');
  t.equal(reverseAddress(`1.0.0.0${'.0'.repeat(20)}.8.b.d.0.1.0.0.2.ip6.arpa`), '2001:db8::1');
  t.equal(reverseAddress('x.ip6.arpa'), null);
});

t.test('zone labels', async (t) => {
  t.same(zoneLabels('web.default.cluster.local', 'cluster.local'), ['web', 'default']);
  t.same(zoneLabels('cluster.local', 'cluster.local'), []);
  t.equal(zoneLabels('xcluster.local', 'cluster.local'), null);
  t.equal(zoneLabels('example.com', 'cluster.local'), null);
});

t.test('CIDRs', async (t) => {
  const c = parseCidr('10.223.0.0/16')!;
  t.ok(cidrContains(c, '10.223.255.1'));
  t.notOk(cidrContains(c, '10.224.0.1'));
  t.ok(cidrContains(c, '::ffff:10.223.1.1'), 'IPv4-mapped IPv6 source');
  t.ok(cidrContains(parseCidr('fd00::/8')!, 'fd12::1'));
  t.notOk(cidrContains(parseCidr('fd00::/8')!, '10.0.0.1'));
  t.ok(cidrContains(parseCidr('0.0.0.0/0')!, '1.2.3.4'));
  t.equal(parseCidr('10.0.0.0/33'), null);
  t.equal(parseCidr('nope/8'), null);
  t.equal(addressAt(c, 10), '10.223.0.10');
  t.equal(addressAt(parseCidr('10.0.0.250/24')!, 10), '10.0.1.4', 'carries into the next byte');
  t.equal(addressAt(parseCidr('fd00::/64')!, 10), 'fd00::a');
  t.equal(canonicalIp('FD00:0:0::1'), 'fd00::1');
  t.equal(canonicalIp('10.64.0.1'), '10.64.0.1');
  t.equal(canonicalIp('::ffff:10.64.0.1'), '::ffff:a40:1', 'a mapped address keeps its IPv6 spelling');
  t.equal(canonicalIp('010.64.0.1'), '010.64.0.1', 'not an address: as it is');
  t.same(ipBytes('255.0.10.7'), Uint8Array.from([255, 0, 10, 7]));
  t.same(ipBytes('0.0.0.0'), Uint8Array.from([0, 0, 0, 0]));
  t.equal(ipBytes('1.2.3.256'), null);
});
