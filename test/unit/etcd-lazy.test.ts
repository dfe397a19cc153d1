import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { ROOT } from '../helpers/daemon.js';

// With --registry gossip the daemon never loads the etcd client or backend: they are reached from
// the command line's entry points only through the dynamic import in src/etcd/setup.ts, never
// through a static import (type-only imports vanish in the build and are not followed). The entry
// point src/cli.ts serves the early DNS answers first, then loads src/cli-main.ts: both are walked.

const STATIC = /^import\s+(?!type\s)(?:[^'"]*?\sfrom\s+)?['"](\.[^'"]+)['"]/gm;
const DYNAMIC = /import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

function reachable(...entries: string[]): Set<string> {
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
  for (const entry of entries) visit(entry);
  return new Set([...seen].map((f) => relative(ROOT, f)));
}

t.test('the etcd client and backend are not in the static import graph of the CLI', async (t) => {
  const graph = reachable(join(ROOT, 'src', 'cli.ts'), join(ROOT, 'src', 'cli-main.ts'));
  t.match(readFileSync(join(ROOT, 'src', 'cli.ts'), 'utf8'), /import\(\s*['"]\.\/cli-main\.js['"]\s*\)/, 'the entry point loads cli-main.ts');
  t.ok(graph.has('src/daemon.ts') && graph.has('src/etcd/setup.ts') && graph.has('src/gossip/setup.ts'), 'the walk reaches the daemon and its parts');
  for (const f of ['src/etcd/client.ts', 'src/etcd/backend.ts', 'src/etcd/keys.ts']) t.notOk(graph.has(f), `${f} is not loaded at start`);
  const dynamic = [...readFileSync(join(ROOT, 'src', 'etcd', 'setup.ts'), 'utf8').matchAll(DYNAMIC)].map((m) => m[1]);
  t.same(dynamic.sort(), ['./backend.js', './client.js'], 'setup.ts imports them when the part starts');
});
