import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { ROOT } from '../helpers/daemon.js';

// With --registry gossip the daemon never loads the etcd client or backend: they are reached from
// the command line's entry point only through the dynamic import in src/etcd/setup.ts, never
// through a static import (type-only imports vanish in the build and are not followed).

const STATIC = /^import\s+(?!type\s)(?:[^'"]*?\sfrom\s+)?['"](\.[^'"]+)['"]/gm;
const DYNAMIC = /import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

function reachable(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(STATIC)) {
      const target = join(dirname(file), m[1]!.replace(/\.js$/, '.ts'));
      if (existsSync(target)) visit(target);
    }
  };
  visit(entry);
  return new Set([...seen].map((f) => relative(ROOT, f)));
}

t.test('the etcd client and backend are not in the static import graph of the CLI', async (t) => {
  const graph = reachable(join(ROOT, 'src', 'cli.ts'));
  t.ok(graph.has('src/daemon.ts') && graph.has('src/etcd/setup.ts') && graph.has('src/gossip/setup.ts'), 'the walk reaches the daemon and its parts');
  for (const f of ['src/etcd/client.ts', 'src/etcd/backend.ts', 'src/etcd/keys.ts']) t.notOk(graph.has(f), `${f} is not loaded at start`);
  const dynamic = [...readFileSync(join(ROOT, 'src', 'etcd', 'setup.ts'), 'utf8').matchAll(DYNAMIC)].map((m) => m[1]);
  t.same(dynamic.sort(), ['./backend.js', './client.js'], 'setup.ts imports them when the part starts');
});
