// Small helpers the host benches share: waiting, percentiles, the daemon's API over its unix
// socket, and a DNS watcher (bench/dns-watch.mjs) running inside a host's namespace.
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const ROOT = resolve(import.meta.dirname, '..');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (a failed check counts as false) until it is true; throws after `ms`. */
export async function until(check, ms = 60_000, every = 50) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await sleep(every);
  }
  throw new Error('timed out');
}

/** The p-th percentile (0–100) of unsorted numbers; NaN for none. */
export const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};

/** One API call over `d.socket`: { status, body } with a JSON body parsed. */
export const api = (d, method, path, body, timeoutMs = 10_000) => new Promise((res, rej) => {
  const data = body === undefined ? undefined : JSON.stringify(body);
  const req = request({ socketPath: d.socket, path, method, timeout: timeoutMs, headers: data ? { 'content-type': 'application/json' } : {} }, (r) => {
    let t = '';
    r.on('data', (c) => (t += c));
    r.on('end', () => res({ status: r.statusCode, body: t && r.headers['content-type']?.includes('json') ? JSON.parse(t) : t }));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', rej);
  req.end(data);
});

/**
 * bench/dns-watch.mjs started by `run(h, argv)` (the bench's way into host `h`'s namespace), asking
 * `h.address`:`port`: the returned function watches a name until it is answered (mode "up") or no
 * longer answered ("down") and resolves with the Date.now() at which the watcher saw it.
 */
export function dnsWatcher(run, h, port = 53) {
  const p = run(h, [process.execPath, join(ROOT, 'bench/dns-watch.mjs'), h.address, String(port)]);
  const waits = new Map();
  createInterface({ input: p.stdout }).on('line', (l) => {
    const [name, at] = l.split(' ');
    waits.get(name)?.(Number(at));
    waits.delete(name);
  });
  return (name, mode) => new Promise((res) => {
    waits.set(name, res);
    p.stdin.write(`${name} ${mode}\n`);
  });
}

const hex = (n, len) => n.toString(16).padStart(len, '0').slice(-len);

/**
 * A Podman container endpoint as src/podman/endpoints.ts builds it, of the shape the simulator
 * gives its hosts: container `seq` of host `host` (of `perHost` each), in one of `services`.
 */
export function containerEndpoint(host, seq, perHost, services, now) {
  const service = `svc${(host * perHost + seq) % services}`;
  const name = `${service}-${host}-${seq}`;
  return {
    id: name, namespace: 'default', service, hostname: name,
    addresses: [`10.${88 + ((host >> 8) & 63)}.${host & 255}.${seq & 255}`], explicit: false,
    ports: { http: { port: 8080, protocol: 'tcp', hostPort: 20000 + (seq & 8191) } }, weight: 10, health: 'tcp', healthy: true, source: 'podman',
    container: { id: hex(host, 8) + hex(seq, 8) + 'c0ffee'.repeat(8), name, network: 'podman' }, lastSeen: now,
  };
}
