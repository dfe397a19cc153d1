import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon } from '../helpers/daemon.js';
import { freePort } from '../helpers/ports.js';

// The status page over HTTP, without a browser: its files with a policy that keeps it to this
// host, nothing else under /ui/, and the API's read rules — on a listener that needs the token a
// browser sends it as the Basic password.

const TOKEN = 'a-test-token-that-is-long-enough-0123456789';

t.test('status page files and access', async (t) => {
  const open = await freePort();
  const tokenFile = join(t.testdir(), 'token');
  writeFileSync(tokenFile, TOKEN);
  // 0.0.0.0 is a listener that needs the token for reads; the test still talks to it on loopback.
  const d = await startDaemon(t, { args: ['--api-listen', `0.0.0.0:${open}`, '--api-token-file', tokenFile] });

  await t.test('files, headers, redirect, 404', async (t) => {
    const page = await fetch(`${d.api}/ui/`);
    t.equal(page.status, 200);
    t.match(page.headers.get('content-type'), 'text/html');
    t.match(page.headers.get('content-security-policy'), "default-src 'none'; script-src 'self'");
    t.match(await page.text(), '<input id="search" type="search"');
    t.match((await fetch(`${d.api}/ui/app.js`)).headers.get('content-type'), 'text/javascript');
    t.match((await fetch(`${d.api}/ui/style.css`)).headers.get('content-type'), 'text/css');
    const bare = await fetch(`${d.api}/ui`, { redirect: 'manual' });
    t.equal(bare.status, 301);
    t.equal(bare.headers.get('location'), '/ui/');
    for (const path of ['/ui/secret.txt', '/ui/..%2Fpackage.json', '/ui/%2e%2e%2fcli.js']) {
      t.equal((await fetch(`${d.api}${path}`)).status, 404, `${path}: 404`);
    }
  });

  await t.test('a listener that needs the token: the browser asks, Basic with the token as password works', async (t) => {
    const base = `http://127.0.0.1:${open}`;
    const none = await fetch(`${base}/ui/`);
    t.equal(none.status, 401);
    t.match(none.headers.get('www-authenticate'), /^Basic realm="podman-swarm-dns"/);
    const basic = (password: string) => ({ authorization: `Basic ${Buffer.from(`anyone:${password}`).toString('base64')}` });
    t.equal((await fetch(`${base}/ui/`, { headers: basic(TOKEN) })).status, 200);
    t.equal((await fetch(`${base}/api/v1/overview`, { headers: basic(TOKEN) })).status, 200);
    t.equal((await fetch(`${base}/ui/`, { headers: basic('wrong') })).status, 401);
    t.equal((await fetch(`${base}/api/v1/overview`)).headers.get('www-authenticate'), 'Bearer', 'API routes still ask for Bearer');
    // Basic is a read credential like Bearer: writes with it work as with the Bearer token.
    const w = await fetch(`${base}/api/v1/services/default/web/endpoints`, {
      method: 'POST', headers: { ...basic(TOKEN), 'content-type': 'application/json' }, body: JSON.stringify({ address: '10.0.0.1' }),
    });
    t.equal(w.status, 201);
  });

  await t.test('overview: one read with what the page shows; q= searches', async (t) => {
    const o = (await (await fetch(`${d.api}/api/v1/overview`)).json()) as Record<string, unknown>;
    t.match(o, { status: { ready: true }, services: [{ namespace: 'default', name: 'web' }], services_total: 1, changes: [{ services: [{ key: 'default/web' }] }] });
    t.ok(Array.isArray(o.members) && Array.isArray(o.dns));
    const none = (await (await fetch(`${d.api}/api/v1/overview?q=zzz`)).json()) as { services: unknown[] };
    t.same(none.services, []);
  });
});
