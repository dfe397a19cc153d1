// Helper of bench/gossip-hosts.mjs, run inside a simulated host: for each line "<name> <mode>" on
// stdin it queries the host's DNS server every 2 ms until the name is answered (mode "up") or no
// longer answered (mode "down"), then prints "<name> <Date.now()>". Arguments: the server's
// address, and its port (default 53).
import './help.mjs';
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import packet from 'dns-packet';

const [server, port = '53'] = process.argv.slice(2);
const sock = createSocket('udp4');
const waiting = new Map();
let id = 0;
sock.on('message', (msg) => {
  let d;
  try {
    d = packet.decode(msg);
  } catch {
    return;
  }
  const name = d.questions?.[0]?.name?.toLowerCase();
  const w = waiting.get(name);
  if (!w) return;
  const answered = (d.answers ?? []).some((a) => a.type === 'A');
  if (answered === (w.mode === 'up')) {
    clearInterval(w.timer);
    waiting.delete(name);
    process.stdout.write(`${name} ${Date.now()}\n`);
  }
});
createInterface({ input: process.stdin }).on('line', (line) => {
  const [name, mode] = line.trim().split(/\s+/);
  if (!name) return;
  const timer = setInterval(() => {
    id = (id + 1) & 0xffff;
    sock.send(packet.encode({ id, type: 'query', questions: [{ name, type: 'A', class: 'IN' }] }), Number(port), server);
  }, 2);
  waiting.set(name.toLowerCase(), { mode, timer });
});
