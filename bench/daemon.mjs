// What the benchmarks that start the daemon share: free loopback ports, the daemon's CPU time and
// memory from /proc, its HTTP API and metrics, and stopping it.
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';

/** `--env="K=V K2=V2"` as an object (a bench's extra environment for the daemon). */
export const envArg = (text) => Object.fromEntries(String(text ?? '').split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port free on 127.0.0.1 right now. */
export const freePort = () => new Promise((res) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => res(port));
  });
});

/** utime + stime of `pid` in clock ticks (USER_HZ, 100 a second). */
export function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
}

/** utime + stime of `pid` in ms. */
export const cpuMs = (pid) => cpuTicks(pid) * 10;

/** A field of /proc/<pid>/status in kB (VmRSS, VmHWM...); NaN when absent. */
export function statusKb(pid, field) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(text)?.[1] ?? NaN);
}

/** An HTTP request to the daemon's API on 127.0.0.1:`port` (`token`: API writes over TCP need it); `timing`: its Server-Timing header. */
export function api(port, method, path, { body, token } = {}) {
  return new Promise((res, rej) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers = { ...(data ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) };
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (r) => {
      let text = '';
      r.on('data', (c) => (text += c));
      r.on('end', () => res({ status: r.statusCode, text, timing: r.headers['server-timing'] }));
    });
    req.on('error', rej);
    req.end(data);
  });
}

/** The value of metric `name` (its first series) in the text of /metrics; NaN when absent. */
export const metricOf = (text, name) => {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};

/** SIGTERM, then SIGKILL after `graceMs` if it is still running. */
export async function stopProcess(proc, graceMs = 10_000) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await Promise.race([gone, sleep(graceMs)]);
  if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
}
