import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from '../helpers/daemon.js';
import { decode, query, udpExchange } from '../helpers/dns.js';
import { nativeSkip } from '../helpers/native.js';
import { until, expectLog } from '../helpers/until.js';

// A start after an earlier run with the same services (state directory and $RUNTIME_DIRECTORY
// kept, as under systemd) serves the earlier run's answer table: parsed off the event loop (the
// JS path answers meanwhile), it is in right after READY, and no table is compiled. With other services the table file is not
// used: the new services are answered (by JS until the native table is compiled, then by it).

const config = (address: string): string => `
services:
  - name: web
    endpoints:
      - address: ${address}
`;

const addresses = async (port: number, name: string): Promise<string[]> => {
  const reply = await udpExchange(port, query(name), { timeoutMs: 3000 });
  if (!reply) throw new Error(`no answer for ${name}`);
  return (decode(reply).answers ?? []).map((a) => String((a as { data: unknown }).data));
};

t.test("a restart with the same services serves the previous run's table", { skip: nativeSkip() }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-reuse-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const run = join(dir, 'run');
  mkdirSync(run);
  const table = join(run, 'answers.table');
  const start = (address: string) => startDaemon(t, { config: config(address), args: ['--state-dir', join(dir, 'state'), '--start-grace', '0'], env: { RUNTIME_DIRECTORY: run } });
  const metrics = async (d: { api: string }): Promise<string> => (await fetch(`${d.api}/metrics`)).text();
  const builds = async (d: { api: string }): Promise<number> => Number(/podman_swarm_dns_native_table_builds_total (\d+)/.exec(await metrics(d))?.[1] ?? -1);
  const reused = /serving the previous run's answer table/;

  const d1 = await start('10.0.0.1');
  t.notMatch(d1.logs(), reused, 'a first start has no table to serve');
  await until('the answer table file', () => existsSync(table), 15_000);
  await d1.stop();

  const d2 = await start('10.0.0.1');
  await expectLog(t, d2, reused, 'the next start with the same services serves it');
  t.equal(await builds(d2), 1, 'installed from the file, nothing compiled');
  t.same(await addresses(d2.dnsPort, 'web.default.cluster.local'), ['10.0.0.1']);
  t.match(await metrics(d2), /dns_queries_total\{type="A",rcode="NOERROR",source="zone",path="native"\} 1\b/, 'answered by the native threads');
  await d2.stop();

  const d3 = await start('10.0.0.2');
  t.notMatch(d3.logs(), reused, 'a start with other services does not');
  t.same(await addresses(d3.dnsPort, 'web.default.cluster.local'), ['10.0.0.2'], 'and answers the services it has');
  await until('the first native table', async () => (await builds(d3)) >= 1, 15_000);
  t.same(await addresses(d3.dnsPort, 'web.default.cluster.local'), ['10.0.0.2'], 'from its own table too');
});
