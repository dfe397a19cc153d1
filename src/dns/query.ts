import * as packet from 'dns-packet';
import { dnsRecordsJson } from '../api/format.js';
import type { DnsHandler } from './handler.js';

// A DNS question answered in-process, exactly as a client at `client` (loopback unless told)
// over TCP would get it (the API's /api/v1/dns and explain, `podman-swarm-dns query`).

export async function queryInProcess(handler: DnsHandler, name: string, type: string, client = '127.0.0.1'): Promise<Record<string, unknown>> {
  let raw: Buffer;
  try {
    raw = packet.encode({ id: 1, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name, type: type as 'A', class: 'IN' }] });
  } catch (e) {
    return { name, type, error: `cannot build a query: ${(e as Error).message}` };
  }
  const reply = await handler.handle(raw, { address: client, port: 0, transport: 'tcp' });
  if (!reply) return { name, type, error: 'no answer' };
  const d = packet.decode(reply);
  return {
    name,
    type,
    rcode: (d as { rcode?: string }).rcode,
    authoritative: d.flag_aa,
    answers: dnsRecordsJson(d.answers),
    authorities: dnsRecordsJson(d.authorities),
    additionals: dnsRecordsJson(d.additionals),
  };
}
