import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host } from './hosts.js';
import { freePort } from './ports.js';
import { until } from './until.js';

// Real etcd members (Debian's etcd-server) on loopback, each with its own data directory, for the
// etcd registry tests. A member can be killed and started again on the same ports and data.

export const haveEtcd = spawnSync('etcd', ['--version']).status === 0;

export interface EtcdMember {
  name: string;
  clientUrl: string;
  proc: ChildProcess | null;
  start(): Promise<void>;
  kill(): Promise<void>;
}

export interface EtcdCluster {
  members: EtcdMember[];
  endpoints: string[];
  stop(): Promise<void>;
}

/** Starts `n` members as one cluster and waits until it answers; `stop()` kills them and removes their data. */
export async function startEtcd(n = 1): Promise<EtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'psd-etcd-'));
  const ports = [];
  for (let i = 0; i < n; i++) ports.push({ client: await freePort(), peer: await freePort() });
  const initial = ports.map((p, i) => `m${i}=http://127.0.0.1:${p.peer}`).join(',');
  const members: EtcdMember[] = ports.map((p, i) => {
    const m: EtcdMember = {
      name: `m${i}`,
      clientUrl: `http://127.0.0.1:${p.client}`,
      proc: null,
      async start() {
        const proc = spawn('etcd', [
          '--name', m.name, '--data-dir', join(dir, m.name),
          '--listen-client-urls', m.clientUrl, '--advertise-client-urls', m.clientUrl,
          '--listen-peer-urls', `http://127.0.0.1:${p.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${p.peer}`,
          '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', dir,
          '--heartbeat-interval', '50', '--election-timeout', '500', '--log-level', 'error',
        ], { stdio: 'ignore' });
        m.proc = proc;
      },
      async kill() {
        const proc = m.proc;
        m.proc = null;
        if (!proc || proc.exitCode !== null) return;
        await new Promise<void>((r) => {
          proc.once('exit', () => r());
          proc.kill('SIGKILL');
        });
      },
    };
    return m;
  });
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    async stop() {
      await Promise.all(members.map((m) => m.kill()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all(members.map((m) => m.start()));
    await until('etcd answers', () => healthy(members[0]!.clientUrl), 30_000, 100);
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

async function healthy(url: string): Promise<boolean> {
  const r = await fetch(`${url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('x').toString('base64') }), signal: AbortSignal.timeout(1000) });
  return r.ok;
}

export interface NsEtcdMember {
  host: Host;
  clientUrl: string;
  start(): void;
  kill(): Promise<void>;
  /** etcdctl on this member's host, against this member. */
  ctl(...args: string[]): string;
}

/**
 * One etcd member on each of `hosts` (simulated hosts, test/helpers/hosts.ts), on the host's own
 * address (client port 2379, peer port 2380), data under `dir`; resolves once every member answers.
 * The hosts' teardown kills them.
 */
export async function startEtcdOn(hosts: Host[], dir: string): Promise<NsEtcdMember[]> {
  const initial = hosts.map((h) => `e${h.index}=http://${h.address}:2380`).join(',');
  const members = hosts.map((h): NsEtcdMember => {
    let proc: ChildProcess | null = null;
    const clientUrl = `http://${h.address}:2379`;
    const m: NsEtcdMember = {
      host: h,
      clientUrl,
      start() {
        proc = h.spawn('etcd', [
          '--name', `e${h.index}`, '--data-dir', join(dir, `etcd${h.index}`),
          '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
          '--listen-peer-urls', `http://${h.address}:2380`, '--initial-advertise-peer-urls', `http://${h.address}:2380`,
          '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', dir, '--log-level', 'error',
        ]);
        proc.stdout!.resume();
        proc.stderr!.resume();
      },
      async kill() {
        const p = proc;
        proc = null;
        if (!p || p.exitCode !== null) return;
        await new Promise<void>((r) => {
          p.once('exit', () => r());
          p.kill('SIGKILL');
        });
      },
      ctl: (...args) => h.exec('etcdctl', ['--endpoints', clientUrl, ...args], 10_000),
    };
    return m;
  });
  for (const m of members) m.start();
  for (const m of members) await until(`etcd member on host${m.host.index}`, () => {
    try {
      m.ctl('endpoint', 'health');
      return true;
    } catch {
      return false;
    }
  }, 60_000, 200);
  return members;
}
