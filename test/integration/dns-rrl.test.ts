import t from 'tap';
import { createSocket } from 'node:dgram';
import { startDaemon, waitReady, type RunningDaemon } from '../helpers/daemon.js';
import { decode, query } from '../helpers/dns.js';
import { skip } from '../helpers/native-world.js';
import * as packet from 'dns-packet';
import { limitReply, ResponseRateLimiter, rrlNetwork, truncated } from '../../src/dns/rrl.js';

// Response rate limiting (--dns-rrl): a client network over the rate gets most answers dropped
// and every second limited one truncated (TC: a real client retries over TCP), while another
// network is unaffected. On the JS path and on the native UDP threads, against a real daemon.

const CONFIG = `services:
  - name: web
    endpoints:
      - { address: 10.0.0.1 }
`;

/** Sends `n` queries at once from `local`; the replies that came back within 1 s. */
function burst(port: number, local: string, n: number): Promise<Buffer[]> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const got: Buffer[] = [];
    s.on('message', (m) => got.push(m));
    s.bind(0, local, () => {
      for (let i = 0; i < n; i++) s.send(query('web.default.cluster.local', 'A', { id: i }), port, '127.0.0.1');
      setTimeout(() => {
        s.close();
        resolve(got);
      }, 1000);
    });
  });
}

async function shed(d: RunningDaemon, reason: string): Promise<number> {
  const text = await (await fetch(`${d.api}/metrics`)).text();
  return Number(new RegExp(`dns_shed_total\\{reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
}

for (const path of ['js', 'native'] as const) {
  t.test(`--dns-rrl on the ${path} path: drops and TC slips for the flooding /24, none for another`, { skip: path === 'native' ? skip : false }, async (t) => {
    const d = await startDaemon(t, { config: CONFIG, env: { PODMAN_SWARM_DNS_NATIVE: path === 'js' ? '0' : '1' }, args: ['--dns-rrl', '10', '--dns-rrl-slip', '2'] });
    await waitReady(d);
    const flood = await burst(d.dnsPort, '127.0.0.1', 200);
    const full = flood.filter((m) => !decode(m).flag_tc && decode(m).answers?.length === 1);
    const tc = flood.filter((m) => decode(m).flag_tc);
    t.ok(full.length >= 1 && full.length < 50, `${full.length} of 200 answered in full (10/s, a second's worth of burst)`);
    t.ok(tc.length >= 50, `${tc.length} truncated slips (every 2nd limited one)`);
    t.ok(tc.every((m) => decode(m).answers?.length === 0 && decode(m).questions?.[0]?.name === 'web.default.cluster.local'), 'a slip is the question with TC, no records');
    t.ok(flood.length < 150, `${flood.length} replies in all: the rest dropped`);
    const other = await burst(d.dnsPort, '127.0.9.1', 5);
    t.equal(other.filter((m) => !decode(m).flag_tc && decode(m).answers?.length === 1).length, 5, 'another /24 gets every answer');
    // The native counters reach the metrics once a second.
    for (let i = 0; i < 30 && (await shed(d, 'rrl_drop')) === 0; i++) await new Promise((r) => setTimeout(r, 200));
    t.ok((await shed(d, 'rrl_drop')) >= 1, 'drops counted');
    t.equal(await shed(d, 'rrl_slip'), tc.length, 'slips counted');
  });
}

t.test('the limiter: networks, the bucket, the slip', async (t) => {
  t.equal(rrlNetwork('192.0.2.77'), rrlNetwork('192.0.2.1'), 'one /24');
  t.not(rrlNetwork('192.0.3.1'), rrlNetwork('192.0.2.1'));
  t.equal(rrlNetwork('::ffff:192.0.2.9'), rrlNetwork('192.0.2.1'), 'IPv4-mapped is IPv4');
  t.equal(rrlNetwork('2001:db8:0:ff::1'), rrlNetwork('2001:db8:0:1::2'), 'one /56');
  t.not(rrlNetwork('2001:db8:0:100::1'), rrlNetwork('2001:db8:0:1::2'));
  let now = 0;
  const rrl = new ResponseRateLimiter(5, 3, () => now);
  const v = Array.from({ length: 11 }, () => rrl.check('192.0.2.1'));
  t.same(v, ['send', 'send', 'send', 'send', 'send', 'drop', 'drop', 'slip', 'drop', 'drop', 'slip']);
  now = 400; // 2 answers' worth refilled
  t.same([rrl.check('192.0.2.1'), rrl.check('192.0.2.1'), rrl.check('192.0.2.1')], ['send', 'send', 'drop']);
  const reply = packet.encode({ id: 9, type: 'response', flags: packet.AUTHORITATIVE_ANSWER, questions: [{ name: 'web.default.cluster.local', type: 'A' }], answers: [{ name: 'web.default.cluster.local', type: 'A', ttl: 5, data: '10.0.0.1' }] });
  const slip = decode(truncated(reply));
  t.same([slip.id, slip.flag_tc, slip.flag_aa, slip.questions?.[0]?.name, slip.answers?.length], [9, true, true, 'web.default.cluster.local', 0], 'a slip: the question, TC, nothing else');
  const counted: string[] = [];
  const off = limitReply(null, '192.0.2.1', query('x.example'), (r) => counted.push(r));
  t.ok(off, 'off: every reply goes out');
  t.same(counted, []);
});
