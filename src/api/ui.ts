import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { HttpError } from './http.js';

// The status page's files (src/ui/page, built into dist/ui/www by `npm run build`), served from
// memory. The policy header keeps the page to this host: no script, style, font or image from
// anywhere else, and no framing by other sites.

const WWW = new URL('../ui/www/', import.meta.url);

const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

const POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const loaded = new Map<string, Buffer>();

function load(name: string): Buffer {
  let body = loaded.get(name);
  if (!body) {
    try {
      body = readFileSync(new URL(name, WWW));
    } catch {
      throw new HttpError(503, `the status page is not built (${new URL(name, WWW).pathname} is missing): run \`npm run build\``);
    }
    loaded.set(name, body);
  }
  return body;
}

/** `name`: a file of the page ('' for index.html); 404 for anything else. */
export function sendUiFile(res: ServerResponse, name: string): void {
  const file = name === '' ? 'index.html' : name;
  const type = FILES[file];
  if (!type) throw new HttpError(404, `no such file of the status page: /ui/${name}`);
  const body = load(file);
  res.writeHead(200, {
    'content-type': type,
    'content-length': body.length,
    'cache-control': 'no-cache',
    'content-security-policy': POLICY,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  res.end(body);
}
