import { ConfigError, didYouMean } from './errors.js';

// Command-line splitting: `--name value`, `--name=value`, `--flag`, `--no-flag`, `--` ends flags.
// Values stay raw strings here; kinds turn them into typed values so that flags, environment and
// the YAML file share one validation.

export interface FlagSpec {
  name: string;
  bool: boolean;
}

export interface ParsedArgs {
  /** Raw values per flag name, in order of appearance (repeatable flags keep them all). */
  flags: Map<string, string[]>;
  positionals: string[];
}

export function parseArgs(argv: readonly string[], specs: readonly FlagSpec[]): ParsedArgs {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const flags = new Map<string, string[]>();
  const positionals: string[] = [];
  const push = (name: string, value: string): void => {
    const list = flags.get(name);
    if (list) list.push(value);
    else flags.set(name, [value]);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--') || arg === '--') {
      if (arg.startsWith('-') && arg !== '-' && !/^-\d/.test(arg)) {
        if (arg === '-h') {
          push('help', 'true');
          continue;
        }
        throw new ConfigError('ERR_USAGE', `unknown option ${arg} (options are spelled --name)`);
      }
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let value: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    let spec = byName.get(name);
    if (!spec && name.startsWith('no-') && byName.get(name.slice(3))?.bool && value === undefined) {
      name = name.slice(3);
      spec = byName.get(name);
      value = 'false';
    }
    if (!spec) {
      throw new ConfigError('ERR_USAGE', `unknown option --${name}${didYouMean(name, byName.keys(), '--')}`);
    }
    if (value === undefined) {
      if (spec.bool) value = 'true';
      else {
        const next = argv[i + 1];
        if (next === undefined || (next.startsWith('--') && next.length > 2)) {
          throw new ConfigError('ERR_USAGE', `option --${name} needs a value`);
        }
        value = next;
        i++;
      }
    }
    push(name, value);
  }
  return { flags, positionals };
}
