import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from '../../src/config/args.js';
import { cliUsage, COMMANDS } from '../../src/config/commands.js';
import { bashCompletion, manPage, sampleConfig } from '../../src/config/docs.js';
import { loadConfig } from '../../src/config/load.js';
import { OPTIONS, type OptionDef } from '../../src/config/options.js';

// The documents the packages ship, held to the option and command tables they are made from.

const DEFS = Object.values(OPTIONS) as OptionDef<unknown>[];
const FILE = '/etc/podman-swarm-dns/config.yaml';

function loadSample(text: string) {
  const { flags } = parseArgs([], DEFS.map((d) => ({ name: d.name, bool: d.kind.arg === '' })));
  return loadConfig({ flags, env: {}, now: 0, readFile: () => text });
}

t.test('the sample config parses as it is and gives every default', async (t) => {
  const text = sampleConfig();
  const loaded = loadSample(text);
  t.equal(loaded.file, FILE);
  for (const [key, def] of Object.entries(OPTIONS)) {
    t.equal(loaded.origin[key as keyof typeof OPTIONS], 'default', `${def.name} keeps its default`);
    t.same(loaded.options[key as keyof typeof OPTIONS], def.default);
  }
  t.same(loaded.services, []);
});

t.test('the sample config lists every file option with its default, once', async (t) => {
  const text = sampleConfig();
  for (const d of DEFS) {
    const keys = text.split('\n').filter((l) => l === `${d.name}:`);
    t.equal(keys.length, d.noFile ? 0 : 1, `key ${d.name}`);
  }
  t.match(text, /# default: 5s; form: a duration/, 'ttl default shown');
  t.match(text, /# default: 127\.0\.0\.0\/8,::1\/128;/, 'list defaults shown');
  t.match(text, /^# services:$/m, 'commented services example');
});

t.test('filling in a key of the sample changes that option only', async (t) => {
  const text = sampleConfig()
    .replace(/^ttl:$/m, 'ttl: 30s')
    .replace(/^upstream-dns:$/m, 'upstream-dns: [192.0.2.1, 192.0.2.2:5353]')
    .replace(/^services:$/m, 'services:\n  - name: web\n    endpoints:\n      - address: 10.0.0.1');
  const loaded = loadSample(text);
  t.equal(loaded.options.ttl, 30);
  t.equal(loaded.origin.ttl, 'file');
  t.same(loaded.options.upstreamDns, [{ host: '192.0.2.1', port: 53 }, { host: '192.0.2.2', port: 5353 }]);
  t.equal(loaded.origin.negativeTtl, 'default');
  t.equal(loaded.endpoints.length, 1);
});

t.test('the man page documents every option and command and renders without warnings', async (t) => {
  const page = manPage('1.2.3', '2026-11-30');
  t.match(page, /^\.TH PODMAN\\-SWARM\\-DNS 8 "2026-11-30" "podman\\-swarm\\-dns 1\.2\.3"/);
  for (const d of DEFS) t.ok(page.includes(`.B \\-\\-${d.kind.arg === '' ? '[no\\-]' : ''}${d.name.replace(/-/g, '\\-')}`), `option ${d.name}`);
  for (const c of COMMANDS) t.ok(page.includes(`.B ${c.name.replace(/-/g, "\\-")}`), `command ${c.name}`);
  const groff = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z'], { input: page, encoding: 'utf8' });
  if (groff.error) {
    t.comment('groff is not installed: rendering not checked');
    return;
  }
  t.equal(groff.status, 0);
  t.equal(groff.stderr, '', 'no groff warnings');
  const text = spawnSync('groff', ['-man', '-Tascii', '-P-cbou'], { input: page, encoding: 'utf8' }).stdout;
  t.match(text, /--upstream-dns <ip\[:port\],\.\.\.>/, 'options read as typed');
  t.match(text, /Default: 5s\./);
});

t.test('--help lists the same commands as the man page', async (t) => {
  const usage = cliUsage('1.2.3', '/run/x.sock');
  for (const c of COMMANDS) t.match(usage, new RegExp(`^  ${c.name}\\b.*${c.help.slice(0, 20).replace(/[()]/g, '.')}`, 'm'));
});

t.test('bash completion completes commands, flags and choices', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'psdns-completion-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'podman-swarm-dns');
  writeFileSync(file, bashCompletion());
  const complete = (...words: string[]): string[] => {
    const script = `source ${file}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _podman_swarm_dns; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['--norc', '-c', script], { encoding: 'utf8' });
    t.equal(r.stderr, '', 'no bash errors');
    return r.stdout.split('\n').filter((l) => l !== '');
  };
  t.same(complete('podman-swarm-dns', 'e'), ['endpoints', 'explain']);
  t.same(complete('podman-swarm-dns', 'daemon', '--log-'), ['--log-level']);
  t.same(complete('podman-swarm-dns', 'daemon', '--log-level', ''), ['debug', 'info', 'warn', 'error']);
  t.same(complete('podman-swarm-dns', 'daemon', '--no-fail'), ['--no-fail-open']);
  t.same(complete('podman-swarm-dns', 'status', '--j'), ['--json']);
  t.same(complete('podman-swarm-dns', 'query', 'web.default.cluster.local', 'AA'), ['AAAA']);
  const all = complete('podman-swarm-dns', 'daemon', '--');
  for (const d of DEFS) t.ok(all.includes(`--${d.name}`), `--${d.name}`);
});
