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
  close(): Promise<void>;
}
