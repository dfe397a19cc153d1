// The answer table a daemon with 10,000 services × 5 endpoints (the state file of
// bench/memory.mjs) leaves in $RUNTIME_DIRECTORY, copied to OUT: for the table's bytes by part
// (`TABLE_FILE=OUT cargo test --release --manifest-path native/Cargo.toml -- --ignored
// --nocapture where_a_table`) and bench/table-rss.mjs.
//
//   npm run build && node bench/table-file.mjs OUT [dist/cli.js or a staged bundle]
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep, stopProcess } from './daemon.mjs';
import { snapshotFile } from './services-data.mjs';
const out = process.argv[2];
const dir = mkdtempSync(join(tmpdir(), 'psdns-table-file-'));
mkdirSync(join(dir, 'run'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'state'), snapshotFile({ services: 10000, endpoints: 5, nodes: 100 }));
writeFileSync(join(dir, 'empty.yaml'), '');
const [d, a, g] = await Promise.all([freePort(), freePort(), freePort()]);
const p = spawn(process.execPath, [process.argv[3] ?? 'dist/cli.js', 'daemon', '--config', join(dir, 'empty.yaml'), '--link', 'none', '--state-dir', dir, '--dns-listen', `127.0.0.1:${d}`, '--api-listen', `127.0.0.1:${a}`, '--upstream-dns', '127.0.0.1:9', '--podman-socket', 'none', '--max-endpoints-per-node', '100000', '--log-level', 'info', '--start-grace', '0', '--gossip-listen', `127.0.0.1:${g}`, '--advertise-address', '127.0.0.1'], { stdio: 'ignore', env: { ...process.env, RUNTIME_DIRECTORY: join(dir, 'run') } });
const t = join(dir, 'run', 'answers.table');
while (!(existsSync(t) && readFileSync(t).subarray(-58, -56).toString() === 'f:')) await sleep(100);
copyFileSync(t, out);
await stopProcess(p);
console.log('ok', readFileSync(out).length);
