import t from 'tap';
import { Worker } from 'node:worker_threads';
import * as packet from 'dns-packet';
import { udpExchange } from '../helpers/dns.js';
import { addon, skip, world } from '../helpers/native-world.js';
import { NativeUdp } from '../../src/native/udp.js';

// The queries the native threads hand to JS wait in a queue bounded in time: when the event loop
// was busy for longer than the queries' clients wait, they are dropped and counted instead of
// answered late (and delaying everything behind them, gossip included). The busy loop here is a
// real one: the test's own thread blocked while another thread sends.

/** A query the native path hands to JS (class CHAOS). */
const odd = (id: number): Buffer => packet.encode({ id, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name: 'web.default.cluster.local', type: 'A', class: 'CH' }] });

// Sends `n` queries when told, signals when they are out, then counts the answers for 1 s.
const SENDER = `
const { parentPort, workerData } = require('node:worker_threads');
const dgram = require('node:dgram');
const flag = new Int32Array(workerData.flag);
const s = dgram.createSocket('udp4');
let answers = 0;
s.on('message', () => answers++);
parentPort.once('message', ({ port, packets }) => {
  let left = packets.length;
  for (const p of packets) s.send(Buffer.from(p), port, '127.0.0.1', () => {
    if (--left === 0) { Atomics.store(flag, 0, 1); Atomics.notify(flag, 0); }
  });
  setTimeout(() => { parentPort.postMessage(answers); s.close(); }, 1000);
});
`;

t.test('queries that waited too long for a busy event loop are dropped and counted, fresh ones answered', { skip }, async (t) => {
  const w = world();
  t.teardown(() => w.close());
  w.install();
  const udp = new NativeUdp(addon!, w.handler, 1, 1 << 20);
  const ep = udp.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => ep.close());

  // Handed to JS and answered while the loop is free.
  const first = await udpExchange(ep.port, odd(1));
  t.ok(first, 'an odd query is answered by the JS path');
  t.equal(udp.drain().handoffLate, 0);

  const flag = new Int32Array(new SharedArrayBuffer(4));
  const sender = new Worker(SENDER, { eval: true, workerData: { flag: flag.buffer } });
  t.teardown(() => sender.terminate());
  const answered = new Promise<number>((resolve) => sender.once('message', resolve));
  sender.postMessage({ port: ep.port, packets: Array.from({ length: 50 }, (_, i) => odd(100 + i)) });
  // This thread is now "busy": it waits (bounded) until the 50 queries are out, then 300 ms more,
  // longer than a handed-over query may wait (200 ms).
  Atomics.wait(flag, 0, 0, 5000);
  t.equal(Atomics.load(flag, 0), 1, 'the queries were sent while the loop was blocked');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);

  t.equal(await answered, 0, 'none of the stale queries got a (late) answer');
  t.equal(udp.drain().handoffLate, 50, 'all 50 counted as dropped late');
  t.ok(await udpExchange(ep.port, odd(2)), 'a fresh query is answered again');
});
