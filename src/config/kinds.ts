import { isIP } from 'node:net';
import { parseQueryLogMode } from '../dns/querylog-mode.js';
import { parseCidr, type Cidr } from '../net/cidr.js';

// Value kinds: how a raw value (a flag or env string, or whatever YAML produced) becomes a typed
// value. `form` is the expected form, quoted in error messages and `--help`.

export interface Kind<T> {
  form: string;
  /** Placeholder in --help: `--ttl <duration>`. */
  arg: string;
  /** Several occurrences add up (lists); otherwise the last occurrence wins. */
  repeatable?: boolean;
  /** Throws an Error whose message says what is wrong with the value. */
  parse(raw: unknown): T;
  show(value: T): string;
}

export class BadValue extends Error {}

const text = (raw: unknown): string => {
  if (typeof raw === 'string') return raw.trim();
  if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
  throw new BadValue(`expected a single value, got ${describe(raw)}`);
};

export const describe = (raw: unknown): string =>
  raw === null ? 'nothing' : Array.isArray(raw) ? 'a list' : typeof raw === 'object' ? 'a mapping' : JSON.stringify(raw);

export const string: Kind<string> = { form: 'text', arg: 'text', parse: text, show: (v) => v };

export const bool: Kind<boolean> = {
  form: 'true or false',
  arg: '',
  parse(raw) {
    if (typeof raw === 'boolean') return raw;
    const s = text(raw).toLowerCase();
    if (['true', 'yes', 'on', '1'].includes(s)) return true;
    if (['false', 'no', 'off', '0'].includes(s)) return false;
    throw new BadValue('is not true or false');
  },
  show: (v) => String(v),
};

export function int(min: number, max: number): Kind<number> {
  return {
    form: `a whole number from ${min} to ${max}`,
    arg: 'n',
    parse(raw) {
      const s = text(raw);
      if (!/^-?\d+$/.test(s)) throw new BadValue('is not a whole number');
      const n = Number(s);
      if (n < min || n > max) throw new BadValue(`is out of range ${min}–${max}`);
      return n;
    },
    show: (v) => String(v),
  };
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Durations in milliseconds: `500ms`, `5s`, `1m30s`, `2h`; a bare number means seconds. */
export function duration(minMs: number, maxMs: number): Kind<number> {
  return {
    form: 'a duration such as 500ms, 5s, 1m or 2h',
    arg: 'duration',
    parse(raw) {
      const s = text(raw);
      let ms: number;
      if (/^\d+(\.\d+)?$/.test(s)) ms = Number(s) * 1000;
      else {
        const parts = [...s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
        if (parts.length === 0 || parts.map((p) => p[0]).join('') !== s) {
          throw new BadValue('is not a duration');
        }
        ms = parts.reduce((sum, p) => sum + Number(p[1]) * UNITS[p[2]!]!, 0);
      }
      if (ms < minMs || ms > maxMs) {
        throw new BadValue(`is out of range ${showDuration(minMs)}–${showDuration(maxMs)}`);
      }
      return Math.round(ms);
    },
    show: showDuration,
  };
}

export function showDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Whole seconds (DNS TTLs), given as a duration. */
export function seconds(max: number): Kind<number> {
  const d = duration(0, max * 1000);
  return {
    form: d.form,
    arg: 'duration',
    parse(raw) {
      const ms = d.parse(raw);
      if (ms % 1000 !== 0) throw new BadValue('must be whole seconds');
      return ms / 1000;
    },
    show: (v) => `${v}s`,
  };
}

export function oneOf<const T extends string>(...choices: T[]): Kind<T> {
  return {
    form: choices.join(', '),
    arg: choices.join('|'),
    parse(raw) {
      const s = text(raw);
      if (!(choices as string[]).includes(s)) throw new BadValue(`is not one of ${choices.join(', ')}`);
      return s as T;
    },
    show: (v) => v,
  };
}

/** --query-log: off, errors, all or sample:N (src/dns/querylog.ts). */
export const queryLogMode: Kind<string> = {
  form: 'off, errors, all or sample:N',
  arg: 'off|errors|sample:N|all',
  parse(raw) {
    const s = text(raw);
    try {
      parseQueryLogMode(s);
    } catch (e) {
      throw new BadValue((e as Error).message);
    }
    return s;
  },
  show: (v) => v,
};

export interface HostPort {
  host: string;
  port: number;
}

export const showHostPort = ({ host, port }: HostPort): string =>
  isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;

function splitHostPort(s: string): { host: string; port?: string } {
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(s);
  if (v6) return v6[2] === undefined ? { host: v6[1]! } : { host: v6[1]!, port: v6[2] };
  if (isIP(s) === 6) return { host: s };
  const i = s.lastIndexOf(':');
  return i < 0 ? { host: s } : { host: s.slice(0, i), port: s.slice(i + 1) };
}

function parsePort(p: string): number {
  if (!/^\d+$/.test(p) || Number(p) > 65535) throw new BadValue(`has a bad port "${p}" (0–65535)`);
  return Number(p);
}

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/**
 * `ip:port` or `[ipv6]:port`. With `defaultPort` the port may be left out; with `names`
 * a host name is accepted instead of an IP.
 */
export function hostPort(opts: { defaultPort?: number; names?: boolean } = {}): Kind<HostPort> {
  const what = opts.names ? 'host' : 'ip';
  return {
    form: opts.defaultPort !== undefined ? `${what}[:port] (port ${opts.defaultPort} if left out)` : `${what}:port`,
    arg: opts.defaultPort !== undefined ? `${what}[:port]` : `${what}:port`,
    parse(raw) {
      const s = text(raw);
      const { host, port } = splitHostPort(s);
      if (!isIP(host) && !(opts.names && HOSTNAME.test(host))) {
        throw new BadValue(opts.names ? 'is not an IP address or host name' : 'is not an IP address');
      }
      if (port === undefined) {
        if (opts.defaultPort === undefined) throw new BadValue('has no port');
        return { host, port: opts.defaultPort };
      }
      return { host, port: parsePort(port) };
    },
    show: showHostPort,
  };
}

export type ApiListen = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export const apiListen: Kind<ApiListen> = {
  form: 'ip:port or unix:/path',
  arg: 'ip:port|unix:/path',
  parse(raw) {
    const s = text(raw);
    if (s.startsWith('unix:')) {
      const path = s.slice(5);
      if (!path.startsWith('/')) throw new BadValue('needs an absolute path after unix:');
      return { kind: 'unix', path };
    }
    return { kind: 'tcp', ...hostPort().parse(s) };
  },
  show: (v) => (v.kind === 'unix' ? `unix:${v.path}` : showHostPort(v)),
};

export const ip: Kind<string> = {
  form: 'an IPv4 or IPv6 address',
  arg: 'ip',
  parse(raw) {
    const s = text(raw);
    if (!isIP(s)) throw new BadValue('is not an IP address');
    return s;
  },
  show: (v) => v,
};

export const cidr: Kind<Cidr> = {
  form: 'a CIDR such as 10.0.0.0/8',
  arg: 'cidr',
  parse(raw) {
    const c = parseCidr(text(raw));
    if (!c) throw new BadValue('is not a CIDR');
    return c;
  },
  show: (v) => v.text,
};

export const domain: Kind<string> = {
  form: 'a domain name such as cluster.local',
  arg: 'domain',
  parse(raw) {
    const s = text(raw).toLowerCase().replace(/\.$/, '');
    if (!HOSTNAME.test(s)) throw new BadValue('is not a domain name');
    return s;
  },
  show: (v) => v,
};

export const path: Kind<string> = {
  form: 'a file path',
  arg: 'path',
  parse(raw) {
    const s = text(raw);
    if (s === '') throw new BadValue('is empty');
    return s;
  },
  show: (v) => v,
};

/** An http:// or https:// URL (etcd client endpoints). */
export const url: Kind<string> = {
  form: 'an http:// or https:// URL such as http://10.0.0.1:2379',
  arg: 'url',
  parse(raw) {
    const s = text(raw);
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw new BadValue('is not a URL');
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new BadValue('is not an http:// or https:// URL');
    if (u.pathname !== '/' || u.search || u.hash) throw new BadValue('has a path, query or fragment (give scheme, host and port only)');
    return u.origin;
  },
  show: (v) => v,
};

/** A key prefix: starts and ends with "/", no empty segment. */
export const keyPrefix: Kind<string> = {
  form: 'a key prefix such as /podman-swarm-dns/',
  arg: 'prefix',
  parse(raw) {
    const s = text(raw);
    if (!/^\/([^/\s]+\/)*$/.test(s) || s.length > 200) throw new BadValue('must start and end with "/", with no empty part or whitespace');
    return s;
  },
  show: (v) => v,
};

/** Linux interface names: up to 15 bytes, no slash or whitespace; `none` disables. */
export const linkName: Kind<string> = {
  form: 'an interface name (up to 15 characters) or none',
  arg: 'name|none',
  parse(raw) {
    const s = text(raw);
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(s)) throw new BadValue('is not a valid interface name');
    return s;
  },
  show: (v) => v,
};

/** A repeatable option: several occurrences, a YAML list, or a comma-separated string. */
export function list<T>(item: Kind<T>): Kind<T[]> {
  return {
    form: `${item.form}, repeatable or comma-separated`,
    arg: `${item.arg},...`,
    repeatable: true,
    parse(raw) {
      const items = Array.isArray(raw)
        ? raw
        : text(raw)
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s !== '');
      return items.map((v) => {
        try {
          return item.parse(v);
        } catch (e) {
          if (e instanceof BadValue) throw new BadValue(`item ${describe(v)} ${e.message}`);
          throw e;
        }
      });
    },
    show: (v) => v.map(item.show).join(','),
  };
}
