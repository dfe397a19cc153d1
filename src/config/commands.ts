// The subcommands, defined once: the CLI's usage text, the man page and the shell completion
// derive from this list.

export interface CommandDef {
  name: string;
  /** Positional arguments as shown in usage, e.g. `<ns>/<svc>`. */
  args: string;
  help: string;
  /** Read commands talk to the API socket and take --json and --api-socket. */
  read: boolean;
}

export const COMMANDS: CommandDef[] = [
  { name: 'daemon', args: '', read: false, help: "run the daemon (what the systemd unit runs); see 'daemon --help'" },
  { name: 'status', args: '', read: true, help: 'this node: listeners, counts, problems' },
  { name: 'services', args: '', read: true, help: 'services and their endpoint counts' },
  { name: 'endpoints', args: '<ns>/<svc>', read: true, help: 'endpoints of a service (namespace defaults to "default")' },
  { name: 'members', args: '', read: true, help: 'nodes of the cluster' },
  { name: 'join-token', args: '', read: true, help: 'print a token for --join-token on a new host (holds the gossip key)' },
  { name: 'join', args: '<host[:port]>...', read: true, help: 'join the cluster through these members now' },
  { name: 'query', args: '<name> [type]', read: true, help: 'answer a DNS question the way the daemon does (type defaults to A)' },
  { name: 'explain', args: '<name> [type]', read: true, help: 'why the daemon answers a name as it does: how it parses, each endpoint in or out and why, forwarding decisions' },
  { name: 'keygen', args: '', read: false, help: 'print a new gossip key (one line of a --gossip-key-file)' },
];

/** Options of the read commands, besides --help. */
export const READ_OPTIONS = [
  { flag: '--json', help: "print the API's JSON instead of a table" },
  { flag: '--api-socket <path>', help: "the daemon's API socket; env PODMAN_SWARM_DNS_API_SOCKET" },
  { flag: '--state-dir <dir>', help: "the daemon's --state-dir when not the default: its socket is <dir>/api.sock; env PODMAN_SWARM_DNS_STATE_DIR" },
];

export const EXIT_CODES: Array<[number, string]> = [
  [0, 'ok'],
  [1, 'failed (e.g. SERVFAIL, daemon not ready)'],
  [2, 'bad usage or configuration'],
  [3, 'daemon unreachable'],
  [4, 'not found (unknown service, NXDOMAIN)'],
];

/** `podman-swarm-dns --help`. `socketDefault` is computed at run time (it depends on the user). */
export function cliUsage(version: string, socketDefault: string): string {
  const row = (left: string, right: string): string => `  ${left.padEnd(23)}${right}`;
  const [json, socket, stateDir] = READ_OPTIONS;
  return `podman-swarm-dns ${version} — service discovery DNS for Podman hosts

Usage: podman-swarm-dns <command> [options]

Commands:
${COMMANDS.map((c) => row(`${c.name} ${c.args}`.trim(), c.help)).join('\n')}

Options of the read commands (${COMMANDS.filter((c) => c.read).map((c) => c.name).join(', ')}):
${row(json!.flag, json!.help)}
${row(socket!.flag, `the daemon's API socket (default: ${socketDefault});`)}
${row('', 'env PODMAN_SWARM_DNS_API_SOCKET')}
${row(stateDir!.flag, "the daemon's --state-dir when not the default: its socket")}
${row('', 'is <dir>/api.sock; env PODMAN_SWARM_DNS_STATE_DIR')}

Exit codes: ${EXIT_CODES.slice(0, 3).map(([n, s]) => `${n} ${s}`).join('; ')};
${EXIT_CODES.slice(3).map(([n, s]) => `${n} ${s}`).join('; ')}.
`;
}
