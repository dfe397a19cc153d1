import { readFileSync } from 'node:fs';
import type dbus from 'dbus-next';
import type { Logger } from '../log.js';
import {
  revertLink,
  setLinkDefaultRoute,
  setLinkDns,
  setLinkDnsEx,
  setLinkDomains,
  type DnsServerAddress,
  type LinkCall,
} from './resolved-calls.js';

// Routes the zone to this daemon in systemd-resolved (docs/architecture.md#systemd): for each served link, over the
// system bus, the DNS server(s), `~<zone>` as a routing-only domain and no default route; again
// when resolved restarts (NameOwnerChanged) or the link is recreated (new ifindex); RevertLink on
// stop. When networkd manages the link resolved answers LinkBusy and, like resolvectl, we ask
// networkd instead.

export type ResolvedMode = 'auto' | 'on' | 'off';

export interface ResolvedLink {
  name: string;
  servers: DnsServerAddress[];
}

export interface ResolvedOptions {
  mode: ResolvedMode;
  domain: string;
  log: Logger;
  /** Reports a problem for `status` (mode on), or clears it with null. */
  problem: (message: string | null) => void;
  /** How to reach the system bus (tests: a private bus through DBUS_SYSTEM_BUS_ADDRESS). */
  bus?: () => dbus.MessageBus;
  ifindexOf?: (link: string) => number | null;
  /** How often to look for a recreated link. */
  linkPollMs?: number;
  callTimeoutMs?: number;
}

const RESOLVE1 = { destination: 'org.freedesktop.resolve1', path: '/org/freedesktop/resolve1', interface: 'org.freedesktop.resolve1.Manager' };
const NETWORK1 = { destination: 'org.freedesktop.network1', path: '/org/freedesktop/network1', interface: 'org.freedesktop.network1.Manager' };
type Target = typeof RESOLVE1 | typeof NETWORK1;

const ABSENT = new Set([
  'org.freedesktop.DBus.Error.ServiceUnknown',
  'org.freedesktop.DBus.Error.NameHasNoOwner',
  'org.freedesktop.systemd1.NoSuchUnit',
  'org.freedesktop.DBus.Error.Spawn.ServiceNotFound',
]);
const UNKNOWN_METHOD = new Set(['org.freedesktop.DBus.Error.UnknownMethod', 'org.freedesktop.DBus.Error.UnknownInterface']);
const LINK_BUSY = 'org.freedesktop.resolve1.LinkBusy';
const NO_AUTO_START = 2; // dbus MessageFlag

export function sysfsIfindex(link: string): number | null {
  try {
    const n = Number(readFileSync(`/sys/class/net/${link}/ifindex`, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

interface Applied {
  ifindex: number;
  target: Target;
}

export class ResolvedClient {
  private bus: dbus.MessageBus | null = null;
  /** dbus-next, loaded only when needed and after the listeners are up: loading it delays READY=1. */
  private lib: typeof dbus | null = null;
  private links: ResolvedLink[] = [];
  private readonly applied = new Map<string, Applied>();
  private poll: NodeJS.Timeout | null = null;
  private noDnsEx = false;
  private absentLogged = false;
  private stopped = false;
  private applying: Promise<void> = Promise.resolve();

  constructor(private readonly o: ResolvedOptions) {}

  /** Connects and applies `links`; never throws (resolved is optional glue, not the DNS path). */
  async start(links: ResolvedLink[]): Promise<void> {
    this.links = links;
    if (this.o.mode === 'off') return;
    if (links.length === 0) {
      this.o.log.info(`systemd-resolved: no link of ours to configure (--link none or no CAP_NET_ADMIN); not routing ${this.o.domain} there`);
      return;
    }
    try {
      this.bus = await this.connect();
    } catch (e) {
      this.absent(`cannot connect to the system bus (${(e as Error).message})`);
      return;
    }
    try {
      await this.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus' }, {
        member: 'AddMatch',
        signature: 's',
        body: [`type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='${RESOLVE1.destination}'`],
      });
    } catch (e) {
      this.o.log.warn(`systemd-resolved: cannot watch for resolved restarts: ${(e as Error).message}`);
    }
    this.bus.on('message', (m: dbus.Message) => {
      if (m.interface === 'org.freedesktop.DBus' && m.member === 'NameOwnerChanged' && m.body[0] === RESOLVE1.destination && m.body[2]) {
        this.o.log.info('systemd-resolved (re)started: configuring our links again');
        this.applied.clear();
        this.enqueue();
      }
    });
    this.enqueue();
    await this.applying;
    const ifindexOf = this.o.ifindexOf ?? sysfsIfindex;
    this.poll = setInterval(() => {
      // A recreated link has a new ifindex and resolved forgot the old one's settings.
      if (this.links.some((l) => { const i = ifindexOf(l.name); return i !== null && this.applied.get(l.name)?.ifindex !== i; })) this.enqueue();
    }, this.o.linkPollMs ?? 2000);
    this.poll.unref();
  }

  /** Changes the set of links (e.g. Podman bridges appearing); applies the difference. */
  setLinks(links: ResolvedLink[]): void {
    this.links = links;
    if (this.bus) this.enqueue();
  }

  /** RevertLink on every link we configured (unless `revert` is false: a restart), then disconnect. */
  async stop(revert = true): Promise<void> {
    this.stopped = true;
    if (this.poll) clearInterval(this.poll);
    await this.applying.catch(() => undefined);
    if (!this.bus) return;
    for (const [name, a] of revert ? this.applied : []) {
      try {
        const call = revertLink(a.ifindex);
        await this.call(a.target, a.target === NETWORK1 ? { ...call, member: 'RevertLinkDNS' } : call, NO_AUTO_START);
        this.o.log.info({ link: name }, `systemd-resolved: reverted link ${name}`);
      } catch (e) {
        this.o.log.warn({ link: name }, `systemd-resolved: could not revert link ${name}: ${(e as Error).message}`);
      }
    }
    this.applied.clear();
    this.bus.disconnect();
    this.bus = null;
  }

  private enqueue(): void {
    this.applying = this.applying.then(() => this.applyAll()).catch((e: unknown) => {
      this.o.log.warn(`systemd-resolved: ${(e as Error).message}`);
    });
  }

  private async applyAll(): Promise<void> {
    const ifindexOf = this.o.ifindexOf ?? sysfsIfindex;
    for (const link of this.links) {
      if (this.stopped || !this.bus) return;
      const ifindex = ifindexOf(link.name);
      if (ifindex === null) {
        this.applied.delete(link.name);
        continue;
      }
      if (this.applied.get(link.name)?.ifindex === ifindex) continue;
      try {
        const target = await this.applyLink(ifindex, link, RESOLVE1);
        this.applied.set(link.name, { ifindex, target });
        this.absentLogged = false;
        this.o.problem(null);
        const servers = link.servers.map((s) => (s.port === 53 ? s.address : `${s.address}:${s.port}`)).join(', ');
        this.o.log.info({ link: link.name, ifindex, via: target.destination }, `systemd-resolved: ~${this.o.domain} goes to ${servers} on link ${link.name}`);
      } catch (e) {
        const type = (e as dbus.DBusError).type;
        if (type && ABSENT.has(type)) {
          this.absent('org.freedesktop.resolve1 is not on the system bus');
          return;
        }
        const message = `systemd-resolved: could not configure link ${link.name}: ${(e as Error).message}`;
        if (this.o.mode === 'on') this.o.problem(message);
        else this.o.log.warn(message);
      }
    }
  }

  private async applyLink(ifindex: number, link: ResolvedLink, target: Target): Promise<Target> {
    try {
      await this.setDns(target, ifindex, link.servers);
    } catch (e) {
      if (target === RESOLVE1 && (e as dbus.DBusError).type === LINK_BUSY) {
        this.o.log.info({ link: link.name }, `systemd-resolved: link ${link.name} is managed by systemd-networkd; configuring it through networkd`);
        return this.applyLink(ifindex, link, NETWORK1);
      }
      throw e;
    }
    await this.call(target, setLinkDomains(ifindex, [this.o.domain]));
    await this.call(target, setLinkDefaultRoute(ifindex, false));
    return target;
  }

  private async setDns(target: Target, ifindex: number, servers: DnsServerAddress[]): Promise<void> {
    if (!this.noDnsEx) {
      try {
        await this.call(target, setLinkDnsEx(ifindex, servers));
        return;
      } catch (e) {
        if (!UNKNOWN_METHOD.has((e as dbus.DBusError).type)) throw e;
        // resolved < 246: the old call, as resolvectl falls back (it cannot carry a port).
        this.noDnsEx = true;
      }
    }
    const odd = servers.filter((s) => s.port !== 53);
    if (odd.length) this.o.log.warn(`systemd-resolved has no SetLinkDNSEx: it will send to port 53, not ${odd.map((s) => s.port).join(', ')}`);
    await this.call(target, setLinkDns(ifindex, servers));
  }

  private absent(why: string): void {
    const message = `systemd-resolved: ${why}; ${this.o.domain} is not routed to this daemon by the host resolver`;
    if (this.o.mode === 'on') {
      this.o.problem(message);
    } else if (!this.absentLogged) {
      this.absentLogged = true;
      this.o.log.info(message);
    }
  }

  private async connect(): Promise<dbus.MessageBus> {
    const lib = (this.lib ??= (await import('dbus-next')).default);
    const bus = (this.o.bus ?? (() => lib.systemBus()))();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error('timed out')), this.o.callTimeoutMs ?? 5000);
      const fail = (e: Error): void => {
        clearTimeout(timer);
        try {
          bus.disconnect();
        } catch {
          /* already closed */
        }
        reject(e);
      };
      bus.once('connect', () => {
        clearTimeout(timer);
        // Later connection errors (the bus going away) must not crash the daemon.
        bus.on('error', (e: Error) => this.o.log.warn(`systemd-resolved: system bus error: ${e.message}`));
        resolve(bus);
      });
      bus.once('error', fail);
    });
  }

  private async call(target: { destination: string; path: string; interface: string }, c: LinkCall, flags = 0): Promise<void> {
    const bus = this.bus;
    if (!bus) throw new Error('not connected to the system bus');
    const msg = new this.lib!.Message({ ...target, member: c.member, signature: c.signature, body: c.body, flags });
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        bus.call(msg),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${c.member}: no reply within ${this.o.callTimeoutMs ?? 5000} ms`)), this.o.callTimeoutMs ?? 5000);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}
