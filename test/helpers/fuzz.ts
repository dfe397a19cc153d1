import { createSocket } from 'node:dgram';
import { decode } from './dns.js';

// Malformed-packet generation shared by the JS-path and native-path fuzz tests: deterministic
// (seeded xorshift) so a failure replays, and covering the shapes parsers get wrong — noise,
// flipped bytes, truncation anywhere, absurd section counts, compression pointers into the header
// and loops, bad label lengths, oversized trailing garbage, broken OPT framing, odd opcodes/flags.

export function mutator(seeds: Buffer[], seed: number): () => Buffer {
  let state = seed;
  const rand = (n: number): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
  return () => {
    const kind = rand(9);
    if (kind === 0) return Buffer.from(Array.from({ length: rand(600) }, () => rand(256)));
    const b = Buffer.from(seeds[rand(seeds.length)]!);
    switch (kind) {
      case 1:
        for (let i = rand(6) + 1; i > 0; i--) b[rand(b.length)] = rand(256);
        return b;
      case 2:
        return b.subarray(0, rand(b.length));
      case 3:
        b.writeUInt16BE(rand(65536), 4 + 2 * rand(4));
        return b;
      case 4:
        b[12 + rand(b.length - 12)] = 0xc0 | rand(64);
        if (b.length > 14 && rand(2)) b[13] = rand(b.length);
        return b;
      case 5:
        b[12 + rand(Math.min(30, b.length - 12))] = rand(256);
        return b;
      case 6:
        return Buffer.concat([b, Buffer.alloc(rand(4000), rand(256))]);
      case 7: // an OPT record with random option framing
        return Buffer.concat([b.subarray(0, 10), Buffer.from([0, 1]), b.subarray(12), Buffer.from([0, 0, 41, rand(256), rand(256), 0, rand(3), rand(256), 0, 0, rand(20)]), Buffer.alloc(rand(20), rand(256))]);
      default:
        b.writeUInt16BE(rand(65536) & 0x7fff, 2);
        return b;
    }
  };
}

/** Sends `total` packets from `next` to 127.0.0.1:port; counts the replies and the undecodable ones. */
export async function floodUdp(port: number, total: number, next: () => Buffer): Promise<{ replies: number; badReplies: number }> {
  const sock = createSocket('udp4');
  const counts = { replies: 0, badReplies: 0 };
  sock.on('message', (m) => {
    counts.replies++;
    try {
      decode(m);
    } catch {
      counts.badReplies++;
    }
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  for (let sent = 0; sent < total; ) {
    // Batches with a pause, so the kernel buffers do not just drop everything.
    for (let i = 0; i < 200 && sent < total; i++, sent++) sock.send(next(), port, '127.0.0.1');
    await new Promise((r) => setImmediate(r));
    if (sent % 5000 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 1000));
  sock.close();
  return counts;
}
