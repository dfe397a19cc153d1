import { request } from 'node:http';
import { apiGet, ClientError } from '../client.js';
import { EXIT, type ReadOptions } from './read.js';

// `join-token` and `join <addr>...`: the cluster commands that talk to the local daemon.

export async function joinToken(o: ReadOptions): Promise<number> {
  const { body } = await apiGet<{ token: string }>(o.socket, '/api/v1/join-token');
  o.out(o.json ? JSON.stringify(body, null, 2) : body.token);
  return EXIT.ok;
}

export async function join(o: ReadOptions, addresses: string[]): Promise<number> {
  const withPort = addresses.map((a) => (/:\d+$/.test(a) ? a : `${a}:7946`));
  const body = await new Promise<{ status: number; body: { joined?: number; errors?: string[]; error?: string } }>((resolve, reject) => {
    const data = JSON.stringify({ addresses: withPort });
    const req = request({ socketPath: o.socket, path: '/api/v1/join', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as never });
        } catch {
          reject(new ClientError(`the daemon sent something that is not JSON: ${text.slice(0, 200)}`, res.statusCode ?? 0));
        }
      });
    });
    req.on('error', (e) => reject(new ClientError(`cannot reach the daemon at unix:${o.socket}: ${e.message}`, 0)));
    req.end(data);
  });
  if (body.body.error) throw new ClientError(body.body.error, body.status);
  if (o.json) o.out(JSON.stringify(body.body, null, 2));
  else {
    o.out(`joined through ${body.body.joined ?? 0} of ${withPort.length}`);
    for (const e of body.body.errors ?? []) o.out(`  ${e}`);
  }
  return (body.body.joined ?? 0) > 0 ? EXIT.ok : EXIT.failure;
}
