import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

// A member speaks only for itself: every node holds an Ed25519 key pair and its node id is
// derived from the public key (the first 16 bytes of a SHA-256 of it, in hex). A message about
// node X that only X may send (its "alive", its graceful leave, its registry state) carries X's
// public key and X's signature; a receiver checks that the key hashes to X and that the
// signature holds, so nothing has to be learned or pinned first, and the cluster key alone
// (which every member has) cannot speak for another node. See docs/gossip-security.md.

export const PUBLIC_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
/** DER prefix of an Ed25519 PKCS#8 private key; the 32-byte seed follows it. */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const ID_DOMAIN = 'podman-swarm-dns node id\n';

/** The node id a public key stands for: 32 hex digits. */
export function nodeIdOf(publicKey: Uint8Array): string {
  return createHash('sha256').update(ID_DOMAIN).update(publicKey).digest('hex').slice(0, 32);
}

export const isDerivedNodeId = (id: string): boolean => /^[0-9a-f]{32}$/.test(id);

/** A proof that a payload comes from the node the key stands for. */
export interface Proof {
  pub: Uint8Array;
  sig: Uint8Array;
}

export class NodeIdentity {
  readonly id: string;
  readonly publicKey: Uint8Array;

  private constructor(private readonly key: KeyObject) {
    this.publicKey = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length));
    this.id = nodeIdOf(this.publicKey);
  }

  static generate(): NodeIdentity {
    return new NodeIdentity(generateKeyPairSync('ed25519').privateKey);
  }

  /** The key pair a 32-byte seed stands for (the simulator's reproducible nodes). */
  static fromSeed(seed: Uint8Array): NodeIdentity {
    if (seed.length !== 32) throw new Error('an Ed25519 seed is 32 bytes');
    return new NodeIdentity(createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' }));
  }

  /** From a PKCS#8 PEM private key (the state directory's node.key); throws when it is not one. */
  static fromPem(pem: string): NodeIdentity {
    const key = createPrivateKey({ key: pem, format: 'pem' });
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`an Ed25519 key is needed, this one is ${key.asymmetricKeyType}`);
    return new NodeIdentity(key);
  }

  toPem(): string {
    return this.key.export({ format: 'pem', type: 'pkcs8' }).toString();
  }

  prove(payload: Uint8Array): Proof {
    return { pub: this.publicKey, sig: new Uint8Array(sign(null, payload, this.key)) };
  }
}

// Verification results, shared by every verifier in the process: a relayed copy of a message
// (the same signature reaching a node from several members, or the simulator's nodes all
// checking one node's update) is checked once. Bounded; the oldest entries go first.
const CACHE = 4096;
const verified = new Map<string, boolean>();
const keys = new Map<string, KeyObject>();

function keyOf(pub: Uint8Array): KeyObject {
  const k = Buffer.from(pub).toString('base64');
  let key = keys.get(k);
  if (!key) {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pub]), format: 'der', type: 'spki' });
    if (keys.size >= CACHE) keys.delete(keys.keys().next().value!);
    keys.set(k, key);
  }
  return key;
}

/** True when `proof` shows that node `id` signed `payload`. */
export function verifyProof(id: string, payload: Uint8Array, proof: Proof | undefined): boolean {
  if (!proof || proof.pub.length !== PUBLIC_KEY_BYTES || proof.sig.length !== SIGNATURE_BYTES) return false;
  if (nodeIdOf(proof.pub) !== id) return false;
  const cacheKey = Buffer.concat([proof.sig, createHash('sha256').update(proof.pub).update(payload).digest()]).toString('base64');
  const hit = verified.get(cacheKey);
  if (hit !== undefined) return hit;
  let ok = false;
  try {
    ok = verify(null, payload, keyOf(proof.pub), proof.sig);
  } catch {
    ok = false;
  }
  if (verified.size >= CACHE) verified.delete(verified.keys().next().value!);
  verified.set(cacheKey, ok);
  return ok;
}
