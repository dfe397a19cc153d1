// What the membership needs from the network (memberlist's Transport): unreliable packets and
// reliable request/response exchanges, addressed by "host:port". The socket implementation is
// net-transport.ts, the simulator's is sim/network.ts. Bytes here are already sealed (crypto.ts).

export interface Transport {
  /** "host:port" other members reach this node at. */
  readonly address: string;
  sendPacket(to: string, data: Uint8Array): void;
  onPacket(handler: (data: Uint8Array, from: string) => void): void;
  /** Sends one frame on a new stream and resolves with the one frame answered. */
  request(to: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  onRequest(handler: (data: Uint8Array, from: string) => Promise<Uint8Array | null>): void;
  /**
   * Whether the host at `to` is there at all, whatever its daemon does: its kernel accepts or
   * refuses a connection to the port within `timeoutMs`. Absent where that cannot be told.
   */
  reachable?(to: string, timeoutMs: number): Promise<boolean>;
  /** Streams over a real network authenticate a small header before reading a frame (net-transport.ts). */
  setGate?(gate: StreamGate): void;
  close(): Promise<void>;
}

/**
 * Every stream frame is preceded by a small sealed header saying how long the frame is, so a
 * receiver reads at most that header from a peer before knowing it holds the cluster key.
 */
export interface StreamGate {
  /** The header announcing a frame of `length` bytes. */
  header(length: number): Uint8Array;
  /** The frame length a received header announces; throws a WireError when it cannot be opened. */
  admit(header: Uint8Array): number;
  /** What to answer a peer whose header was refused (a plain error saying why), if anything. */
  refusal(err: Error): Uint8Array | null;
}
