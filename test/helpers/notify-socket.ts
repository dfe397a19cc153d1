import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// A stand-in for systemd's notification socket: a real unix datagram socket (python3, since
// Node has none) that records every datagram the daemon sends, with the sender's PID
// (SO_PASSCRED), which is what NotifyAccess=main checks.

export interface Notification {
  pid: number;
  fields: Record<string, string>;
  raw: string;
}

export interface NotifySocket {
  path: string;
  messages: Notification[];
  /** Resolves with the first message from index `from` on that satisfies `pred`. */
  next(pred: (n: Notification) => boolean, from?: number, timeoutMs?: number): Promise<{ n: Notification; index: number }>;
}

const RECEIVER = `
import socket, sys, json, struct
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind("\\0" + sys.argv[1][1:] if sys.argv[1].startswith("@") else sys.argv[1])
print("bound", flush=True)
while True:
    msg, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = 0
    for level, type_, data in anc:
        if level == socket.SOL_SOCKET and type_ == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", data[:12])[0]
    print(json.dumps({"pid": pid, "raw": msg.decode("utf-8", "replace")}), flush=True)
`;

/** `abstract`: a Linux abstract socket ("@name"), as systemd's user instances and nspawn use. */
export async function notifySocket(t: { teardown(fn: () => unknown): void }, o: { abstract?: boolean } = {}): Promise<NotifySocket> {
  // A short directory: unix socket paths are limited to 107 bytes.
  const dir = mkdtempSync(join(tmpdir(), 'psdns-n-'));
  const path = o.abstract ? `@${dir.slice(1).replace(/\//g, '-')}` : join(dir, 'notify.sock');
  const p = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const messages: Notification[] = [];
  let buf = '';
  let bound!: () => void;
  const isBound = new Promise<void>((r, reject) => {
    bound = r;
    p.on('exit', (code) => reject(new Error(`the notify socket receiver (python3) exited with ${code}`)));
  });
  p.stdout.on('data', (c: Buffer) => {
    buf += c.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line === 'bound') {
        bound();
        continue;
      }
      const { pid, raw } = JSON.parse(line) as { pid: number; raw: string };
      const fields: Record<string, string> = {};
      for (const l of raw.split('\n')) {
        const eq = l.indexOf('=');
        if (eq > 0) fields[l.slice(0, eq)] = l.slice(eq + 1);
      }
      messages.push({ pid, fields, raw });
    }
  });
  await isBound;
  return {
    path,
    messages,
    async next(pred, from = 0, timeoutMs = 15_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        for (let i = from; i < messages.length; i++) if (pred(messages[i]!)) return { n: messages[i]!, index: i };
        if (Date.now() > end) throw new Error(`no such notification; got:\n${messages.map((m) => JSON.stringify(m.raw)).join('\n')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}
