import t, { type Test } from 'tap';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, startDaemon } from '../helpers/daemon.js';
import { createNetns, isRoot, withResolvConf, type Netns } from '../helpers/netns.js';
import { hasPodman, IMAGE, startPodman } from '../helpers/podman.js';
import { until } from '../helpers/until.js';

// Real resolver libraries against the daemon, the way programs on a host or in a container use
// it: a network namespace the test creates is the host, the daemon holds the cluster DNS address
// 10.223.0.10 on its link there and serves port 53, and every client reads a resolv.conf (bind
// mounted over /etc/resolv.conf in a private mount namespace) that points at it with a
// Kubernetes-style search list. Clients: glibc (getent; getaddrinfo, gethostbyaddr and res_query
// through Python), Go's pure resolver (and cgo), Node (dns.lookup, dns.lookupService, c-ares'
// resolveSrv) and busybox nslookup, which never retries over TCP, in a Podman container.
// The services are made-up 10.77.x addresses with health checks off: DNS answers only, nothing
// connects to them.

if (!isRoot) {
  t.comment('skipped: needs root for network namespaces and port 53 (run by .ci/run as root)');
  process.exit(0);
}

const DNS = '10.223.0.10';
const SEARCH = 'default.svc.cluster.local svc.cluster.local cluster.local';
const FIXTURES = join(ROOT, 'test', 'fixtures', 'resolvers');

const range = (n: number, f: (i: number) => string): string[] => Array.from({ length: n }, (_, i) => f(i + 1));
const SERVICES = [
  { namespace: 'default', name: 'web1', addresses: ['10.77.1.1'] },
  { namespace: 'default', name: 'web30', addresses: range(30, (i) => `10.77.30.${i}`) },
  { namespace: 'default', name: 'web60', addresses: range(60, (i) => `10.77.60.${i}`) },
  { namespace: 'prod', name: 'db', addresses: ['10.77.2.1'] },
];
const CONFIG = `services:\n${SERVICES.map((s) =>
  `  - namespace: ${s.namespace}\n    name: ${s.name}\n    endpoints:\n${s.addresses.map((a, i) =>
    `      - { address: ${a}, hostname: w${i + 1}, ports: { http: 80/tcp }, health: none }\n`).join('')}`).join('')}`;
const addresses = (name: string): string[] => [...SERVICES.find((s) => s.name === name)!.addresses].sort();

/** What a lookup gave: addresses/names, or an error class (each probe documents its classes). */
interface Outcome {
  ok?: string[];
  err?: string;
  msg?: string;
}

/** NXDOMAIN and NODATA as each library reports them. */
interface NotFound {
  nxdomain: string;
  nodata: string;
}

interface Case {
  what: string;
  query: string;
  want: (nf: NotFound) => Outcome;
}

const ok = (list: string[]) => (): Outcome => ({ ok: list });
const CASES: Case[] = [
  { what: 'a 1-endpoint service', query: 'ip:web1.default.svc.cluster.local', want: ok(['10.77.1.1']) },
  { what: 'a 30-endpoint service', query: 'ip:web30.default.svc.cluster.local', want: ok(addresses('web30')) },
  { what: 'a 60-endpoint service', query: 'ip:web60.default.svc.cluster.local', want: ok(addresses('web60')) },
  {
    what: 'SRV of the 30-endpoint service', query: 'srv:_http._tcp.web30.default.svc.cluster.local',
    want: ok(range(30, (i) => `80 w${i}.web30.default.svc.cluster.local`).sort()),
  },
  { what: 'PTR of an endpoint', query: 'ptr:10.77.30.7', want: ok(['w7.web30.default.svc.cluster.local']) },
  { what: 'a short name, found on the first search domain', query: 'ip:web1', want: ok(['10.77.1.1']) },
  { what: 'a short name, found on the second search domain after an NXDOMAIN', query: 'ip:db.prod', want: ok(['10.77.2.1']) },
  { what: 'NXDOMAIN', query: 'ip:nope.default.svc.cluster.local', want: (nf) => ({ err: nf.nxdomain }) },
  { what: 'NODATA: IPv6 of an IPv4-only service', query: 'ip6:web1.default.svc.cluster.local', want: (nf) => ({ err: nf.nodata }) },
  // ndots:5 makes the last try the bare name `web1.`, which the daemon forwards to the namespace's
  // upstream (NXDOMAIN for everything): the NODATA seen on the way must still win.
  { what: 'NODATA of a short name through the search list', query: 'ip6:web1', want: (nf) => ({ err: nf.nodata }) },
];

/** Compares each outcome with its case; the library's own message goes into the assertion name. */
function check(t: Test, results: Outcome[], cases: Case[], nf: NotFound): void {
  t.equal(results.length, cases.length, 'one result per query');
  cases.forEach((c, i) => {
    const { msg, ...got } = results[i] ?? {};
    t.same(got, c.want(nf), `${c.what} (${c.query})${msg ? `: ${msg}` : ''}`);
  });
}

function run(argv: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, cwd, timeout: 60_000, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

const has = (cmd: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

let ns: Netns;
let dir: string;
let resolvConf: string;
const inNs = (cmd: string, args: string[]): string[] => withResolvConf(ns, resolvConf, cmd, args);

/** Runs a probe (one process, every query) and parses its JSON list. */
async function probe(t: Test, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ results: Outcome[]; stderr: string }> {
  const r = await run(inNs(cmd, [...args, ...CASES.map((c) => c.query)]), env);
  t.equal(r.code, 0, `${cmd} ran${r.code ? `: ${r.stderr}` : ''}`);
  return { results: JSON.parse(r.stdout || '[]') as Outcome[], stderr: r.stderr };
}

t.before(async () => {
  ns = createNetns(t, 'psres');
  dir = mkdtempSync(join(tmpdir(), 'psdns-resolvers-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  resolvConf = join(dir, 'resolv.conf');
  writeFileSync(resolvConf, `nameserver ${DNS}\nsearch ${SEARCH}\noptions ndots:5\n`);

  // The daemon's upstream inside the namespace: NXDOMAIN for every name, as the internet's root
  // would say for `web1.`.
  const upstream = spawn(ns.prefix[0]!, [...ns.prefix.slice(1), process.execPath, '-e', `
    const s = require('node:dgram').createSocket('udp4');
    s.on('message', (m, from) => {
      if (m.length < 17) return;
      let o = 12;
      while (o < m.length && m[o] !== 0) o += m[o] + 1;
      const r = Buffer.from(m.subarray(0, o + 5));
      r[2] = 0x80 | (m[2] & 0x79); r[3] = 0x83; r.fill(0, 6, 12);
      s.send(r, from.port, from.address);
    });
    s.bind(5300, '127.0.0.1', () => console.log('listening'));`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => upstream.kill('SIGKILL'));
  let said = '';
  upstream.stdout!.on('data', (c: Buffer) => (said += c));
  await until('the upstream in the namespace', () => said.includes('listening'), 10_000);

  await startDaemon(t, {
    config: CONFIG,
    wrap: ns.prefix,
    upstreams: ['127.0.0.1:5300'],
    // Port 53 on the cluster DNS address and loopback, as a root daemon serves by default.
    args: ['--link', 'pswarm0', '--dns-listen', `${DNS}:53,127.0.0.1:53`, '--resolved', 'off'],
  });
});

t.test('glibc: getent ahosts / ahostsv4 / hosts', async (t) => {
  // getent has no SRV and its ahostsv6 maps IPv4 answers (so no NODATA); both are asked of glibc
  // through Python below. Its exit code says "not found" for NXDOMAIN, without the why.
  const cases = CASES.filter((c) => !c.query.startsWith('srv:') && !c.query.startsWith('ip6:'));
  const results: Outcome[] = [];
  for (const c of cases) {
    const [kind, name] = c.query.split(/:(.*)/) as [string, string];
    const r = await run(inNs('getent', [kind === 'ptr' ? 'hosts' : kind === 'ip4' ? 'ahostsv4' : 'ahosts', name]));
    if (r.code === 2) results.push({ err: 'notfound' });
    else if (r.code !== 0) results.push({ err: 'other', msg: `exit ${r.code}: ${r.stderr}` });
    else if (kind === 'ptr') results.push({ ok: r.stdout.trim().split(/\s+/).slice(1) });
    else results.push({ ok: [...new Set(r.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]!))].sort() });
  }
  check(t, results, cases, { nxdomain: 'notfound', nodata: 'notfound' });
});

t.test("glibc through Python: getaddrinfo's error codes, gethostbyaddr, res_query for SRV", async (t) => {
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const { results } = await probe(t, python, [join(FIXTURES, 'probe.py')]);
  // glibc tells NXDOMAIN (EAI_NONAME) from NODATA (EAI_NODATA).
  check(t, results, CASES, { nxdomain: 'nxdomain', nodata: 'nodata' });
});

const noGo = has('go') ? false : 'no Go toolchain (apt-get install golang-go; .ci/run does)';
t.test("Go's resolvers (net.Resolver: pure Go, and cgo when a C compiler is there)", { skip: noGo }, async (t) => {
  const src = join(dir, 'go');
  mkdirSync(src);
  copyFileSync(join(FIXTURES, 'probe.go'), join(src, 'probe.go'));
  writeFileSync(join(src, 'go.mod'), 'module probe\n\ngo 1.19\n');
  const cgo = has('gcc');
  // Offline and self-contained: the standard library only, caches in the test's directory.
  const build = await run(['go', 'build', '-o', join(dir, 'probe-go'), '.'], {
    GOCACHE: join(dir, 'gocache'), GOPATH: join(dir, 'gopath'), GOTOOLCHAIN: 'local', GOPROXY: 'off', GOFLAGS: '-mod=mod',
    CGO_ENABLED: cgo ? '1' : '0',
  }, src);
  t.equal(build.code, 0, `go build${build.code ? `: ${build.stderr}` : ''}`);
  if (build.code !== 0) return;

  await t.test('pure Go (GODEBUG=netdns=go)', async (t) => {
    const { results, stderr } = await probe(t, join(dir, 'probe-go'), [], { GODEBUG: 'netdns=go+1' });
    t.match(stderr, /forcing use of Go's resolver/, "Go's own resolver answered, not glibc");
    check(t, results, CASES, { nxdomain: 'notfound', nodata: 'notfound' });
  });
  await t.test('cgo (GODEBUG=netdns=cgo: getaddrinfo underneath)', { skip: cgo ? false : 'no C compiler: the probe was built without cgo' }, async (t) => {
    const { results, stderr } = await probe(t, join(dir, 'probe-go'), [], { GODEBUG: 'netdns=cgo+1' });
    t.match(stderr, /using cgo DNS resolver/);
    // Through cgo, Go asks for every family and then finds no IPv6 address among the answers.
    check(t, results, CASES, { nxdomain: 'notfound', nodata: 'noaddress' });
  });
});

t.test('Node: dns.lookup, dns.lookupService and c-ares (dns.resolveSrv)', async (t) => {
  const { results } = await probe(t, process.execPath, [join(FIXTURES, 'probe.mjs')]);
  check(t, results, CASES, { nxdomain: 'notfound', nodata: 'notfound' });
});

const noBusybox = hasPodman() || has('busybox') ? false : 'neither podman nor busybox (apt-get install podman runc busybox-static)';
t.test('busybox nslookup (never retries over TCP) gets records of a 30-endpoint service', { skip: noBusybox }, async (t) => {
  const name = 'web30.default.svc.cluster.local';
  let out: string;
  if (hasPodman()) {
    // In a container on the namespace's network, with Podman's --dns as users set it.
    const podman = await startPodman(t, `psres${process.pid % 10000}`);
    out = await podman.run(['run', '--rm', '--network', `ns:/run/netns/${ns.name}`, '--dns', DNS, ...SEARCH.split(' ').flatMap((d) => ['--dns-search', d]), IMAGE, 'nslookup', name]);
  } else {
    t.comment('no podman: the static busybox binary in the namespace instead of a container');
    const r = await run(inNs('busybox', ['nslookup', name]));
    t.equal(r.code, 0, `busybox nslookup${r.code ? `: ${r.stderr}` : ''}`);
    out = r.stdout;
  }
  // The answer lines follow "Name:"; the server's own address comes before.
  const answers = out.includes('Name:') ? [...out.slice(out.indexOf('Name:')).matchAll(/^Address:\s*(\S+)$/gm)].map((m) => m[1]!) : [];
  const known = new Set(addresses('web30'));
  t.ok(answers.length >= 20, `at least 20 of the 30 addresses in one UDP answer (got ${answers.length}):\n${out}`);
  t.same(answers.filter((a) => !known.has(a)), [], 'only addresses of the service');
  t.equal(new Set(answers).size, answers.length, 'no address twice');
});
