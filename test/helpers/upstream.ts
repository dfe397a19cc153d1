import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import * as packet from 'dns-packet';

// A small authoritative DNS server the tests start as the daemon's upstream: real sockets, real
// packets, with knobs for the failure modes forwarding must handle.

export interface UpstreamOptions {
  /** name (lower case) → A records */
  records?: Record<string, string[]>;
  ttl?: number;
  /** Never answer (a dead upstream that still accepts packets). */
  silent?: boolean;
  /** Answer over UDP with TC set and no records, full answer over TCP. */
  truncateUdp?: boolean;
  /** Answer every query with this rcode. */
  rcode?: string;
  /** Extra answer records (e.g. CNAMEs) per name. */
  extra?: Record<string, packet.Answer[]>;
}

export interface TestUpstream {
  port: number;
  udpQueries: number;
  tcpQueries: number;
  address: string;
  close(): Promise<void>;
}

export async function startUpstream(t: { teardown(fn: () => unknown): void }, o: UpstreamOptions = {}): Promise<TestUpstream> {
  const tcp: Server = createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (c) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        state.tcpQueries++;
        const reply = answer(buf.subarray(2, 2 + buf.readUInt16BE(0)), false);
        const len = Buffer.alloc(2);
        len.writeUInt16BE(reply.length);
        sock.end(Buffer.concat([len, reply]));
      }
    });
    sock.on('error', () => undefined);
  });
  // UDP picks the port; TCP on the same number can be taken by another process on a busy machine,
  // so try again with a new UDP port rather than fail the test.
  let udp: Socket;
  let port: number;
  for (let attempt = 1; ; attempt++) {
    udp = createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    port = udp.address().port;
    const listened = await new Promise<boolean>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => {
        if (e.code === 'EADDRINUSE' && attempt < 20) resolve(false);
        else reject(e);
      };
      tcp.once('error', onError);
      tcp.listen(port, '127.0.0.1', () => {
        tcp.off('error', onError);
        resolve(true);
      });
    });
    if (listened) break;
    udp.close();
  }
  const answer = (msg: Buffer, overUdp: boolean): Buffer => {
    const q = packet.decode(msg);
    const question = q.questions![0]!;
    const name = question.name.toLowerCase();
    const ips = o.records?.[name];
    const truncated = overUdp && o.truncateUdp;
    const answers: packet.Answer[] = truncated ? [] : [
      ...(o.extra?.[name] ?? []),
      ...(question.type === 'A' && ips ? ips.map((ip) => ({ type: 'A' as const, name: question.name, ttl: o.ttl ?? 300, data: ip })) : []),
    ];
    const rcode = o.rcode ?? (ips || o.extra?.[name] ? 'NOERROR' : 'NXDOMAIN');
    const rcodes: Record<string, number> = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 };
    return packet.encode({
      id: q.id,
      type: 'response',
      flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | (truncated ? packet.TRUNCATED_RESPONSE : 0) | rcodes[rcode]!,
      questions: q.questions,
      answers,
      authorities: rcode === 'NXDOMAIN' || (answers.length === 0 && !truncated)
        ? [{ type: 'SOA', name: 'test', ttl: 60, data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 30 } }]
        : [],
    });
  };
  let closed: Promise<void> | undefined;
  const state: TestUpstream = {
    port,
    udpQueries: 0,
    tcpQueries: 0,
    address: `127.0.0.1:${port}`,
    // Idempotent: a test may stop its upstream before the teardown does.
    close: () => (closed ??= new Promise<void>((r) => {
      udp.close();
      tcp.close(() => r());
    })),
  };
  udp.on('message', (msg, rinfo) => {
    state.udpQueries++;
    if (o.silent) return;
    udp.send(answer(msg, true), rinfo.port, rinfo.address);
  });
  t.teardown(() => state.close());
  return state;
}

/**
 * A small upstream inside a simulated host (`prefix`: its argv prefix, Host.prefix) on
 * 127.0.0.1:`port`, UDP: A records of `records` (name → IPv4s, TTL 60), NXDOMAIN for any other
 * name; killed at teardown. Resolves once it listens.
 */
export async function upstreamOn(t: { teardown(fn: () => unknown): void }, prefix: string[], records: Record<string, string[]>, port = 5300): Promise<{ queries: () => string[] }> {
  const script = `
    const records = ${JSON.stringify(records)};
    const s = require('node:dgram').createSocket('udp4');
    s.on('message', (m, from) => {
      if (m.length < 17) return;
      let o = 12; const labels = [];
      while (o < m.length && m[o] !== 0 && labels.length < 64) { labels.push(m.subarray(o + 1, o + 1 + m[o]).toString('latin1')); o += m[o] + 1; }
      const name = labels.join('.').toLowerCase(); const type = m.readUInt16BE(o + 1);
      console.log(name);
      const ips = records[name];
      const head = Buffer.from(m.subarray(0, o + 5));
      head[2] = 0x80 | (m[2] & 0x79); head[3] = ips ? 0x80 : 0x83; head.fill(0, 6, 12);
      const answers = ips && type === 1 ? ips.map((ip) => Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...ip.split('.').map(Number)])) : [];
      head.writeUInt16BE(answers.length, 6);
      s.send(Buffer.concat([head, ...answers]), from.port, from.address);
    });
    s.bind(${port}, '127.0.0.1', () => console.log('listening'));`;
  const p = spawn(prefix[0]!, [...prefix.slice(1), process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void p.kill('SIGKILL'));
  let said = '';
  p.stdout!.on('data', (c: Buffer) => (said += c));
  for (let i = 0; i < 100 && !said.includes('listening'); i++) {
    if (p.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!said.includes('listening')) throw new Error(`the upstream on 127.0.0.1:${port} did not start: ${said}`);
  return { queries: () => said.split('\n').filter((l) => l && l !== 'listening') };
}
