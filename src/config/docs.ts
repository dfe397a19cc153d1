import { COMMANDS, EXIT_CODES, READ_OPTIONS } from './commands.js';
import { envNames, flagText, GROUPS, helpText, optionsInGroup, showDefault } from './help.js';
import type { OptionDef } from './options.js';

// Documents that ship in the packages, generated from the same option and command tables as
// `--help`, so the sample config, the man page and the completion cannot drift from the daemon.
// packaging/stage.mjs writes them; test/unit/docs.test.ts holds them to the tables.

const defaultOf = (d: OptionDef<unknown>): string => d.defaultText ?? showDefault(d);

/**
 * /etc/podman-swarm-dns/config.yaml: every file option, each left empty (which means its
 * default, see load.ts) with its default, form and help in comments. It parses as it is.
 */
export function sampleConfig(): string {
  const out = [
    '# /etc/podman-swarm-dns/config.yaml: configuration of podman-swarm-dns.',
    '#',
    '# Every option is listed with its default. A key left empty (as they all are here) takes the',
    '# default; write a value after the colon to change it, e.g. "ttl: 10s" or',
    '# "upstream-dns: [192.168.1.1, 9.9.9.9]". Every option is also a flag of',
    '# "podman-swarm-dns daemon" and an environment variable; flags win over the environment, the',
    '# environment over this file. See podman-swarm-dns(8) or "podman-swarm-dns daemon --help".',
    '#',
    '# After editing: systemctl reload podman-swarm-dns. Upstreams, TTLs, ACLs, the log level and',
    '# services change live; the log names the changed options that need a restart.',
  ];
  for (const group of GROUPS) {
    const defs = optionsInGroup(group).filter((d) => !d.noFile);
    if (defs.length === 0) continue;
    out.push('', `# ---- ${group} ----`);
    for (const d of defs) {
      out.push('', ...commentWrap(helpText(d)), ...commentWrap(`default: ${defaultOf(d)}; form: ${d.kind.form}`), `${d.name}:`);
    }
  }
  out.push(
    '',
    '# ---- Static services ----',
    '',
    '# Endpoints this node owns, like API registrations but kept in this file (re-read on reload).',
    '# services:',
    '#   - namespace: default          # optional, default "default"',
    '#     name: postgres',
    '#     mode: dnsrr                 # optional',
    '#     endpoints:',
    '#       - address: 10.0.0.5',
    '#         hostname: db1           # optional',
    '#         ports: { pg: 5432/tcp } # optional',
    '#         weight: 10              # optional, 1 to 100',
    'services:',
    '',
  );
  return out.join('\n');
}

function commentWrap(text: string, width = 98): string[] {
  const lines: string[] = [];
  let line = '#';
  for (const w of text.split(' ')) {
    if (line.length > 1 && line.length + 1 + w.length > width) {
      lines.push(line);
      line = '#';
    }
    line += ` ${w}`;
  }
  lines.push(line);
  return lines;
}

/** Text for groff: backslashes escaped, dashes as minus signs, no line read as a request. */
const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

const roff = (s: string): string => s.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/^([.'])/gm, '\\&$1');

/** podman-swarm-dns(8). `date` is the package's date (YYYY-MM-DD), so builds are reproducible. */
export function manPage(version: string, date: string): string {
  const out: string[] = [
    `.TH PODMAN\\-SWARM\\-DNS 8 "${date}" "podman\\-swarm\\-dns ${roff(version)}" "System Administration"`,
    // No hyphenation: option names and paths must stay whole.
    '.nh',
    '.ad l',
    '.SH NAME',
    'podman\\-swarm\\-dns \\- service discovery DNS for Podman hosts',
    '.SH SYNOPSIS',
    '.B podman\\-swarm\\-dns daemon',
    '.RI [ options ]',
    '.br',
    '.B podman\\-swarm\\-dns',
    '.I command',
    '.RI [ arguments ]',
    '.RB [ \\-\\-json ]',
    '.SH DESCRIPTION',
    'Every host runs one',
    '.B podman\\-swarm\\-dns daemon',
    'that answers',
    '.IR service . namespace .cluster.local',
    '(A, AAAA, SRV and PTR records, with Kubernetes\\-compatible names) for the endpoints it knows,',
    'forwards every other name to the upstream servers, and offers the same data over an HTTP API.',
    'As root it serves the cluster DNS address (10.223.0.10 by default) on its own link',
    '.B pswarm0',
    'and 127.0.0.1:53; other users get 127.0.0.1:5353.',
    'The systemd unit',
    '.B podman\\-swarm\\-dns.service',
    'runs the daemon; the other commands ask it over its API socket.',
    '.SH COMMANDS',
  ];
  for (const c of COMMANDS) {
    out.push('.TP', `.B ${roff(c.name)}${c.args ? ` ${roff(c.args)}` : ''}`, `${roff(cap(c.help))}.`);
  }
  out.push('.SH OPTIONS OF THE READ COMMANDS');
  for (const o of READ_OPTIONS) out.push('.TP', `.B ${roff(o.flag)}`, `${roff(cap(o.help))}.`);
  out.push(
    '.SH DAEMON OPTIONS',
    'Every option of',
    '.B daemon',
    'is also an environment variable and a key of the configuration file;',
    'flags win over the environment, the environment over the file.',
    'Repeatable options also take a comma\\-separated list.',
  );
  for (const group of GROUPS) {
    out.push(`.SS ${roff(group)}`);
    for (const d of optionsInGroup(group)) {
      out.push(
        '.TP',
        `.B ${roff(flagText(d))}`,
        `${roff(cap(helpText(d)))}.`,
        '.br',
        `Default: ${roff(defaultOf(d))}.`,
        `Form: ${roff(d.kind.form)}.`,
        '.br',
        `Environment: ${roff(envNames(d).join(', '))}${d.noFile ? '' : `; file key: ${roff(d.name)}`}.`,
      );
    }
  }
  out.push(
    '.SH FILES',
    '.TP',
    '.I /etc/podman\\-swarm\\-dns/config.yaml',
    'The configuration file (YAML): every option with its default, and static',
    '.B services',
    'owned by this node.',
    '.TP',
    '.I /var/lib/podman\\-swarm\\-dns',
    'State: the node id and the endpoints registered over the API.',
    '.TP',
    '.I /run/podman\\-swarm\\-dns/api.sock',
    'The API socket that the read commands use (of a daemon with the default state directory; one',
    'with another',
    '.B \\-\\-state\\-dir',
    'serves',
    '.IR <state\\-dir>/api.sock ).',
    '.TP',
    '.I /usr/share/doc/podman\\-swarm\\-dns/containers.conf',
    'A Podman drop\\-in (for /etc/containers/containers.conf.d/) that points containers at the',
    'cluster DNS address. Not active unless copied there.',
    '.SH SIGNALS',
    '.B SIGHUP',
    're\\-reads the configuration (systemctl reload);',
    '.B SIGTERM',
    'stops the daemon.',
    '.SH EXIT STATUS',
  );
  for (const [n, s] of EXIT_CODES) out.push('.TP', `.B ${n}`, `${roff(cap(s))}.`);
  out.push(
    '.SH EXAMPLES',
    '.nf',
    'systemctl enable \\-\\-now podman\\-swarm\\-dns',
    'podman\\-swarm\\-dns services',
    'dig @127.0.0.1 postgres.default.cluster.local',
    'curl \\-X POST http://127.0.0.1:8080/api/v1/services/default/web/endpoints \\e',
    "     \\-d '{\"id\": \"web1\", \"address\": \"10.0.0.6\"}'",
    '.fi',
    '.SH SEE ALSO',
    '.BR podman (1),',
    '.BR resolvectl (1),',
    '.BR systemctl (1)',
    '',
  );
  return out.join('\n');
}

/** Bash completion: commands, the daemon's flags, and the values of options with fixed choices. */
export function bashCompletion(): string {
  const defs = GROUPS.flatMap(optionsInGroup);
  const flags = defs.flatMap((d) => (d.kind.arg === '' ? [`--${d.name}`, `--no-${d.name}`] : [`--${d.name}`]));
  // Kinds with fixed choices (oneOf) spell them as `a|b` in the flag and `a, b` as the form.
  const choice = defs.filter((d) => d.kind.arg.includes('|') && d.kind.arg.split('|').join(', ') === d.kind.form);
  const files = defs.filter((d) => d.kind.arg === 'path');
  const readCmds = COMMANDS.filter((c) => c.read).map((c) => c.name);
  return `# bash completion for podman-swarm-dns(8); generated from its option table.
_podman_swarm_dns() {
    local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
    COMPREPLY=()
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "${COMMANDS.map((c) => c.name).join(' ')} --help --version" -- "$cur"))
        return
    fi
    case \${COMP_WORDS[1]} in
    daemon)
        case $prev in
${choice.map((d) => `        --${d.name}) COMPREPLY=($(compgen -W "${d.kind.arg.replace(/\|/g, ' ')}" -- "$cur")); return ;;`).join('\n')}
        ${files.map((d) => `--${d.name}`).join('|')}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        esac
        COMPREPLY=($(compgen -W "${flags.join(' ')} --help" -- "$cur"))
        ;;
    ${readCmds.join('|')})
        case $prev in
        --api-socket|--state-dir) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        esac
        if [ "\${COMP_WORDS[1]}" = query ] && [ "$COMP_CWORD" -eq 3 ] && [[ $cur != -* ]]; then
            COMPREPLY=($(compgen -W "A AAAA SRV PTR TXT SOA NS" -- "$cur"))
            return
        fi
        COMPREPLY=($(compgen -W "--json --api-socket --state-dir --help" -- "$cur"))
        ;;
    esac
}
complete -F _podman_swarm_dns podman-swarm-dns
`;
}
