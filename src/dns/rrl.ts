import { ipBytes } from '../net/cidr.js';

// Response rate limiting for UDP, as BIND and Knot do it: each client network (/24 for IPv4, /56
// for IPv6) may receive `rate` responses per second (a token bucket holding one second's worth);
// beyond that, responses are dropped, except every `slip`-th one, which goes out truncated (TC,
// no records) so a real client behind a spoofed flood can still retry over TCP. It bounds how
// much the server can be used to amplify a flood aimed at someone else's address. The table is
// bounded: when full, the oldest network is forgotten.

export type RrlVerdict = 'send' | 'drop' | 'slip';

interface Bucket {
  tokens: number;
  at: number;
  limited: number;
}

const MAX_NETWORKS = 16_384;

/** The network a client counts in: its /24 (IPv4, also IPv4-mapped) or /56 (IPv6). */
export function rrlNetwork(ip: string): string {
  const b = ipBytes(ip);
  if (!b) return ip;
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}`;
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  if (mapped) return `${b[12]}.${b[13]}.${b[14]}`;
  return Buffer.from(b.subarray(0, 7)).toString('hex');
}

export class ResponseRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly rate: number,
    private readonly slip: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  check(ip: string): RrlVerdict {
    const key = rrlNetwork(ip);
    const now = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= MAX_NETWORKS) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: this.rate, at: now, limited: 0 };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.rate, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 'send';
    }
    b.limited++;
    return this.slip > 0 && b.limited % this.slip === 0 ? 'slip' : 'drop';
  }
}

/** `reply` cut to its header and question with TC set: the slip response. */
export function truncated(reply: Buffer): Buffer {
  let i = 12;
  while (i < reply.length && reply[i] !== 0 && (reply[i]! & 0xc0) === 0) i += reply[i]! + 1;
  const end = Math.min(reply.length, i + 5);
  const out = Buffer.from(reply.subarray(0, end));
  out[2] = out[2]! | 0x02;
  out.writeUInt16BE(reply.readUInt16BE(4) ? 1 : 0, 4);
  out.fill(0, 6, 12);
  return out;
}

/** Applies `rrl` to a UDP reply: the reply, its truncated form or null (dropped), counted. */
export function limitReply(rrl: ResponseRateLimiter | null, ip: string, reply: Buffer, count: (v: 'rrl_drop' | 'rrl_slip') => void): Buffer | null {
  if (!rrl || reply.length < 12) return reply;
  const v = rrl.check(ip);
  if (v === 'send') return reply;
  count(v === 'slip' ? 'rrl_slip' : 'rrl_drop');
  return v === 'slip' ? truncated(reply) : null;
}
