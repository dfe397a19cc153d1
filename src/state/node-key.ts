import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NodeIdentity } from '../gossip/identity.js';
import { readJsonFile, writeFileAtomic } from './files.js';

// The node's signing key (gossip/identity.ts) lives in the state directory as node.key, a PKCS#8
// PEM readable by the daemon's user only, made at first start. The node id is derived from it
// and also written to node-id, as before, for tools that read it. A node id from an earlier
// version (16 random hex digits) is replaced, and the caller is told so it can log it.

const KEY_FILE = 'node.key';
const ID_FILE = 'node-id';

export interface NodeKey {
  identity: NodeIdentity;
  /** Path of the key file. */
  path: string;
  /** Things worth a log line (created the key, migrated an old id). */
  notes: string[];
  /** Things worth a warning (a damaged key replaced: the node has a new id). */
  warnings: string[];
  /** Set when the key could not be kept: the node gets a new id on every start. */
  problem: string | null;
}

export function loadNodeKey(stateDir: string): NodeKey {
  const path = join(stateDir, KEY_FILE);
  const notes: string[] = [];
  const warnings: string[] = [];
  let identity: NodeIdentity | null = null;
  let problem: string | null = null;
  try {
    const pem = readFileSync(path, 'utf8');
    identity = NodeIdentity.fromPem(pem);
    if ((statSync(path).mode & 0o077) !== 0) {
      chmodSync(path, 0o600);
      notes.push(`${path} was readable by other users: made it 0600`);
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code !== 'ENOENT') {
      const movedTo = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      try {
        renameSync(path, movedTo);
        warnings.push(`${path} is not a usable key (${err.message}): moved to ${movedTo}; this node starts as a new member with a new key and id`);
      } catch {
        problem = `${path} is not a usable key (${err.message}) and cannot be moved aside: this run uses a temporary key and node id`;
      }
    }
  }
  if (!identity) {
    identity = NodeIdentity.generate();
    if (!problem) {
      try {
        writeKey(path, identity.toPem());
        notes.push(`made the node's signing key ${path}; node id ${identity.id}`);
      } catch (e) {
        problem = `cannot save the node's signing key in ${stateDir} (${(e as Error).message}): the node id will change on every restart`;
      }
    }
  }
  if (!problem) notes.push(...recordId(stateDir, identity.id));
  return { identity, path, notes, warnings, problem };
}

/** Writes node-id; returns a note when it held another (an older version's) id. */
function recordId(stateDir: string, id: string): string[] {
  const file = join(stateDir, ID_FILE);
  const old = readJsonFile(file, (v) => (typeof v === 'string' ? v : ''));
  if (old.kind === 'ok' && old.value === id) return [];
  try {
    writeFileAtomic(file, JSON.stringify(id));
  } catch {
    return [];
  }
  return old.kind === 'ok' && old.value
    ? [`node id ${old.value} is replaced by ${id}, derived from the node's signing key (node ids are bound to keys since wire version 2): the other members see ${old.value} go and ${id} join`]
    : [];
}

function writeKey(path: string, pem: string): void {
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o750 });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeFileSync(fd, pem);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
