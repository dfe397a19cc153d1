import { KEY_BYTES } from './crypto.js';

// Docker-Swarm-like join token (docs/architecture.md#registry-and-gossip): one string holding the seed addresses and the primary
// gossip key, so `--join-token <t>` is all a new host needs. It is a secret: whoever holds it
// can join and read the registry.

const PREFIX = 'PSWARM1-';

export interface JoinToken {
  seeds: string[];
  key: Buffer | null;
}

export function encodeToken(t: JoinToken): string {
  const body = JSON.stringify({ s: t.seeds, k: t.key ? t.key.toString('base64') : null });
  return PREFIX + Buffer.from(body).toString('base64url');
}

export function decodeToken(text: string): JoinToken {
  const s = text.trim();
  if (!s.startsWith(PREFIX)) throw new Error(`not a join token (it starts with ${PREFIX}; print one with \`podman-swarm-dns join-token\` on a member)`);
  let v: { s?: unknown; k?: unknown };
  try {
    v = JSON.parse(Buffer.from(s.slice(PREFIX.length), 'base64url').toString('utf8')) as typeof v;
  } catch {
    throw new Error('the join token is damaged (copy it again)');
  }
  if (!Array.isArray(v.s) || v.s.length === 0 || !v.s.every((x) => typeof x === 'string' && /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(x))) {
    throw new Error('the join token holds no usable seed addresses');
  }
  let key: Buffer | null = null;
  if (v.k !== null) {
    key = typeof v.k === 'string' ? Buffer.from(v.k, 'base64') : Buffer.alloc(0);
    if (key.length !== KEY_BYTES) throw new Error('the join token holds a damaged key');
  }
  return { seeds: v.s as string[], key };
}
