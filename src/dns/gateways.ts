import type { Logger } from 'pino';
import { BindError, type DnsServer } from './server.js';

// DNS on the gateways of Podman networks that have no DNS of their own (docs/architecture.md#dns). A bridge's
// gateway address only exists once its first container runs, so a bind that fails for want of
// the address is retried whenever the watcher reports a change; each failure is logged once.

export class GatewayListeners {
  private readonly bound = new Set<string>();
  private readonly failed = new Map<string, string>();
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly dns: DnsServer,
    private readonly log: Logger,
    private readonly port = 53,
  ) {}

  get addresses(): string[] {
    return [...this.bound];
  }

  problems(): string[] {
    return [...this.failed.values()];
  }

  /** Serve exactly these gateways (serialised: calls queue behind each other). */
  set(gateways: string[]): Promise<void> {
    this.pending = this.pending.then(() => this.apply(gateways)).catch(() => undefined);
    return this.pending;
  }

  private async apply(gateways: string[]): Promise<void> {
    const want = new Set(gateways);
    for (const gw of [...this.bound]) {
      if (want.has(gw)) continue;
      await this.dns.unlisten({ host: gw, port: this.port });
      this.bound.delete(gw);
      this.log.info({ address: gw }, `stopped serving DNS on ${gw}:${this.port} (the network is gone)`);
    }
    for (const gw of [...this.failed.keys()]) if (!want.has(gw)) this.failed.delete(gw);
    for (const gw of want) {
      if (this.bound.has(gw) || this.dns.addresses.some((a) => a.host === gw && a.port === this.port)) continue;
      try {
        await this.dns.listen({ host: gw, port: this.port });
        this.bound.add(gw);
        this.failed.delete(gw);
        this.log.info({ address: gw }, `serving DNS on the Podman gateway ${gw}:${this.port} (udp+tcp)`);
      } catch (e) {
        const msg = e instanceof BindError ? e.message : (e as Error).message;
        // No such address yet: the bridge appears with its first container; retried on the next change.
        if (/no interface of this host has that address|EADDRNOTAVAIL/i.test(msg)) continue;
        if (this.failed.get(gw) !== msg) this.log.warn({ address: gw }, msg);
        this.failed.set(gw, msg);
      }
    }
  }

  async close(): Promise<void> {
    await this.pending;
    this.bound.clear();
  }
}
