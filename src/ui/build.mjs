#!/usr/bin/env node
// Builds the status page (src/ui/page): the script bundled by esbuild, the HTML and CSS copied.
// `npm run build` puts it in dist/ui/www, where the API serves it from (src/api/ui.ts);
// packaging/stage.mjs calls buildPage() for the package's tree.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PAGE = fileURLToPath(new URL('./page/', import.meta.url));

export async function buildPage(out) {
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [join(PAGE, 'app.ts')],
    outfile: join(out, 'app.js'),
    bundle: true,
    format: 'esm',
    target: 'es2020',
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  for (const f of ['index.html', 'style.css']) copyFileSync(join(PAGE, f), join(out, f));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildPage(fileURLToPath(new URL('../../dist/ui/www/', import.meta.url)));
