import type { Logger } from 'pino';
import type { ClientPolicy } from './clients.js';
import type { ForwardSource, Forwarder } from './forwarder.js';
import type { QueryLog } from './querylog.js';
import { maybeContainerName } from './scoped.js';
import { answerQuestion, type Answer, type Question, type Rcode, type Zone } from './records.js';
import { decodeQuery, encodeAnswer, encodeRcode, isBadVersion, udpLimit, withTc, type Query } from './wire.js';

// One query in, one response (or nothing) out, whatever the transport: decode → in-zone answer
// → or, for clients allowed to recurse, the forwarder. The servers only move bytes.

export type Transport = 'udp' | 'tcp';

export interface ClientInfo {
  address: string;
  port: number;
  transport: Transport;
}

/** zone: answered from the registry; the others are the forwarder's outcomes. */
export type AnswerSource = 'zone' | ForwardSource | 'error';

export interface DnsMetrics {
  query(qtype: string, rcode: string, source: AnswerSource, seconds: number): void;
  malformed(action: 'formerr' | 'dropped'): void;
}

/** Why DNS work was refused to stay responsive under load (the metric dns_shed_total). */
export type ShedReason =
  | 'handoff_full'
  | 'handoff_late'
  | 'tcp_total_limit'
  | 'tcp_client_limit'
  | 'tcp_idle'
  | 'tcp_read_timeout'
  | 'tcp_output_full'
  | 'tcp_output_paused'
  | 'rrl_drop'
  | 'rrl_slip';

export interface HandlerDeps {
  zone: Zone;
  clients: ClientPolicy;
  forwarder: Forwarder;
  metrics: DnsMetrics;
  log: Logger;
  /** Podman container names, scoped by the querier's network (docs/architecture.md#dns); absent without Podman. */
  containerNames?: {
    answer(q: Question, client: string, o: { host: boolean; rotation: number; owner?: number }): Answer | null;
    /** Other owners' (rootless users') names are known: a query from this host must say who asks. */
    readonly ownersKnown?: boolean;
  };
  /** The uid a query from this host's own address comes from (src/dns/querier-owner.ts). */
  querierUid?: (client: ClientInfo) => Promise<number | undefined>;
  /** --query-log. */
  queryLog?: QueryLog;
  /** While active (at start, see start-grace.ts), a name the zone does not know gets SERVFAIL, not NXDOMAIN. */
  grace?: { readonly active: boolean };
}

type Answered = [Buffer, AnswerSource];

const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

export class DnsHandler {
  constructor(private readonly deps: HandlerDeps) {}

  /** Synchronous for in-zone answers (most queries); a promise when the query is forwarded. */
  handle(raw: Buffer, client: ClientInfo): Buffer | null | Promise<Buffer | null> {
    const start = performance.now();
    const { metrics, log } = this.deps;
    const decoded = decodeQuery(raw);
    if (!decoded.ok) {
      metrics.malformed(decoded.reply ? 'formerr' : 'dropped');
      if (log.isLevelEnabled('debug')) {
        log.debug({ client: client.address, reason: decoded.reason }, 'malformed query');
      }
      return decoded.reply;
    }
    const q = decoded.query;
    let result: Answered | Promise<Answered>;
    try {
      result = this.answer(raw, q, client);
    } catch (e) {
      result = this.failed(q, e);
    }
    if (result instanceof Promise) {
      return result.catch((e: unknown) => this.failed(q, e)).then((r) => this.done(q, client, r, start));
    }
    return this.done(q, client, result, start);
  }

  private failed(q: Query, e: unknown): Answered {
    this.deps.log.error({ err: e, name: q.question.name, type: q.question.type }, 'failed to answer a query');
    return [encodeRcode(q, 'SERVFAIL', false), 'error'];
  }

  private done(q: Query, client: ClientInfo, [out, source]: Answered, start: number): Buffer {
    const { metrics, log } = this.deps;
    const rcode = RCODE_NAMES[out.readUInt16BE(2) & 0xf] ?? 'OTHER';
    const ms = performance.now() - start;
    metrics.query(q.question.type, rcode, source, ms / 1000);
    const ql = this.deps.queryLog;
    if (ql?.wants(rcode)) {
      const path = source === 'cache' || source === 'upstream' ? source : 'js';
      ql.record({ client: client.address, name: q.question.name, type: q.question.type, rcode, answers: out.readUInt16BE(6), path, us: ms * 1000 });
    }
    if (log.isLevelEnabled('debug')) {
      log.debug({ client: client.address, transport: client.transport, name: q.question.name, type: q.question.type, rcode, source }, 'query');
    }
    return out;
  }

  private answer(raw: Buffer, q: Query, client: ClientInfo): Answered | Promise<Answered> {
    const { zone, clients } = this.deps;
    const recursion = clients.recursionAllowed(client.address);
    // EDNS version other than 0: BADVERS, carried by the OPT record encodeRcode adds.
    if (isBadVersion(q)) return [encodeRcode(q, 'NOERROR', recursion), 'zone'];
    const klass = q.question.class ?? 'IN';
    if (klass !== 'IN' && klass !== 'ANY') return [encodeRcode(q, 'NOTIMP', recursion), 'zone'];
    const zoneAnswer = answerQuestion(q.question, zone, { local: clients.isLocal(client.address), rotation: q.id });
    if (zoneAnswer) return this.answered(raw, q, client, zoneAnswer);
    const names = this.deps.containerNames;
    const host = clients.isHost(client.address);
    const ask = (owner?: number): Answer | null => names?.answer(q.question, client.address, { host, rotation: q.id, owner }) ?? null;
    // From this host's own address while rootless users' names are known: whose query it is decides whose names it sees.
    if (host && names?.ownersKnown && this.deps.querierUid && maybeContainerName(q.question.name)) {
      return this.deps.querierUid(client).then((uid) => this.answered(raw, q, client, ask(uid)));
    }
    return this.answered(raw, q, client, ask());
  }

  /** The reply for `answer` (zone or container names), or, without one, forwarded or refused. */
  private answered(raw: Buffer, q: Query, client: ClientInfo, answer: Answer | null): Answered | Promise<Answered> {
    const { zone } = this.deps;
    const recursion = this.deps.clients.recursionAllowed(client.address);
    const limit = client.transport === 'udp' ? udpLimit(q) : 65535;
    if (answer) {
      if (answer.rcode === 'NXDOMAIN' && this.deps.grace?.active) return [encodeRcode(q, 'SERVFAIL', recursion), 'zone'];
      const cap = zone.settings.udpAnswerLimit ?? 0;
      const type = q.question.type;
      if (cap > 0 && client.transport === 'udp' && (type === 'A' || type === 'AAAA')) answer.answers = answer.answers.slice(0, cap);
      return [encodeAnswer(q, answer, { limit, recursionAvailable: recursion, zone: zone.settings.domain }), 'zone'];
    }
    if (!recursion) return [encodeRcode(q, 'REFUSED', false), 'refused'];
    return this.forward(raw, q, limit);
  }

  private async forward(raw: Buffer, q: Query, limit: number): Promise<Answered> {
    const fwd = await this.deps.forwarder.forward(raw, q);
    if (fwd.packet.length <= limit) return [fwd.packet, fwd.source];
    // Too big for this UDP client: header and question with TC, so it retries over TCP.
    const rcode = (RCODE_NAMES[fwd.packet.readUInt16BE(2) & 0xf] ?? 'SERVFAIL') as Rcode;
    const truncated = encodeAnswer(q, { rcode, authoritative: false, answers: [], authorities: [], additionals: [] }, { limit, recursionAvailable: true });
    return [withTc(truncated), fwd.source];
  }
}
