import { existsSync } from 'node:fs';
import { parseArgs, type FlagSpec } from './config/args.js';
import { cliUsage } from './config/commands.js';
import { ConfigError } from './config/errors.js';
import { optionsHelp } from './config/help.js';
import { OPTIONS, type OptionDef } from './config/options.js';
import { apiSocketCandidates } from './config/runtime.js';
import { ClientError } from './client.js';
import { keygen } from './commands/keygen.js';
import * as read from './commands/read.js';
import * as cluster from './commands/cluster.js';
import { EXIT } from './commands/read.js';
import { runDaemon } from './commands/run-daemon.js';
import { VERSION } from './version.js';

// `podman-swarm-dns <command> [options]` (loaded by cli.ts). Thin over the library (like aardvark's
// commands/): parse, dispatch, map errors to exit codes.

const USAGE = cliUsage(VERSION, apiSocketCandidates(process.env).join(', then '));

const daemonFlags: FlagSpec[] = [
  ...(Object.values(OPTIONS) as OptionDef<unknown>[]).map((d) => ({ name: d.name, bool: d.kind.arg === '' })),
  { name: 'help', bool: true },
];
const clientFlags: FlagSpec[] = [
  { name: 'json', bool: true },
  { name: 'api-socket', bool: false },
  { name: 'state-dir', bool: false },
  { name: 'help', bool: true },
];

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const out = (s: string): void => void process.stdout.write(`${s}\n`);
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    out(USAGE);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  if (command === '--version' || command === 'version') {
    out(VERSION);
    return EXIT.ok;
  }
  if (command === 'daemon') {
    const { flags, positionals } = parseArgs(rest, daemonFlags);
    if (flags.has('help')) {
      out(`Usage: podman-swarm-dns daemon [options]\n\nEvery option can also be set in the environment or the config file; flags win over\nthe environment, the environment over the file.\n\n${optionsHelp()}`);
      return EXIT.ok;
    }
    if (positionals.length) throw new ConfigError('ERR_USAGE', `daemon takes no arguments, got "${positionals.join(' ')}"`);
    return runDaemon({ flags, env: process.env });
  }
  if (command === 'keygen') {
    out(keygen());
    return EXIT.ok;
  }
  const readCommands: Record<string, [number, number]> = { status: [0, 0], services: [0, 0], members: [0, 0], 'join-token': [0, 0], join: [1, 20], endpoints: [1, 1], query: [1, 2], explain: [1, 2] };
  const arity = readCommands[command];
  if (!arity) throw new ConfigError('ERR_USAGE', `unknown command "${command}"; see podman-swarm-dns --help`);
  const { flags, positionals } = parseArgs(rest, clientFlags);
  if (flags.has('help')) {
    out(USAGE);
    return EXIT.ok;
  }
  if (positionals.length < arity[0] || positionals.length > arity[1]) {
    const shape = { endpoints: 'endpoints <ns>/<svc>', query: 'query <name> [type]', explain: 'explain <name> [type]', join: 'join <host[:port]>...' }[command as 'query'] ?? command;
    throw new ConfigError('ERR_USAGE', `usage: podman-swarm-dns ${shape}`);
  }
  const socket = flags.get('api-socket')?.at(-1) ?? process.env.PODMAN_SWARM_DNS_API_SOCKET ?? pickSocket(flags.get('state-dir')?.at(-1));
  const o: read.ReadOptions = { socket, json: flags.has('json') && flags.get('json')!.at(-1) !== 'false', out };
  switch (command) {
    case 'status':
      return read.status(o);
    case 'services':
      return read.services(o);
    case 'members':
      return read.members(o);
    case 'join-token':
      return cluster.joinToken(o);
    case 'join':
      return cluster.join(o, positionals);
    case 'endpoints':
      return read.endpoints(o, positionals[0]!);
    case 'explain':
      return read.explain(o, positionals[0]!, (positionals[1] ?? 'A').toUpperCase());
    default:
      return read.query(o, positionals[0]!, (positionals[1] ?? 'A').toUpperCase());
  }
}

function pickSocket(stateDir: string | undefined): string {
  const candidates = apiSocketCandidates(process.env, stateDir);
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof ConfigError) {
      process.stderr.write(`podman-swarm-dns: ${e.message}\n`);
      process.exitCode = e.exitCode;
    } else if (e instanceof ClientError) {
      process.stderr.write(`podman-swarm-dns: ${e.message}\n`);
      process.exitCode = e.status === 0 ? EXIT.unreachable : e.status === 404 ? EXIT.notFound : EXIT.failure;
    } else {
      process.stderr.write(`podman-swarm-dns: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = EXIT.failure;
    }
  },
);
