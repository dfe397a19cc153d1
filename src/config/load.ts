import { readFileSync } from 'node:fs';
import type { Endpoint } from '../registry/types.js';
import { ConfigError, didYouMean } from './errors.js';
import { BadValue, describe, type Kind } from './kinds.js';
import { envName, OPTIONS, type OptionDef, type OptionKey, type Options } from './options.js';
import { parseServices, SERVICES_KEY, type StaticService } from './services.js';
import { readYaml, YamlSyntaxError, type YamlFile } from './yaml.js';

// Precedence (docs/architecture.md#configuration): flags > environment > config file > defaults.

export type Origin = 'default' | 'file' | 'env' | 'flag';

export interface LoadedConfig {
  options: Options;
  /** Where each option's value came from (for status and reload reports). */
  origin: Record<OptionKey, Origin>;
  /** The config file actually read, or null when the default one does not exist. */
  file: string | null;
  services: StaticService[];
  /** Endpoints of `services:`, owned by this node. */
  endpoints: Endpoint[];
}

export interface LoadInput {
  /** Raw flag values by flag name (see args.ts). */
  flags: Map<string, string[]>;
  env: NodeJS.ProcessEnv;
  now?: number;
  readFile?: (path: string) => string;
}

const defs = Object.entries(OPTIONS) as Array<[OptionKey, OptionDef<unknown>]>;
export const FILE_KEYS = new Map(defs.filter(([, d]) => !d.noFile).map(([key, d]) => [d.name, key]));

export function loadConfig(input: LoadInput): LoadedConfig {
  const steps = loading(input);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * loadConfig, giving the event loop a turn between slices (a reload: a file with 10,000 services
 * would hold it ~0.7 s on Node 18, past the gossip probe timeout, in one piece). The YAML parse
 * itself is one piece (~0.15–0.25 s for that file).
 */
export async function loadConfigSliced(input: LoadInput): Promise<LoadedConfig> {
  const steps = loading(input);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

function* loading(input: LoadInput): Generator<void, LoadedConfig, void> {
  const read = input.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const options = {} as Record<OptionKey, unknown>;
  const origin = {} as Record<OptionKey, Origin>;

  // --config comes first: it decides which file the other options may come from.
  const configDef = OPTIONS.config;
  const explicit = flagOrEnv(configDef, input);
  const file = explicit?.value ?? configDef.default;
  let text: string | null = null;
  try {
    text = read(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code !== 'ENOENT' || explicit) {
      throw new ConfigError(
        'ERR_CONFIG_FILE',
        `${file}: cannot read the config file (${err.code === 'ENOENT' ? 'no such file' : err.message})` +
          (explicit ? `; it was given by ${explicit.where}` : ''),
      );
    }
  }
  const doc = text === null ? null : parseFile(file, text);
  const data = (doc?.json ?? {}) as Record<string, unknown>;
  if (doc) yield;

  for (const [key, def] of defs) {
    const fromCli = flagOrEnv(def, input);
    if (fromCli) {
      options[key] = fromCli.value;
      origin[key] = fromCli.origin;
    } else if (!def.noFile && def.name in data && data[def.name] !== null) {
      // A key left empty (`ttl:`) means the default, as in the commented sample config.
      options[key] = parseValue(def.kind, data[def.name], () => `${file}: key "${def.name}"${doc!.line([def.name])}`);
      origin[key] = 'file';
    } else {
      options[key] = def.default;
      origin[key] = 'default';
    }
  }

  let services: StaticService[] = [];
  if (data[SERVICES_KEY] != null) {
    services = yield* parseServices(data[SERVICES_KEY], input.now ?? Date.now(), (path, message) => {
      throw new ConfigError(
        'ERR_CONFIG_BAD_VALUE',
        `${file}: ${[SERVICES_KEY, ...path].map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('').slice(1)}` +
          `${doc!.line([SERVICES_KEY, ...path])}: ${message}`,
      );
    }, { maxPorts: options.maxPortsPerEndpoint as number, maxEndpoints: options.maxEndpointsPerService as number });
  }
  return {
    options: options as Options,
    origin,
    file: text === null ? null : file,
    services,
    endpoints: services.flatMap((s) => s.endpoints),
  };
}

function flagOrEnv<T>(
  def: OptionDef<T>,
  input: LoadInput,
): { value: T; origin: 'flag' | 'env'; where: string } | undefined {
  const raw = input.flags.get(def.name);
  if (raw && raw.length > 0) {
    const where = `--${def.name}`;
    // A repeatable flag given several times: each occurrence may itself be a comma list.
    const value = (def.kind.repeatable
      ? raw.flatMap((r) => parseValue(def.kind, r, where) as unknown[])
      : parseValue(def.kind, raw[raw.length - 1], where)) as T;
    return { value, origin: 'flag', where };
  }
  for (const name of [envName(def.name), ...(def.env ?? [])]) {
    const v = input.env[name];
    if (v !== undefined && v !== '') return { value: parseValue(def.kind, v, name), origin: 'env', where: name };
  }
  return undefined;
}

/** `where`: the place named in the error (made only when there is one: a line number costs a parse). */
export function parseValue<T>(kind: Kind<T>, raw: unknown, where: string | (() => string)): T {
  try {
    return kind.parse(raw);
  } catch (e) {
    if (!(e instanceof BadValue)) throw e;
    throw new ConfigError('ERR_CONFIG_BAD_VALUE', `${typeof where === 'string' ? where : where()}: ${describe(raw)} ${e.message}; expected ${kind.form}`);
  }
}

interface ParsedFile {
  json: unknown;
  /** " (line N)" for a path inside the document, or "" when it cannot be located. */
  line(path: Array<string | number>): string;
}

function parseFile(file: string, text: string): ParsedFile {
  let yaml: YamlFile;
  try {
    yaml = readYaml(text);
  } catch (e) {
    if (!(e instanceof YamlSyntaxError)) throw e;
    throw new ConfigError('ERR_CONFIG_YAML', `${file}: line ${e.line}, column ${e.col}: invalid YAML: ${e.message}`);
  }
  const json = yaml.value ?? {};
  const lineOf = (offset: number | undefined): string => (offset === undefined ? '' : ` (line ${yaml.doc().lines.linePos(offset).line})`);
  const line = (path: Array<string | number>): string => lineOf((yaml.doc().doc.getIn(path, true) as { range?: [number, number, number] } | undefined)?.range?.[0]);
  if (typeof json !== 'object' || Array.isArray(json)) {
    throw new ConfigError('ERR_CONFIG_YAML', `${file}: expected a mapping of option names to values at the top level`);
  }
  for (const key of Object.keys(json)) {
    if (key === SERVICES_KEY || FILE_KEYS.has(key)) continue;
    const hint = key === 'config' ? ' (--config can only be given as a flag or in the environment)' : didYouMean(key, [...FILE_KEYS.keys(), SERVICES_KEY]);
    const { contents } = yaml.doc().doc;
    const keyNode = contents && 'items' in contents ? (contents.items as Array<{ key: { range?: number[] } }>).find((p) => String((p.key as { value?: unknown }).value) === key) : undefined;
    throw new ConfigError('ERR_CONFIG_UNKNOWN_KEY', `${file}: unknown key "${key}"${lineOf(keyNode?.key.range?.[0])}${hint}`);
  }
  return { json, line };
}
