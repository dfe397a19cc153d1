import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Clock } from './clock.js';
import { decodeMessages, encodeBody, encodeMessages, FLAG_SEALED, WIRE_VERSION, WireError, type Message } from './codec.js';

// AES-256-GCM on every packet and stream frame (docs/architecture.md#registry-and-gossip), with a keyring for rotation: the first
// key seals, every key is tried to open. A sealed frame is
//   [version][flags][nonce: 12 = (timestamp ms mod 2^32: 4 bytes, random: 8 bytes)][ciphertext of body][tag: 16]
// with the two header bytes as associated data, so neither can be flipped unnoticed (nor can the
// nonce: GCM's tag depends on it). GCM alone does not stop an attacker from replaying a captured
// packet (e.g. an old "alive" after a leave), so the timestamp must be recent and each nonce is
// accepted once within that window. The receiver takes the timestamp as the one nearest its own
// clock with those low 32 bits (exact while clocks are less than 24 days apart; anything over the
// window is refused anyway). Two frames share a nonce only if sealed in the same millisecond
// (modulo 2^32) with the same 64 random bits. The seen
// nonces live in memory only, so a restart would forget them: frames stamped before this Wire was
// made (before the daemon started) are refused as well, which closes that gap without a file.

export const KEY_BYTES = 32;
const NONCE = 12;
const TAG = 16;
/** Bytes sealing adds to a body. */
export const SEAL_OVERHEAD = 2 + NONCE + TAG;
const TS_MOD = 2 ** 32;
/** Frames older or newer than this (clock skew between hosts included) are rejected. */
export const REPLAY_WINDOW_MS = 60_000;

export class Keyring {
  constructor(readonly keys: Buffer[]) {
    if (keys.length === 0) throw new Error('a keyring needs at least one key');
    for (const k of keys) if (k.length !== KEY_BYTES) throw new Error(`a gossip key is ${KEY_BYTES} bytes, got ${k.length}`);
  }

  get primary(): Buffer {
    return this.keys[0]!;
  }

  /** A --gossip-key-file: one base64 key per line, the first is primary; # comments allowed. */
  static parse(text: string, source = 'keyring'): Keyring {
    const keys: Buffer[] = [];
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith('#')) return;
      const key = /^[A-Za-z0-9+/]+={0,2}$/.test(line) ? Buffer.from(line, 'base64') : Buffer.alloc(0);
      if (key.length !== KEY_BYTES) {
        throw new Error(`${source} line ${i + 1}: not a base64 ${KEY_BYTES}-byte key (make one with \`podman-swarm-dns keygen\`)`);
      }
      keys.push(key);
    });
    if (keys.length === 0) throw new Error(`${source}: no key in it (make one with \`podman-swarm-dns keygen\`)`);
    return new Keyring(keys);
  }
}

/** Turns messages into frames and back: version, optional sealing, replay checks. */
export class Wire {
  /** Nonces seen in the current and the previous replay window. */
  private seen = new Set<string>();
  private seenBefore = new Set<string>();
  private windowStart: number;
  /** Frames sealed before this are replays from before a restart. */
  private readonly startedAt: number;

  constructor(
    private readonly keyring: Keyring | null,
    private readonly clock: Pick<Clock, 'now'>,
  ) {
    this.windowStart = this.startedAt = clock.now();
  }

  get encrypted(): boolean {
    return this.keyring !== null;
  }

  /** Bytes added to a message body by the frame. */
  get overhead(): number {
    return this.keyring ? SEAL_OVERHEAD : 2;
  }

  seal(msgs: Message[]): Uint8Array {
    return this.sealBody(encodeMessages(msgs));
  }

  /** sealBody(encodeBody(parts)), in one buffer when nothing is sealed. */
  sealParts(parts: Uint8Array[]): Uint8Array {
    return this.keyring ? this.sealBody(encodeBody(parts)) : encodeBody(parts, [WIRE_VERSION, 0]);
  }

  sealBody(body: Uint8Array): Uint8Array {
    if (!this.keyring) {
      const out = Buffer.allocUnsafe(2 + body.length);
      out[0] = WIRE_VERSION;
      out[1] = 0;
      out.set(body, 2);
      return out;
    }
    const header = Buffer.from([WIRE_VERSION, FLAG_SEALED]);
    const nonce = randomBytes(NONCE);
    nonce.writeUInt32BE(Math.max(0, Math.floor(this.clock.now())) % TS_MOD, 0);
    const cipher = createCipheriv('aes-256-gcm', this.keyring.primary, nonce);
    cipher.setAAD(header);
    const ct = Buffer.concat([cipher.update(body), cipher.final()]);
    return Buffer.concat([header, nonce, ct, cipher.getAuthTag()]);
  }

  open(frame: Uint8Array): Message[] {
    return decodeMessages(this.openBody(frame));
  }

  openBody(frame: Uint8Array): Uint8Array {
    if (frame.length < 2) throw new WireError('frame too short', 'decode');
    if (frame[0] !== WIRE_VERSION) {
      throw new WireError(`wire version ${frame[0]}, this node speaks ${WIRE_VERSION}: ${frame[0]! < WIRE_VERSION ? 'the peer runs an older podman-swarm-dns; upgrade it' : 'this node runs an older podman-swarm-dns than the peer; upgrade it'}`, 'version');
    }
    const sealed = (frame[1]! & FLAG_SEALED) !== 0;
    if (!this.keyring) {
      if (sealed) throw new WireError('encrypted gossip received, but this node has no --gossip-key-file', 'encrypted');
      return frame.subarray(2);
    }
    if (!sealed) throw new WireError('unencrypted gossip received, but this node requires encryption (--gossip-key-file)', 'unencrypted');
    if (frame.length < SEAL_OVERHEAD) throw new WireError('sealed frame too short', 'auth');
    const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.length);
    const header = buf.subarray(0, 2);
    const nonce = buf.subarray(2, 2 + NONCE);
    const ct = buf.subarray(2 + NONCE, buf.length - TAG);
    const tag = buf.subarray(buf.length - TAG);
    let plain: Buffer | null = null;
    for (const key of this.keyring.keys) {
      try {
        const d = createDecipheriv('aes-256-gcm', key, nonce);
        d.setAAD(header);
        d.setAuthTag(tag);
        plain = Buffer.concat([d.update(ct), d.final()]);
        break;
      } catch {
        /* next key */
      }
    }
    if (!plain) throw new WireError('authentication failed: wrong gossip key or a tampered frame', 'auth');
    const now = this.clock.now();
    // The timestamp nearest this node's clock whose low 32 bits the nonce carries.
    const behind = (((Math.floor(now) - nonce.readUInt32BE(0)) % TS_MOD) + TS_MOD) % TS_MOD;
    const ts = Math.floor(now) - (behind >= TS_MOD / 2 ? behind - TS_MOD : behind);
    if (Math.abs(now - ts) > REPLAY_WINDOW_MS) throw new WireError(`frame timestamp is ${Math.round((now - ts) / 1000)} s off: replayed or a clock far off`, 'replay');
    if (ts < this.startedAt) throw new WireError('frame sealed before this node started: a replay from before the restart (or the sender\'s clock is behind)', 'replay');
    this.rotate(now);
    const id = nonce.toString('base64');
    if (this.seen.has(id) || this.seenBefore.has(id)) throw new WireError('replayed frame (nonce seen before)', 'replay');
    this.seen.add(id);
    return plain;
  }

  /** Two generations of one window each cover every accepted timestamp's lifetime. */
  private rotate(now: number): void {
    if (now - this.windowStart < 2 * REPLAY_WINDOW_MS) return;
    this.seenBefore = this.seen;
    this.seen = new Set();
    this.windowStart = now;
  }
}
