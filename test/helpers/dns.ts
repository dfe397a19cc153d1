import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { Socket } from 'node:net';
import * as packet from 'dns-packet';

// DNS clients for tests: `dig` (the real tool users run) and a raw dns-packet client for the
// cases dig cannot produce (malformed packets, exact flags).

export function dig(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('dig', ['+time=3', '+tries=1', ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err && !stdout) reject(new Error(`dig ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** `dig +short` lines, sorted (rotation changes the order). */
export async function digShort(port: number, ...args: string[]): Promise<string[]> {
  const out = await dig(['@127.0.0.1', '-p', String(port), '+short', ...args]);
  return out.split('\n').filter((l) => l && !l.startsWith(';')).sort();
}

export const digStatus = (out: string): string | undefined => /status: (\w+)/.exec(out)?.[1];

export function udpExchange(port: number, msg: Buffer, opts: { host?: string; localAddress?: string; timeoutMs?: number } = {}): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      resolve(null);
    }, opts.timeoutMs ?? 2000);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m);
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      s.close();
      reject(e);
    });
    const send = (): void => s.send(msg, port, opts.host ?? '127.0.0.1');
    if (opts.localAddress) s.bind(0, opts.localAddress, send);
    else send();
  });
}

export function tcpExchange(port: number, msgs: Buffer[], host = '127.0.0.1'): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const sock = new Socket();
    const replies: Buffer[] = [];
    let buf = Buffer.alloc(0);
    sock.on('data', (c) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        replies.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (replies.length === msgs.length) {
        sock.end();
        resolve(replies);
      }
    });
    sock.on('error', reject);
    sock.connect(port, host, () => {
      for (const m of msgs) {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(m.length);
        sock.write(Buffer.concat([len, m]));
      }
    });
  });
}

export function query(name: string, type = 'A', opts: { id?: number; edns?: number; flags?: number } = {}): Buffer {
  return packet.encode({
    id: opts.id ?? 4242,
    type: 'query',
    flags: opts.flags ?? packet.RECURSION_DESIRED,
    questions: [{ name, type: type as 'A', class: 'IN' }],
    additionals: opts.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: opts.edns } as packet.Answer] : [],
  });
}

export const decode = (b: Buffer): packet.DecodedPacket & { rcode?: string; flag_tc?: boolean; flag_aa?: boolean } =>
  packet.decode(b) as packet.DecodedPacket & { rcode?: string };
