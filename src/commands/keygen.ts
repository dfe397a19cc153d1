import { randomBytes } from 'node:crypto';

/** A new 32-byte gossip key, base64, for a --gossip-key-file keyring (docs/architecture.md#registry-and-gossip). */
export const keygen = (): string => randomBytes(32).toString('base64');
