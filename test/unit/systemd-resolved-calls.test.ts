import t from 'tap';
import { addressBytes, revertLink, setLinkDefaultRoute, setLinkDns, setLinkDnsEx, setLinkDomains } from '../../src/systemd/resolved-calls.js';

t.test('addresses as resolved wants them: family and raw bytes', async (t) => {
  t.same(addressBytes('10.223.0.10'), { family: 2, bytes: Buffer.from([10, 223, 0, 10]) });
  t.same(addressBytes('fd00::a'), { family: 10, bytes: Buffer.from('fd00000000000000000000000000000a', 'hex') });
  t.same(addressBytes('::1'), { family: 10, bytes: Buffer.from('00000000000000000000000000000001', 'hex') });
  t.same(addressBytes('2001:db8:0:0:1:2:3:4'), { family: 10, bytes: Buffer.from('20010db8000000000001000200030004', 'hex') });
  t.same(addressBytes('::ffff:10.0.0.1'), { family: 10, bytes: Buffer.from('00000000000000000000ffff0a000001', 'hex') });
  t.throws(() => addressBytes('pswarm0'));
});

t.test('the calls resolvectl makes, with their D-Bus signatures', async (t) => {
  t.same(setLinkDnsEx(4, [{ address: '10.223.0.10', port: 53 }, { address: '127.0.0.1', port: 5353 }]), {
    member: 'SetLinkDNSEx', signature: 'ia(iayqs)',
    body: [4, [[2, Buffer.from([10, 223, 0, 10]), 0, ''], [2, Buffer.from([127, 0, 0, 1]), 5353, '']]],
  });
  t.same(setLinkDns(4, [{ address: '10.223.0.10', port: 53 }]), { member: 'SetLinkDNS', signature: 'ia(iay)', body: [4, [[2, Buffer.from([10, 223, 0, 10])]]] });
  t.same(setLinkDomains(4, ['cluster.local.']), { member: 'SetLinkDomains', signature: 'ia(sb)', body: [4, [['cluster.local', true]]] });
  t.same(setLinkDefaultRoute(4, false), { member: 'SetLinkDefaultRoute', signature: 'ib', body: [4, false] });
  t.same(revertLink(4), { member: 'RevertLink', signature: 'i', body: [4] });
});
