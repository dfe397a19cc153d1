import { createServer, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// A fake for faults a real Podman cannot be made to show on demand (an inspect that fails with a
// 500, or is answered late): a small server speaking the libpod endpoints the watcher uses (the
// events stream, the network list, the container list, inspect) over a real unix socket. The e2e
// tests cover the real Podman.

type Teardown = { teardown(fn: () => unknown): void };

const network = { name: 'n', driver: 'bridge', subnets: [{ subnet: '10.9.0.0/24', gateway: '10.9.0.1' }], labels: {} };

/** Inspect of a running container labelled into service `svc` on network `n`. */
const inspect = (id: string) => ({
  Id: id,
  Name: id,
  State: { Running: true },
  Config: { Labels: { 'podman-swarm.service': 'svc' } },
  NetworkSettings: { Networks: { n: { IPAddress: '10.9.0.5' } } },
  HostConfig: { NetworkMode: 'bridge' },
});

/** A fake libpod in a fresh directory, removed at teardown. */
export function fakeLibpod(t: Teardown) {
  const dir = mkdtempSync(join(tmpdir(), 'psd-libpod-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return fakeLibpodAt(t, join(dir, 'podman.sock'));
}

export function fakeLibpodAt(t: Teardown, socket: string) {
  const streams = new Set<ServerResponse>();
  /** Containers the list and inspect report as running. */
  const running = new Set<string>();
  /** Containers whose inspect fails with a 500. */
  const broken = new Set<string>();
  /** Inspects held until released, by container id. */
  const held = new Map<string, Array<() => void>>();
  const holdNext = new Set<string>();
  const server = createServer((req, res) => {
    const url = req.url ?? '';
    const json = (v: unknown): void => void res.end(JSON.stringify(v));
    if (url.startsWith('/v4.0.0/libpod/events')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      streams.add(res);
      res.on('close', () => streams.delete(res));
      return;
    }
    if (url === '/v4.0.0/libpod/networks/json') return json([network]);
    if (url === '/v4.0.0/libpod/containers/json') return json([...running].map((Id) => ({ Id })));
    const m = /^\/v4\.0\.0\/libpod\/containers\/([^/]+)\/json$/.exec(url);
    if (!m) {
      res.statusCode = 404;
      return json({ message: 'not found' });
    }
    const id = m[1]!;
    // The state when the request arrived, even if the answer leaves later (that is the race).
    const wasRunning = running.has(id);
    const answer = (): void => {
      if (res.destroyed) return;
      if (broken.has(id)) {
        res.statusCode = 500;
        return json({ cause: 'database is locked', message: 'inspect failed: database is locked', response: 500 });
      }
      if (!wasRunning) {
        res.statusCode = 404;
        return json({ message: 'no such container' });
      }
      json(inspect(id));
    };
    if (!holdNext.delete(id)) return answer();
    held.set(id, [...(held.get(id) ?? []), answer]);
  });
  const listening = new Promise<void>((r) => server.listen(socket, r));
  t.teardown(() => {
    for (const s of streams) s.destroy();
    server.close();
  });
  return {
    socket,
    listening,
    running,
    broken,
    /** Sends one event to every open events stream. */
    event(action: string, id: string, type = 'container') {
      for (const s of streams) s.write(JSON.stringify({ Type: type, Action: action, Actor: { ID: id, Attributes: {} } }) + '\n');
    },
    /** Cuts every open events stream, as a Podman restart does. */
    dropStreams() {
      for (const s of streams) s.destroy();
    },
    /** Holds the next inspect of `id` until release(id). */
    hold(id: string) {
      holdNext.add(id);
    },
    release(id: string) {
      for (const f of held.get(id) ?? []) f();
      held.delete(id);
    },
    heldCount: (id: string) => held.get(id)?.length ?? 0,
  };
}
