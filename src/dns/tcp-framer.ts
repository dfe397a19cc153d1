// Splits a DNS-over-TCP byte stream (RFC 1035 section 4.2.2: each message after a 2-byte length) into
// messages. Every byte is copied once, into a buffer of the message's size allocated when its
// length is known, so a client sending a query a byte at a time costs linear, not quadratic, work.

export class TcpFramer {
  private readonly chunks: Buffer[] = [];
  /** Offset into chunks[0]. */
  private off = 0;
  private lenBytes = 0;
  private len = 0;
  private msg: Buffer | null = null;
  private filled = 0;
  /** Bytes received and not yet copied into a message. */
  private held = 0;

  /** Part of a message is here, the rest not yet. */
  get partial(): boolean {
    return this.lenBytes > 0 || this.held > 0;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.held += chunk.length;
  }

  /** The next complete message, or null until more bytes arrive. */
  next(): Buffer | null {
    while (this.lenBytes < 2) {
      const b = this.byte();
      if (b < 0) return null;
      this.len = (this.len << 8) | b;
      this.lenBytes++;
    }
    if (!this.msg) {
      this.msg = Buffer.allocUnsafe(this.len);
      this.filled = 0;
    }
    while (this.filled < this.len && this.chunks.length > 0) {
      const c = this.chunks[0]!;
      const n = Math.min(c.length - this.off, this.len - this.filled);
      c.copy(this.msg, this.filled, this.off, this.off + n);
      this.filled += n;
      this.advance(n);
    }
    if (this.filled < this.len) return null;
    const m = this.msg;
    this.msg = null;
    this.lenBytes = 0;
    this.len = 0;
    return m;
  }

  private byte(): number {
    const c = this.chunks[0];
    if (!c) return -1;
    const b = c[this.off]!;
    this.advance(1);
    return b;
  }

  private advance(n: number): void {
    this.off += n;
    this.held -= n;
    if (this.off === this.chunks[0]!.length) {
      this.chunks.shift();
      this.off = 0;
    }
  }
}
