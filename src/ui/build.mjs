#!/usr/bin/env node
// Builds the status page (src/ui/page) into dist/ui/www, where the API serves it from: the
// script bundled by esbuild, the HTML and CSS copied. Part of `npm run build`.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const page = fileURLToPath(new URL('./page/', import.meta.url));
const out = fileURLToPath(new URL('../../dist/ui/www/', import.meta.url));
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [`${page}app.ts`],
  outfile: `${out}app.js`,
  bundle: true,
  format: 'esm',
  target: 'es2020',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
for (const f of ['index.html', 'style.css']) copyFileSync(`${page}${f}`, `${out}${f}`);
