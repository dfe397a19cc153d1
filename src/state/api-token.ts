import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config/errors.js';
import { writeFileAtomic } from './files.js';

// The API token made at first start: writes over TCP need it unless --api-token-file names
// another. Kept in the state directory, readable by the daemon's user only; local tools read it
// from there or use the unix socket, where the socket's permissions decide instead.

export const API_TOKEN_FILE = 'api-token';
export const MIN_TOKEN_LENGTH = 16;

export interface StateToken {
  token: string;
  path: string;
  /** Why the token could not be saved (it then lives only as long as this process), or null. */
  unsaved: string | null;
  created: boolean;
}

export function stateApiToken(stateDir: string): StateToken {
  const path = join(stateDir, API_TOKEN_FILE);
  try {
    const token = readFileSync(path, 'utf8').trim();
    if (token.length >= MIN_TOKEN_LENGTH) return { token, path, unsaved: null, created: false };
  } catch {
    /* missing or unreadable: make a new one */
  }
  const token = randomBytes(32).toString('hex');
  try {
    writeFileAtomic(path, `${token}\n`, 0o600);
    return { token, path, unsaved: null, created: true };
  } catch (e) {
    return { token, path, unsaved: (e as Error).message, created: true };
  }
}

/** The token of --api-token-file; a ConfigError says what is wrong with the file. */
export function readTokenFile(file: string): string {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new ConfigError('ERR_CONFIG_FILE', `--api-token-file ${file}: cannot read it (${(e as Error).message})`);
  }
  if (token.length < MIN_TOKEN_LENGTH) throw new ConfigError('ERR_CONFIG_BAD_VALUE', `--api-token-file ${file}: the token is shorter than ${MIN_TOKEN_LENGTH} characters; use e.g. \`openssl rand -hex 32 > ${file}\``);
  return token;
}
